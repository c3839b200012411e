"""Section 5: resident memory while millions of distinct clients go through one engine.

Every cache geofence keeps (parsed addresses, resolved peers, lookups, decisions) is bounded
and emptied when full, so after the first fill RSS must stay flat however many new clients
arrive. The second batch of clients shows it: it may not add more than a sliver of what the
first did.
"""

from __future__ import annotations

import gc
import time

from report import Row
from workload import HEADERS, HOST, PATH, Addresses, policy

from geofence import Engine, RequestInfo

SECTION = "5. memory: distinct client IPs through engine.decide (real-size database)"
# The second batch of clients may add at most this much RSS (allocator noise)...
SLACK_BYTES = 2 * 1024 * 1024
SAMPLES = 200  # RSS readings per batch of clients


def rss() -> int:
    """Resident set size of this process in bytes (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def memory_rows(db_path: str, addresses: Addresses, clients: int) -> list[Row]:
    """RSS is sampled all along: caches fill and empty, so a single reading depends on where
    in that cycle it falls; the peak over each batch of clients does not."""
    engine = Engine.from_config(policy(db_path))
    stream = addresses.v4_stream()
    decide = engine.decide
    gc.collect()
    before = rss()
    every = max(1, clients // SAMPLES)
    results = []
    for _ in range(2):
        peak = 0
        started = time.perf_counter()
        for index in range(clients):
            decide(RequestInfo(next(stream), HEADERS, "GET", PATH, HOST))
            if index % every == 0:
                peak = max(peak, rss())
        took = time.perf_counter() - started
        gc.collect()
        results.append((max(peak, rss()), rss(), took))
    (peak1, end1, took1), (peak2, end2, took2) = results
    grew1, grew2 = peak1 - before, peak2 - peak1
    met = None if before == 0 else grew2 <= max(SLACK_BYTES, grew1 // 10)
    mb = 1024 * 1024
    count = f"{clients:,}"
    return [
        Row(SECTION, "RSS before", f"{before / mb:.1f} MB", "engine built, database open"),
        Row(
            SECTION,
            f"peak RSS over {count} distinct clients",
            f"{peak1 / mb:.1f} MB",
            f"+{grew1 / mb:.1f} MB; {end1 / mb:.1f} MB at the end; "
            f"{clients / took1:,.0f} decisions/s incl. RequestInfo",
        ),
        Row(
            SECTION,
            f"peak RSS over {count} more",
            f"{peak2 / mb:.1f} MB",
            f"{grew2 / mb:+.1f} MB over the first peak; {end2 / mb:.1f} MB at the end; "
            f"{clients / took2:,.0f} decisions/s",
            "flat: <= +2 MB (or 10 % of 1st)",
            met,
            {
                "before": before,
                "peak_first": peak1,
                "peak_second": peak2,
                "end_first": end1,
                "end_second": end2,
            },
        ),
    ]

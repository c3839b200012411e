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
    engine = Engine.from_config(policy(db_path))
    stream = addresses.v4_stream()
    decide = engine.decide
    gc.collect()
    before = rss()
    marks = []
    for _ in range(2):
        started = time.perf_counter()
        for _ in range(clients):
            decide(RequestInfo(next(stream), HEADERS, "GET", PATH, HOST))
        took = time.perf_counter() - started
        gc.collect()
        marks.append((rss(), took))
    (first, took1), (second, took2) = marks
    grew1, grew2 = first - before, second - first
    met = None if before == 0 else grew2 <= max(SLACK_BYTES, grew1 // 10)
    mb = 1024 * 1024
    count = f"{clients:,}"
    return [
        Row(SECTION, "RSS before", f"{before / mb:.1f} MB", "engine built, database open"),
        Row(
            SECTION,
            f"RSS after {count} distinct clients",
            f"{first / mb:.1f} MB",
            f"+{grew1 / mb:.1f} MB; {clients / took1:,.0f} decisions/s incl. RequestInfo",
        ),
        Row(
            SECTION,
            f"RSS after {count} more",
            f"{second / mb:.1f} MB",
            f"{grew2 / mb:+.1f} MB; {clients / took2:,.0f} decisions/s",
            "flat: <= +2 MB (or 10 % of 1st)",
            met,
            {"before": before, "after_first": first, "after_second": second},
        ),
    ]

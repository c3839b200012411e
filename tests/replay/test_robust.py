"""Bad input never crashes a replay: whatever a line holds, a reader gives a record or an
unparsable line, and every record can be decided."""

from __future__ import annotations

import gzip
from datetime import timezone
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geofence.replay import FORMATS, Record, Unparsable, replay
from geofence.replay._fields import clf_time, epoch_number, epoch_seconds, iso_time

LOGS = Path(__file__).parent / "logs"
GOOD = {
    "combined": (LOGS / "combined.log").read_text().splitlines()[0],
    "alb": gzip.decompress((LOGS / "alb.log.gz").read_bytes()).decode().splitlines()[0],
    "cloudfront": (LOGS / "cloudfront.log").read_text().splitlines()[2],
    "cloudflare": (LOGS / "cloudflare.json").read_text().splitlines()[0],
    "jsonl": (LOGS / "nginx.jsonl").read_text().splitlines()[0],
    "csv": (LOGS / "nginx.csv").read_text().splitlines()[1],
}
CSV_HEADER = (LOGS / "nginx.csv").read_text().splitlines()[0]


@st.composite
def mutated(draw: st.DrawFn, line: str) -> str:
    """A good line with a slice replaced by arbitrary text (quotes, brackets, digits)."""
    start = draw(st.integers(0, len(line)))
    end = draw(st.integers(start, len(line)))
    alphabet = st.sampled_from([*'"\\[]{}:/%-+ \t0123456789xTZ.,', "\x00", "é", "\r"])
    filler = draw(st.text(alphabet, max_size=12) | st.text(max_size=12))
    return line[:start] + filler + line[end:]


LINES = st.one_of(
    *[st.tuples(st.just(name), mutated(line)) for name, line in GOOD.items()],
    st.tuples(st.sampled_from(sorted(FORMATS)), st.text(max_size=300)),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(LINES)
def test_every_line_is_a_record_or_unparsable(case: tuple[str, str]) -> None:
    name, line = case
    # A CSV line is tried as the header and as a row after one.
    tries = [[(1, line)], [(1, CSV_HEADER), (2, line)]] if name == "csv" else [[(1, line)]]
    for lines in tries:
        for item in FORMATS[name](iter(lines)):
            assert isinstance(item, (Record, Unparsable))
            if isinstance(item, Record):
                assert item.time.tzinfo is timezone.utc
                assert item.path.startswith("/")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_time_readers_never_raise(text: str) -> None:
    for read in (iso_time, clf_time, epoch_seconds):
        moment = read(text)
        assert moment is None or moment.utcoffset() is not None


def test_time_edges() -> None:
    assert clf_time("01/Jan/0001:00:00:00 +0100") is None  # before year 1 in UTC
    assert clf_time("31/Dec/9999:23:59:59 -0100") is None  # after 9999 in UTC
    assert iso_time("0001-01-01T00:00:00+01:00") is None
    assert epoch_seconds("9" * 20) is None
    assert epoch_number(10**30) is None
    assert (
        str(iso_time("2024-07-09T02:00:00.123456789+02:00")) == "2024-07-09 00:00:00.123456+00:00"
    )


def test_a_nul_byte_in_a_csv_header_is_unparsable() -> None:
    # Python 3.10's csv module raises on NUL; 3.11 reads it.
    items = list(FORMATS["csv"](iter([(1, "remote_addr,\x00msec"), (2, "x")])))
    assert all(isinstance(item, Unparsable) for item in items)


def test_hostile_lines_replay(tmp_path: Path, policy: dict[str, Any]) -> None:
    log = tmp_path / "hostile.jsonl"
    good = GOOD["jsonl"]
    hostile = [
        "[" * 100_000,  # deep nesting: RecursionError in json
        '{"time_iso8601":"2024-07-09T00:00:00Z","remote_addr":"' + "9" * 5000 + '",'
        '"request_method":"GET","request_uri":"/' + "a" * 100_000 + '"}',
        '{"time_iso8601":"2024-07-09T00:00:00Z","remote_addr":"fe80::1%eth0",'
        '"http_x_forwarded_for":"::ffff:175.16.199.1, 0x7f.1, 1.2.3.4:80, [::1]:1",'
        '"request_method":"' + "X" * 100 + '","request_uri":"/%ff%fe%00"}',
        good,
    ]
    log.write_text("\n".join(hostile) + "\n")
    report = replay([log], policy=policy)
    assert report.unparsable == 1
    assert report.records == 3
    assert all(len(p) <= 515 for p in report.policy.paths)

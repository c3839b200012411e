"""Golden logs, written by hand from each vendor's documented layout (see the readers'
docstrings), read into the records they hold; their malformed lines counted with numbers."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest

from geofence.replay import FORMATS, Record, ReplayError, Unparsable, read_log

LOGS = Path(__file__).parent / "logs"


def t(text: str) -> datetime:
    # Python 3.10's fromisoformat takes only 3 or 6 fraction digits.
    whole, _, fraction = text.partition(".")
    if fraction:
        whole += "." + fraction.ljust(6, "0")
    return datetime.fromisoformat(whole).replace(tzinfo=timezone.utc)


# (time, peer, forwarded, method, path, host, user, line); then the unparsable line numbers.
EXPECTED: dict[str, tuple[str, list[Record], list[int]]] = {
    "combined.log": (
        "combined",
        [
            Record(
                t("2024-07-08T23:59:59"), "175.16.199.1", None, "GET", "/v1/models", "", None, 1
            ),
            Record(
                t("2024-07-09T00:00:00"),
                "10.0.0.7",
                "175.16.199.1, 10.0.0.9",
                "POST",
                "/v1/chat/completions",
                "",
                "alice",
                2,
            ),
            Record(
                t("2024-07-09T00:00:01"), "2a02:d0c0::1", None, "GET", "/café//docs", "", None, 3
            ),
            Record(
                t("2024-07-09T00:00:02"),
                "81.2.69.142",
                None,
                "GET",
                "/v1/x",
                "api.example.com",
                None,
                4,
            ),
            Record(t("2024-07-09T00:00:03"), "89.160.20.112", None, "GET", '/say"hi"', "", None, 5),
            Record(t("2024-07-09T03:30:06"), "2001:218::1", None, "HEAD", "/healthz", "", None, 11),
        ],
        [6, 8, 9, 10],
    ),
    "alb.log.gz": (
        "alb",
        [
            # request_creation_time, not time: received before enforce_from, answered after.
            Record(
                t("2024-07-08T23:59:59.999"),
                "175.16.199.1",
                None,
                "GET",
                "/v1/models",
                "www.example.com",
                None,
                1,
            ),
            Record(
                t("2024-07-08T23:59:59.996"),
                "2a02:d0c0::1",
                None,
                "POST",
                "/v1/chat",
                "api.example.com",
                None,
                2,
            ),
            Record(
                t("2024-07-09T00:00:00.999"),
                "2001:218::1",
                None,
                "GET",
                "/v1/café",
                "api.example.com",
                None,
                3,
            ),
            # A websocket: decided when it opened, logged when it closed.
            Record(
                t("2024-07-08T23:50:00.25"),
                "89.160.20.112",
                None,
                "GET",
                "/socket",
                "ws.example.com",
                None,
                6,
            ),
            # An older entry that ends after ssl_protocol: its time.
            Record(
                t("2024-07-09T00:00:05"),
                "81.2.69.142",
                None,
                "GET",
                "/v1/models",
                "api.example.com",
                None,
                8,
            ),
        ],
        [4, 5, 7],
    ),
    "cloudfront.log": (
        "cloudfront",
        [
            Record(
                t("2024-07-09T00:00:00"),
                "175.16.199.1",
                None,
                "GET",
                "/v1/models",
                "api.example.com",
                None,
                3,
            ),
            Record(
                t("2024-07-08T23:59:59"),
                "89.160.20.112",
                "175.16.199.1",
                "POST",
                "/v1/chat",
                "api.example.com",
                None,
                4,
            ),
            Record(
                t("2024-07-09T00:00:01"),
                "2a02:d0c0::1",
                None,
                "GET",
                "/café",
                "d111111abcdef8.cloudfront.net",
                None,
                5,
            ),
        ],
        [6, 7],
    ),
    "cloudfront-reordered.log": (
        "cloudfront",
        [
            Record(
                t("2024-07-09T00:00:00"),
                "2a02:d0c0::1",
                None,
                "GET",
                "/v1/models",
                "api.example.com",
                None,
                3,
            ),
            Record(
                t("2024-07-08T23:59:59"),
                "10.0.0.7",
                "175.16.199.1, 10.0.0.9",
                "PUT",
                "/v1/a b",
                "",
                None,
                4,
            ),
        ],
        [5],
    ),
    "cloudflare.json": (
        "cloudflare",
        [
            Record(
                t("2024-07-09T00:00:00"),
                "175.16.199.1",
                None,
                "GET",
                "/v1/models",
                "api.example.com",
                None,
                1,
            ),
            Record(
                t("2024-07-08T23:59:59"),
                "2a02:d0c0::1",
                None,
                "POST",
                "/v1/chat",
                "api.example.com",
                None,
                2,
            ),
            Record(
                t("2024-07-09T00:00:01"),
                "10.0.0.7",
                "81.2.69.142",
                "GET",
                "/v1/models",
                "api.example.com",
                None,
                3,
            ),
            Record(
                t("2024-07-09T00:00:02.123456"),
                "89.160.20.112",
                None,
                "GET",
                "/café",
                "www.example.com",
                None,
                4,
            ),
            Record(
                t("2024-07-09T00:00:03"),
                "2001:218::1",
                None,
                "DELETE",
                "/v1/files/1",
                "api.example.com",
                None,
                8,
            ),
        ],
        [5, 6, 7],
    ),
    "nginx.jsonl": (
        "jsonl",
        [
            Record(
                t("2024-07-09T00:00:00"),
                "10.0.0.7",
                "175.16.199.1",
                "GET",
                "/v1/models",
                "api.example.com",
                None,
                1,
            ),
            Record(
                t("2024-07-09T00:00:01.25"), "81.2.69.142", None, "POST", "/v1/chat x", "", "bob", 2
            ),
            Record(
                t("2024-07-09T00:00:03"),
                "2a02:d0c0::1",
                None,
                "GET",
                "/v2/x",
                "www.example.com",
                None,
                6,
            ),
        ],
        [3, 4, 5],
    ),
    "nginx.csv": (
        "csv",
        [
            Record(
                t("2024-07-09T00:00:00"),
                "10.0.0.7",
                "175.16.199.1, 10.0.0.9",
                "GET",
                "/v1/models",
                "api.example.com",
                None,
                2,
            ),
            Record(
                t("2024-07-08T23:59:59.5"), "2a02:d0c0::1", None, "POST", "/v1/chat", "", None, 3
            ),
            Record(
                t("2024-07-09T00:00:02"),
                "175.16.199.1",
                None,
                "GET",
                "/v1/café",
                "api.example.com",
                None,
                6,
            ),
        ],
        [4, 5],
    ),
}


def read(path: Path, format: str = "auto") -> tuple[str, list[Record], list[Unparsable]]:
    with read_log(path, format) as log:
        items = list(log)
        found = log.format
    records = [item for item in items if isinstance(item, Record)]
    bad = [item for item in items if isinstance(item, Unparsable)]
    return found, records, bad


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_golden_log_is_detected_and_read(name: str) -> None:
    format, records, unparsable = EXPECTED[name]
    found, got, bad = read(LOGS / name)
    assert found == format
    assert got == records
    assert [b.line for b in bad] == unparsable
    assert all(r.time.tzinfo is timezone.utc for r in got)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_named_format_reads_the_same(name: str) -> None:
    format, records, _ = EXPECTED[name]
    assert read(LOGS / name, format)[1] == records


def test_unparsable_lines_say_why() -> None:
    _, _, bad = read(LOGS / "combined.log")
    assert [b.why for b in bad] == [
        "no HTTP request line",
        "not a combined/common log line",
        "time [31/Jun/2024:00:00:00 +0000] is not day/Mon/year:h:m:s +zone",
        "malformed request line",
    ]
    assert bad[1].text == "this is not a log line"


def test_crlf_is_tolerated() -> None:
    # Lines 2 and 11 of the combined log end in CR LF: no CR reaches a field.
    _, records, _ = read(LOGS / "combined.log")
    assert (LOGS / "combined.log").read_bytes().count(b"\r\n") == 2
    assert not any("\r" in (r.forwarded or "") + r.path for r in records)


def test_gzip_is_told_by_magic_bytes_not_by_name(tmp_path: Path) -> None:
    expected = EXPECTED["alb.log.gz"][1]
    hidden = tmp_path / "alb-log.txt"  # gzip without the extension
    shutil.copy(LOGS / "alb.log.gz", hidden)
    assert read(hidden)[1] == expected
    plain = tmp_path / "plain.log.gz"  # plain text with the extension
    plain.write_bytes(gzip.decompress((LOGS / "alb.log.gz").read_bytes()))
    assert read(plain)[1] == expected


def test_a_cut_gzip_file_keeps_what_was_read(tmp_path: Path) -> None:
    whole = gzip.compress((LOGS / "combined.log").read_bytes() * 200)
    cut = tmp_path / "cut.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    found, records, bad = read(cut)
    assert found == "combined"
    assert len(records) > 6
    assert bad[-1].why.startswith("the file is cut or corrupt")


def test_an_unknown_file_names_every_format_tried(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("2024-07-09 INFO started\n2024-07-09 INFO listening on :8000\n")
    with pytest.raises(ReplayError) as error:
        read_log(log)
    message = str(error.value)
    assert str(log) in message
    for name in FORMATS:
        assert name in message
    assert "'2024-07-09 INFO started'" in message
    assert "--format" in message


def test_a_missing_file_and_an_unknown_format_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ReplayError, match="No such file"):
        read_log(tmp_path / "nope.log")
    with pytest.raises(ReplayError, match="unknown log format 'apache'"):
        read_log(LOGS / "combined.log", "apache")


def test_an_empty_file_has_no_format_and_no_records(tmp_path: Path) -> None:
    empty = tmp_path / "empty.log"
    empty.write_bytes(b"")
    assert read(empty) == ("", [], [])


def test_detection_survives_malformed_first_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    good = (LOGS / "combined.log").read_text().splitlines()[0]
    log.write_text("garbage\n\x00\x01\n" + good + "\n")
    found, records, bad = read(log)
    assert found == "combined"
    assert [r.line for r in records] == [3]
    assert [b.line for b in bad] == [1, 2]


def test_cloudfront_lines_before_fields_use_the_documented_order(tmp_path: Path) -> None:
    lines = (LOGS / "cloudfront.log").read_text().splitlines()
    log = tmp_path / "cf.log"
    log.write_text("\n".join(lines[2:5]) + "\n")  # no #Version / #Fields
    found, records, _ = read(log)
    assert found == "cloudfront"
    assert [r.peer for r in records] == ["175.16.199.1", "89.160.20.112", "2a02:d0c0::1"]


def test_reading_streams(tmp_path: Path) -> None:
    # A generator: the first record comes before the rest of a big file is read.
    log = tmp_path / "big.log"
    line = (LOGS / "combined.log").read_text().splitlines()[0] + "\n"
    log.write_text(line * 100_000)
    with read_log(log) as opened:
        iterator = iter(opened)
        first = next(iterator)
        assert isinstance(first, Record)
        assert opened._stream.tell() < log.stat().st_size


def test_msec_less_request_time_is_when_the_request_came_in(tmp_path: Path) -> None:
    log = tmp_path / "timed.jsonl"
    common = '"remote_addr":"81.2.69.142","request_method":"GET","request_uri":"/"'
    log.write_text(
        f'{{"msec":"1720483200.000","request_time":"0.002",{common}}}\n'
        # Whole seconds are left as they are: their truncation errs the other way.
        f'{{"time_iso8601":"2024-07-09T00:00:00+00:00","request_time":"0.002",{common}}}\n'
        f'{{"msec":"1720483200.000","request_time":"-",{common}}}\n'
    )
    _, records, bad = read(log)
    assert [r.time for r in records] == [
        t("2024-07-08T23:59:59.998"),
        t("2024-07-09T00:00:00"),
        t("2024-07-09T00:00:00"),
    ]
    assert bad == []


def test_every_file_is_closed() -> None:
    # A ResourceWarning (an unclosed file, a wrapper dropped with its file open) is an error.
    code = (
        "import gc\n"
        "from geofence.replay import read_log, Record\n"
        f"names = {sorted(EXPECTED)!r}\n"
        f"for name in names:\n"
        f"    with read_log({str(LOGS)!r} + '/' + name) as log:\n"
        "        list(log)\n"
        f"    with read_log({str(LOGS)!r} + '/' + name) as log:\n"
        "        next(iter(log))\n"
        "gc.collect()\n"
    )
    result = subprocess.run(
        [sys.executable, "-X", "dev", "-W", "error::ResourceWarning", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")

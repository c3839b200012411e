"""The ``geofence`` logger: one escaped record per decision, rate-limited database errors."""

from __future__ import annotations

import io
import json
import logging
import shlex

import pytest
from tests_support import ANON_DB, BAD_RECORD_DB, CITY_DB, FIXTURES

from geofence import Decision, Engine, RequestInfo
from geofence import _logs as logs


class DatabaseError(Exception):
    """Stands for the engine's lookup failure: the log takes any exception."""


BLOCK = Decision(
    "block",
    True,
    "rule",
    rule="unsupported-regions",
    client_ip="175.16.199.1",
    country="CN",
    subdivisions=("CN-22",),
    status=451,
    ref="7K2MQ-X9PTW",
)
REQUEST = RequestInfo(peer="175.16.199.1", method="GET", path="/v1/models", host="api.example")
HOSTILE_PATH = (
    '/a\r\nFAKE geofence: allow\x1b[2J\x1b]0;title\x07\u2028x\u2029\u202egnp.exe\x00"\\\x85\x9b'
    "\ud800"
)
FORBIDDEN = (
    {chr(c) for c in range(0x20)}
    | {chr(c) for c in range(0x7F, 0xA0)}
    | {
        "\u2028",
        "\u2029",
        "\u202a",
        "\u202b",
        "\u202c",
        "\u202d",
        "\u202e",
        "\u2066",
        "\u2067",
        "\u2068",
        "\u2069",
        "\u200e",
        "\u200f",
        "\u061c",
    }
)


@pytest.fixture
def records(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="geofence")
    return caplog


def only(records: pytest.LogCaptureFixture) -> logging.LogRecord:
    mine = [r for r in records.records if r.name == "geofence"]
    assert len(mine) == 1, [r.getMessage() for r in mine]
    return mine[0]


def assert_clean(text: str) -> None:
    bad = {c for c in text if c in FORBIDDEN or 0xD800 <= ord(c) <= 0xDFFF}
    assert not bad, sorted(hex(ord(c)) for c in bad)


# -- decisions ------------------------------------------------------------------------------


def test_block_is_one_info_record_with_every_fact(records: pytest.LogCaptureFixture) -> None:
    logs.log_decision(BLOCK, REQUEST)
    record = only(records)
    assert record.levelno == logging.INFO
    assert record.getMessage() == (
        "block ref=7K2MQ-X9PTW client_ip=175.16.199.1 country=CN subdivisions=CN-22 "
        'rule="unsupported-regions" reason=rule method=GET path="/v1/models"'
    )


@pytest.mark.parametrize(
    ("action", "enforced", "verb"),
    [
        ("block", True, "block"),
        ("warn", True, "warn"),
        ("block", False, "would block"),
        ("warn", False, "would warn"),
    ],
)
def test_verbs(records: pytest.LogCaptureFixture, action: str, enforced: bool, verb: str) -> None:
    decision = Decision(action, enforced, "rule", rule="r", client_ip="1.2.3.4")  # type: ignore[arg-type]
    logs.log_decision(decision, REQUEST)
    message = only(records).getMessage()
    assert message.startswith(f"{verb} ref=- client_ip=1.2.3.4 ")
    assert ("would" in message) is (not enforced)


def test_missing_facts_are_dashes(records: pytest.LogCaptureFixture) -> None:
    decision = Decision("block", True, "unresolved_client")
    logs.log_decision(decision, RequestInfo(peer=None))
    assert only(records).getMessage() == (
        "block ref=- client_ip=- country=- subdivisions=- rule=- reason=unresolved_client "
        'method=GET path="/"'
    )


def test_report_rules_are_named(records: pytest.LogCaptureFixture) -> None:
    dry = Decision(
        "block", False, "rule", rule="new-rule", client_ip="1.2.3.4", report_rules=("new-rule", "b")
    )
    logs.log_decision(dry, REQUEST)
    record = only(records)
    assert record.getMessage().startswith("would block ")
    assert record.getMessage().endswith(' report_rules="new-rule","b"')
    assert record.geofence["report_rules"] == ["new-rule", "b"]  # type: ignore[attr-defined]


def test_structured_data_for_json_formatters(records: pytest.LogCaptureFixture) -> None:
    logs.log_decision(BLOCK, REQUEST)
    data = only(records).geofence  # type: ignore[attr-defined]
    assert data == {
        "ref": "7K2MQ-X9PTW",
        "action": "block",
        "enforced": True,
        "reason": "rule",
        "rule": "unsupported-regions",
        "status": 451,
        "client_ip": "175.16.199.1",
        "country": "CN",
        "subdivisions": ["CN-22"],
        "method": "GET",
        "path": "/v1/models",
        "report_rules": [],
        "account": None,
        "repeated": 0,
    }
    json.dumps(data)  # serialisable as it is


def test_hostile_path_cannot_forge_lines_or_drive_the_terminal(
    records: pytest.LogCaptureFixture,
) -> None:
    logs.log_decision(BLOCK, RequestInfo(peer="1.2.3.4", method="GET", path=HOSTILE_PATH))
    record = only(records)
    message = record.getMessage()
    assert_clean(message)
    assert "\n" not in message
    assert "\r" not in message
    path = message.split(" path=", 1)[1]
    assert path == (
        '"/a\\x0d\\x0aFAKE geofence: allow\\x1b[2J\\x1b]0;title\\x07\\u2028x\\u2029\\u202egnp.exe'
        '\\x00\\"\\\\\\x85\\x9b\\ud800"'
    )
    structured = record.geofence["path"]  # type: ignore[attr-defined]
    assert_clean(structured)
    assert structured.startswith("/a\\x0d\\x0aFAKE")


def test_hostile_record_is_written_by_a_strict_utf8_handler(
    records: pytest.LogCaptureFixture,
) -> None:
    # A lone surrogate reaching a UTF-8 stream with errors="strict" would raise in the handler.
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8", errors="strict")
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler.handleError = lambda record: pytest.fail("handler failed")  # type: ignore[method-assign]
    logs.logger.addHandler(handler)
    try:
        logs.log_decision(BLOCK, RequestInfo(peer="1.2.3.4", path=HOSTILE_PATH, method="G\nET"))
    finally:
        logs.logger.removeHandler(handler)
    stream.flush()
    written = raw.getvalue().decode("utf-8")
    assert written.count("\n") == 1  # one line, the terminator


def test_method_and_rule_cannot_fake_fields(records: pytest.LogCaptureFixture) -> None:
    decision = Decision("block", True, "rule", rule='x" reason=allow', client_ip="1.2.3.4")
    logs.log_decision(decision, RequestInfo(peer="1.2.3.4", method="GET path=/ok", path="/"))
    message = only(records).getMessage()
    assert 'rule="x\\" reason=allow"' in message
    assert "method=GET\\x20path\\x3d/ok " in message
    # The line splits into exactly the fields it was given (shell-style quoting).
    fields = dict(token.split("=", 1) for token in shlex.split(message)[1:])
    assert fields["rule"] == 'x" reason=allow'
    assert fields["reason"] == "rule"
    assert fields["path"] == "/"
    assert list(fields) == [
        "ref",
        "client_ip",
        "country",
        "subdivisions",
        "rule",
        "reason",
        "method",
        "path",
    ]


def test_long_values_are_truncated(records: pytest.LogCaptureFixture) -> None:
    logs.log_decision(BLOCK, RequestInfo(peer="1.2.3.4", path="/" + "a" * 10_000))
    record = only(records)
    path = record.geofence["path"]  # type: ignore[attr-defined]
    assert path == "/" + "a" * (logs.MAX_VALUE - 1) + "..."
    assert len(record.getMessage()) < 400


def test_truncation_never_splits_an_escape(records: pytest.LogCaptureFixture) -> None:
    logs.log_decision(BLOCK, RequestInfo(peer="1.2.3.4", path="\n" * 10_000))
    path = only(records).geofence["path"]  # type: ignore[attr-defined]
    assert path == "\\x0a" * logs.MAX_VALUE + "..."


def test_nothing_is_built_when_info_is_off(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.WARNING, logger="geofence")

    def boom(*args: object, **kwargs: object) -> str:
        raise AssertionError("escaped although INFO is disabled")

    monkeypatch.setattr(logs, "escape", boom)
    logs.log_decision(BLOCK, REQUEST)
    assert not [r for r in caplog.records if r.name == "geofence"]


def test_message_with_percent_signs_is_not_reformatted(records: pytest.LogCaptureFixture) -> None:
    logs.log_decision(BLOCK, RequestInfo(peer="1.2.3.4", path="/%s%d%(x)s"))
    assert only(records).getMessage().endswith('path="/%s%d%(x)s"')


# -- the logger's name is not repeated ----------------------------------------------------


def test_a_usual_format_shows_the_name_once(records: pytest.LogCaptureFixture) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    logs.logger.addHandler(handler)
    try:
        logs.log_decision(BLOCK, REQUEST)
        logs.log_db_error(DatabaseError("lookup failed"), FakeDB(), FakeClock())
    finally:
        logs.logger.removeHandler(handler)
    assert stream.getvalue().splitlines() == [
        "INFO geofence block ref=7K2MQ-X9PTW client_ip=175.16.199.1 country=CN subdivisions=CN-22 "
        'rule="unsupported-regions" reason=rule method=GET path="/v1/models"',
        "ERROR geofence database lookup failed: DatabaseError: lookup failed",
    ]


# -- database errors ------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeDB:
    description = "GeoIP2-City database '/var/lib/GeoIP/GeoIP2-City.mmdb'"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def db_messages(records: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in records.records
        if r.name == "geofence" and r.levelno == logging.ERROR
    ]


def test_db_errors_are_rate_limited(records: pytest.LogCaptureFixture, clock: FakeClock) -> None:
    db = FakeDB()
    logs.log_db_error(DatabaseError("lookup failed"), db, clock)
    assert db_messages(records) == ["database lookup failed: DatabaseError: lookup failed"]
    for offset in (1.0, 30.0, 59.999):
        clock.now = 1000.0 + offset
        logs.log_db_error(DatabaseError("lookup failed"), db, clock)
    assert len(db_messages(records)) == 1
    clock.now = 1060.0
    logs.log_db_error(DatabaseError("again"), db, clock)
    assert db_messages(records)[1] == (
        "database lookup failed: DatabaseError: again (3 more suppressed since the last report)"
    )
    clock.now = 1119.0
    logs.log_db_error(DatabaseError("held"), db, clock)
    clock.now = 1200.0
    logs.log_db_error(DatabaseError("later"), db, clock)
    assert db_messages(records)[2:] == [
        "database lookup failed: DatabaseError: later (1 more suppressed since the last report)"
    ]


def test_db_errors_are_limited_per_database(
    records: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    first, second = FakeDB(), FakeDB()
    logs.log_db_error(DatabaseError("one"), first, clock)
    logs.log_db_error(DatabaseError("one again"), first, clock)
    logs.log_db_error(DatabaseError("two"), second, clock)
    logs.log_db_error(DatabaseError("two again"), second, clock)
    assert db_messages(records) == [
        "database lookup failed: DatabaseError: one",
        "database lookup failed: DatabaseError: two",
    ]


def test_db_error_record_is_escaped_and_structured(
    records: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    try:
        try:
            raise OSError("read /var/lib/GeoIP/x.mmdb\r\nfailed\x1b[31m")
        except OSError as cause:
            raise DatabaseError("lookup of 1.2.3.4 failed") from cause
    except DatabaseError as error:
        logs.log_db_error(error, FakeDB(), clock)
    (record,) = [r for r in records.records if r.levelno == logging.ERROR]
    message = record.getMessage()
    assert_clean(message)
    assert message == (
        "database lookup failed: DatabaseError: lookup of 1.2.3.4 failed "
        "(caused by OSError: read /var/lib/GeoIP/x.mmdb\\x0d\\x0afailed\\x1b[31m)"
    )
    assert record.geofence == {  # type: ignore[attr-defined]
        "db": "GeoIP2-City database '/var/lib/GeoIP/GeoIP2-City.mmdb'",
        "error": message.removeprefix("database lookup failed: "),
        "suppressed": 0,
    }


def test_db_error_with_a_broken_str(records: pytest.LogCaptureFixture, clock: FakeClock) -> None:
    class Broken(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    logs.log_db_error(Broken(), FakeDB(), clock)
    assert db_messages(records) == ["database lookup failed: Broken"]


def test_a_database_without_weak_references_is_still_limited(
    records: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    class Slotted:
        __slots__ = ()

    for _ in range(3):
        logs.log_db_error(DatabaseError("x"), Slotted(), clock)
    assert len(db_messages(records)) == 1


def test_rate_limit_counts_independently_of_logging() -> None:
    clock = FakeClock()
    limit = logs.RateLimit(10.0, clock)
    assert limit.admit() == 0
    assert limit.admit() is None
    assert limit.admit() is None
    clock.now += 10.0
    assert limit.admit() == 2
    clock.now += 9.0
    assert limit.admit() is None
    limit.reset()
    assert limit.admit() == 0


# -- through engines: one limit per database, never process-wide -----------------------------

BAD_ADDRESS = "216.160.83.56"  # its record in BAD_RECORD_DB is malformed (country 12345)
ANON_BAD_RECORD_DB = str(FIXTURES / "GeoIP2-Anonymous-IP-bad-record.mmdb")
ANON_BAD_ADDRESS = "1.2.0.1"  # malformed flags in ANON_BAD_RECORD_DB


def engine(clock: FakeClock, country_db: str, **geoip: str) -> Engine:
    rules = [{"name": "anon", "action": "block", "anonymizers": ["vpn"]}] if geoip else []
    return Engine.from_config(
        {"geoip": {"country_db": country_db, "reload_interval": 0, **geoip}, "rules": rules},
        clock=clock,
    )


def test_a_second_engine_logs_its_first_failure(
    records: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    first, second = engine(clock, BAD_RECORD_DB), engine(clock, BAD_RECORD_DB)
    request = RequestInfo(peer=BAD_ADDRESS)
    assert first.decide(request).reason == "db_error"
    assert first.decide(request).reason == "db_error"
    assert len(db_messages(records)) == 1
    # Before: silent for 60 s, because the first engine had just logged.
    assert second.decide(request).reason == "db_error"
    second.decide(request)
    messages = db_messages(records)
    assert len(messages) == 2
    assert all("malformed record: country iso_code 12345" in m for m in messages)
    clock.now += 60.0
    first.decide(request)
    assert db_messages(records)[2].endswith("(1 more suppressed since the last report)")
    record = next(r for r in records.records if r.levelno == logging.ERROR)
    assert record.geofence["db"] == f"GeoIP2-City database {BAD_RECORD_DB!r}"  # type: ignore[attr-defined]


def test_each_database_of_one_engine_has_its_own_limit(
    records: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    both = engine(clock, BAD_RECORD_DB, anonymous_db=ANON_BAD_RECORD_DB)
    assert both.decide(RequestInfo(peer=ANON_BAD_ADDRESS)).reason == "db_error"
    assert both.decide(RequestInfo(peer=BAD_ADDRESS)).reason == "db_error"
    assert [r.geofence["db"] for r in records.records if r.levelno == logging.ERROR] == [  # type: ignore[attr-defined]
        f"GeoIP2-Anonymous-IP database {ANON_BAD_RECORD_DB!r}",
        f"GeoIP2-City database {BAD_RECORD_DB!r}",
    ]


def test_a_healthy_engine_logs_no_database_error(
    records: pytest.LogCaptureFixture, clock: FakeClock
) -> None:
    healthy = engine(clock, CITY_DB, anonymous_db=ANON_DB)
    assert healthy.decide(RequestInfo(peer=BAD_ADDRESS)).reason != "db_error"
    assert db_messages(records) == []

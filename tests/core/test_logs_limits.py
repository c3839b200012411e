"""Block/warn log lines are limited: a flood of blocked requests cannot flood the log, and
every decision is still accounted for (a line, a repeat counted on a later line, or a count
in a summary). Time is an injected monotonic clock; nothing sleeps."""

from __future__ import annotations

import logging
import re
import threading
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from tests_support import CITY_DB

from geofence import Decision, Engine, RequestInfo
from geofence import _logs as logs

CN_CLIENTS = ("175.16.199.1", "175.16.199.2", "175.16.199.3")  # CN in the City test database


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def records(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO, logger="geofence")
    return caplog


def decision_lines(records: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r for r in records.records if r.name == "geofence" and "ref" in getattr(r, "geofence", {})
    ]


def summaries(records: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in records.records
        if r.name == "geofence" and "suppressed" in getattr(r, "geofence", {})
    ]


def fence(clock: Clock, mode: str = "enforce") -> Engine:
    engine = Engine.from_config(
        {
            "mode": mode,
            "geoip": {"country_db": CITY_DB, "reload_interval": 0},
            "rules": [{"name": "cn", "action": "block", "regions": ["CN"]}],
        },
        clock=clock,
    )
    assert engine._observer.limits.clock is clock  # the limits run on the engine's clock
    return engine


def accounted(records: pytest.LogCaptureFixture, engine: Engine) -> int:
    """Decisions accounted for: lines, repeats they carry, summaries, and what is pending."""
    lines = decision_lines(records)
    repeats = sum(r.geofence["repeated"] for r in lines)  # type: ignore[attr-defined]
    summarised = sum(r.geofence["suppressed"] for r in summaries(records))  # type: ignore[attr-defined]
    held, capped, forgotten = engine._observer.limits.pending()
    return len(lines) + repeats + summarised + held + capped + forgotten


@pytest.mark.parametrize(("mode", "verb"), [("enforce", "block"), ("report", "would block")])
def test_ten_thousand_blocked_requests_from_three_clients_are_a_few_lines(
    records: pytest.LogCaptureFixture, mode: str, verb: str
) -> None:
    clock = Clock()
    engine = fence(clock, mode)
    for i in range(10_000):
        clock.now += 0.01  # 100 requests a second, 100 s in all
        decision = engine.decide(RequestInfo(peer=CN_CLIENTS[i % 3], path="/v1/chat"))
        assert decision.action == "block"
    lines = decision_lines(records)
    # Each client at its first request and once more a minute later.
    assert len(lines) == 6
    assert all(r.getMessage().startswith(f"{verb} ref=") for r in lines)
    assert all(r.levelno == logging.INFO for r in lines)
    assert {r.geofence["client_ip"] for r in lines} == set(CN_CLIENTS)  # type: ignore[attr-defined]
    assert [r.geofence["repeated"] for r in lines[:3]] == [0, 0, 0]  # type: ignore[attr-defined]
    # The second line of each client carries its repeats: about a minute's worth of its
    # requests (6000 requests a minute, a third each).
    for record in lines[3:]:
        repeated = record.geofence["repeated"]  # type: ignore[attr-defined]
        assert 1990 <= repeated <= 2010
        assert record.getMessage().endswith(f" repeated={repeated}")
    assert summaries(records) == []
    assert accounted(records, engine) == 10_000
    # The refs are the ones users are shown: a support desk finds the line.
    refs = {r.geofence["ref"] for r in lines}  # type: ignore[attr-defined]
    assert refs == {engine.decide(RequestInfo(peer=ip, path="/v1/chat")).ref for ip in CN_CLIENTS}


def test_a_new_client_is_always_logged_the_first_time(records: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    engine = fence(clock)
    for _ in range(3000):
        clock.now += 0.01
        engine.decide(RequestInfo(peer=CN_CLIENTS[0]))
    before = len(decision_lines(records))
    clock.now += 0.01
    newcomer = engine.decide(RequestInfo(peer="175.16.199.77"))
    lines = decision_lines(records)
    assert len(lines) == before + 1
    assert lines[-1].geofence["ref"] == newcomer.ref  # type: ignore[attr-defined]
    assert lines[-1].geofence["client_ip"] == "175.16.199.77"  # type: ignore[attr-defined]


def test_the_global_cap_counts_what_it_holds_back_in_a_summary(
    records: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    engine = fence(clock)
    limits = engine._observer.limits
    # 40 new clients in the same instant: the first `rate` are written, the others counted.
    clients = [f"175.16.199.{n}" for n in range(100, 140)]
    for ip in clients:
        engine.decide(RequestInfo(peer=ip))
    written = decision_lines(records)
    assert len(written) == int(limits.rate) == 10
    assert summaries(records) == []
    assert limits.pending() == (0, 30, 0)
    # The summary comes with the first decision after summary_every.
    clock.now += limits.summary_every
    engine.decide(RequestInfo(peer=clients[0]))
    (summary,) = summaries(records)
    assert summary.getMessage().startswith("30 block/warn lines suppressed (30 over the cap")
    assert summary.geofence == {"suppressed": 30, "capped": 30, "forgotten": 0}  # type: ignore[attr-defined]
    # A client held back by the cap was never written: it is new the next time it comes.
    engine.decide(RequestInfo(peer=clients[-1]))
    assert decision_lines(records)[-1].geofence["client_ip"] == clients[-1]  # type: ignore[attr-defined]
    assert accounted(records, engine) == 42


def test_memory_is_bounded_and_forgotten_repeats_are_summarised(
    records: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    limits = logs.DecisionLimits(rate=1e9, max_refs=100, summary_every=10.0, clock=clock)
    block = Decision("block", True, "rule", rule="r", client_ip="1.2.3.4")
    request = RequestInfo(peer="1.2.3.4")
    for n in range(1000):
        clock.now += 0.001
        decision = block._replace(ref=f"REF{n:05d}")
        logs.log_decision(decision, request, limits)
        logs.log_decision(decision, request, limits)  # a repeat, held
    assert len(limits._refs) == 100
    held, capped, forgotten = limits.pending()
    assert (held, capped, forgotten) == (100, 0, 900)
    clock.now += 10.0
    logs.log_decision(block._replace(ref="REF00999"), request, limits)
    (summary,) = summaries(records)
    assert summary.geofence == {"suppressed": 900, "capped": 0, "forgotten": 900}  # type: ignore[attr-defined]
    # Each ref written once; REF00999's minute is not up: held, with the others remembered.
    assert len(decision_lines(records)) == 1000
    assert limits.pending() == (101, 0, 0)


def test_limits_are_thread_safe_and_counts_add_up() -> None:
    clock = Clock()
    limits = logs.DecisionLimits(clock=clock, rate=5.0)
    results: list[tuple[int | None, Any]] = []
    lock = threading.Lock()

    def work(n: int) -> None:
        mine = [limits.admit(f"ref-{(n * 1000 + i) % 7}") for i in range(2000)]
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    written = [r for r, _ in results if r is not None]
    summarised = sum(sum(s) for _, s in results if s is not None)
    held, capped, forgotten = limits.pending()
    assert len(written) == 5  # the cap's burst; 7 refs, so 2 were capped once at least
    assert len(written) + sum(written) + summarised + held + capped + forgotten == 16_000


def test_summary_line_shows_no_logger_name(records: pytest.LogCaptureFixture) -> None:
    logs.log_suppressed(3, 2)
    (record,) = summaries(records)
    assert not re.search(r"\bgeofence\b", record.getMessage())
    assert record.getMessage() == (
        "5 block/warn lines suppressed (3 over the cap of lines per second, 2 repeats of "
        "references no longer tracked)"
    )


def test_a_rule_moving_from_warn_to_block_is_logged_at_once(
    records: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    engine = Engine.from_config(
        {
            "geoip": {"country_db": CITY_DB, "reload_interval": 0},
            "rules": [
                {
                    "name": "cn",
                    "action": "block",
                    "regions": ["CN"],
                    "warn_from": "2026-06-25T00:00:00Z",
                    "enforce_from": "2026-07-09T00:00:00Z",
                }
            ],
        },
        clock=clock,
    )
    switch = datetime(2026, 7, 9, tzinfo=timezone.utc)
    request = RequestInfo(peer=CN_CLIENTS[0])
    second = timedelta(seconds=1)
    actions = [engine.decide(request, now=switch + k * second).action for k in (-2, -1, 0, 1)]
    assert actions == ["warn", "warn", "block", "block"]
    lines = decision_lines(records)
    # The same ref (client, rule, reason) within a second: the block is still written.
    assert [r.geofence["action"] for r in lines] == ["warn", "block"]  # type: ignore[attr-defined]
    assert lines[0].geofence["ref"] == lines[1].geofence["ref"]  # type: ignore[attr-defined]

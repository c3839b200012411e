"""The account store down, for real: nothing listening, a black hole (``SIGSTOP``), a server
killed and restarted. DESIGN "Accounts": the request waits at most ``timeout``, never
retries, ``on_store_error`` decides what the store would have, an IP rule's block is never
changed, a suspension the process knows keeps blocking, and after repeated failures a
circuit breaker skips the store (the ``store_error`` event fires once).

No mocks: a real redis-server per test (these tests stop and kill it). Time is never slept
on: the breaker's cooldown runs on the engine's injected monotonic clock, and the only
timings asserted are generous bounds around ``timeout`` (the regression they catch is
redis-py's retry policy, which made one call to a dead server take seconds). Whether a
request reached the store is counted, not timed: every ``record`` call of the engine's own
store object is counted on its way to Redis, and the restarted server's command statistics
show what reached it.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis_servers import RedisServer, free_port, redis_server
from tests_support import CITY_DB

import geofence
from geofence import Account, Event, RequestInfo
from geofence._events import REQUEST_KINDS
from geofence.http import Answer

TIMEOUT = 0.1  # accounts.timeout in these tests (seconds)
# Generous: a loaded CI machine. What it catches is a call that retries or hangs.
BOUND = TIMEOUT * 2 + 0.1
COOLDOWN = 5.0  # the breaker's (geofence/accounts/_breaker.py)
FAILURES = 3  # consecutive failures that open it

CN = "175.16.199.1"  # rule "graced": block, with account_grace
RU = "2a02:d0c0::1"  # rule "sanctioned": block, no account_grace (an IP rule alone)
GB = "81.2.69.142"  # allowed


def policy(url: str, on_store_error: str = "local") -> dict[str, Any]:
    return {
        "geoip": {"country_db": CITY_DB},
        "accounts": {
            "store": url,
            "timeout": f"{round(TIMEOUT * 1000)}ms",
            "on_store_error": on_store_error,
        },
        "strikes": {"threshold": 3, "window": "1h", "suspend_for": "1d"},
        "rules": [
            {"name": "graced", "action": "block", "regions": ["CN"], "account_grace": "14d"},
            {"name": "sanctioned", "action": "block", "regions": ["RU"]},
        ],
    }


class Clock:
    """The engine's monotonic clock (it drives the breaker's cooldown): moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Calls:
    """Counts the calls the engine makes to its store (the real one, which they reach)."""

    def __init__(self, engine: geofence.Engine) -> None:
        store: Any = engine.store
        assert store is not None
        self.count = 0
        record, arecord = store.record, store.arecord

        def counted_record(*args: Any) -> Any:
            self.count += 1
            return record(*args)

        async def counted_arecord(*args: Any) -> Any:
            self.count += 1
            return await arecord(*args)

        store.record, store.arecord = counted_record, counted_arecord


class Fence:
    """An engine on the store under test, with its clock, its events and its store calls."""

    def __init__(self, url: str, on_store_error: str = "local") -> None:
        self.clock = Clock()
        self.events: list[Event] = []
        self.engine = geofence.Engine.from_config(
            policy(url, on_store_error), clock=self.clock, on_event=self.events.append
        )
        self.calls = Calls(self.engine)

    def kinds(self) -> list[str]:
        # Transitions only: request events (block, warn) are tested in tests/core.
        return [e.kind for e in self.events if e.kind not in REQUEST_KINDS]


# ask(engine, ip, account) -> (the answer, seconds it took): sync or asyncio.
Ask = Callable[[geofence.Engine, str, str], tuple[Answer, float]]


@pytest.fixture(params=["sync", "async"])
def ask(request: pytest.FixtureRequest) -> Iterator[Ask]:
    """``engine.answer`` (the sync Redis client) or ``engine.aanswer`` (redis.asyncio), on
    one event loop for the whole test, as in an ASGI server."""
    loop = asyncio.new_event_loop() if request.param == "async" else None

    def call(engine: geofence.Engine, ip: str, account: str) -> tuple[Answer, float]:
        info = RequestInfo(peer=ip, method="GET", path="/v1/models")
        started = time.perf_counter()
        if loop is None:
            answer = engine.answer(info, account=Account(account))
        else:
            answer = loop.run_until_complete(engine.aanswer(info, account=Account(account)))
        return answer, time.perf_counter() - started

    yield call
    if loop is not None:
        loop.run_until_complete(loop.shutdown_asyncgens())  # closes the asyncio clients
        loop.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own: the test stops, pauses or kills it."""
    with redis_server(tmp_path / "redis") as running:
        yield running


def nowhere() -> str:
    """A store URI with nothing listening (connections are refused)."""
    return f"redis://127.0.0.1:{free_port()}/0"


def outcome(answer: Answer) -> tuple[str, str, int | None]:
    decision = answer.decision
    status = answer.response.status if answer.response is not None else None
    return decision.action, decision.reason, status


def counted_strikes(engine: geofence.Engine, account: str) -> int:
    store = engine.store
    assert store is not None
    return store.fetch(account, time.time()).strikes


# -- the app starts without its store -------------------------------------------------------


def test_an_unreachable_store_at_build_is_logged_and_the_engine_builds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = nowhere()
    with caplog.at_level(logging.WARNING, logger="geofence"):
        fence = Fence(url)
    startup = [r for r in caplog.records if "unreachable at startup" in r.getMessage()]
    assert len(startup) == 1, caplog.text
    assert url in startup[0].getMessage()
    answer = fence.engine.answer(RequestInfo(peer=GB, path="/v1/models"), account=Account("a"))
    assert outcome(answer) == ("allow", "default", None)
    assert fence.kinds() == []  # one failure is no outage yet


def test_a_black_hole_at_build_costs_the_build_one_timeout(
    server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    server.pause()
    started = time.perf_counter()
    with caplog.at_level(logging.WARNING, logger="geofence"):
        Fence(server.url)
    assert time.perf_counter() - started < BOUND + 1.0  # + building the engine itself
    assert "unreachable at startup" in caplog.text


# -- nothing listening: on_store_error decides ----------------------------------------------


def test_nothing_listening_local_uses_this_process_state(ask: Ask) -> None:
    fence = Fence(nowhere(), "local")
    eng = fence.engine
    answers = []
    for ip, account in [(GB, "org_gb"), (CN, "org_cn"), (RU, "org_ru"), (RU, "org_ru")]:
        answer, took = ask(eng, ip, account)
        assert took < BOUND
        answers.append(outcome(answer))
    assert answers == [
        ("allow", "default", None),
        # Its grace starts in this process (no event: the shared store makes those once).
        ("warn", "account_grace", None),
        ("block", "rule", 451),
        ("block", "rule", 451),
    ]
    # The third strike, counted here, suspends here: every request of the account is blocked.
    assert outcome(ask(eng, RU, "org_ru")[0]) == ("block", "account_suspended", 403)
    assert outcome(ask(eng, GB, "org_ru")[0]) == ("block", "account_suspended", 403)
    assert outcome(ask(eng, GB, "org_gb")[0]) == ("allow", "default", None)
    assert fence.kinds() == ["store_error"]


def test_nothing_listening_allow_means_no_grace_strikes_or_suspension(ask: Ask) -> None:
    fence = Fence(nowhere(), "allow")
    eng = fence.engine
    for _ in range(5):
        answer, took = ask(eng, RU, "org_ru")
        assert took < BOUND
        # An IP rule's block is never changed by a store failure; no strike is counted.
        assert outcome(answer) == ("block", "rule", 451)
    # No account grace: the rule's own block.
    assert outcome(ask(eng, CN, "org_cn")[0]) == ("block", "rule", 451)
    # No suspension after five blocks.
    assert outcome(ask(eng, GB, "org_ru")[0]) == ("allow", "default", None)
    assert fence.kinds() == ["store_error"]


def test_nothing_listening_block_answers_503_never_451_but_ip_rules_stand(ask: Ask) -> None:
    fence = Fence(nowhere(), "block")
    eng = fence.engine
    for ip in (GB, CN, GB, CN):
        answer, took = ask(eng, ip, "org_1")
        assert took < BOUND
        assert outcome(answer) == ("block", "store_error", 503)
        assert answer.response is not None
        headers = dict(answer.response.headers)
        assert "Retry-After" in headers
        assert answer.decision.rule is None
    # A block by the client's IP rules alone stays what it is: 451, not 503.
    assert outcome(ask(eng, RU, "org_1")[0]) == ("block", "rule", 451)
    assert fence.kinds() == ["store_error"]


@pytest.mark.parametrize("on_store_error", ["local", "allow", "block"])
def test_a_suspension_known_here_keeps_blocking_while_the_store_is_down(
    server: RedisServer, ask: Ask, on_store_error: str
) -> None:
    fence = Fence(server.url, on_store_error)
    eng = fence.engine
    for _ in range(3):
        ask(eng, RU, "org_s")
    assert outcome(ask(eng, GB, "org_s")[0]) == ("block", "account_suspended", 403)
    assert fence.kinds().count("account_suspended") == 1
    server.kill()  # nothing listening from now on
    for _ in range(FAILURES + 2):  # before the breaker opens, and after
        answer, took = ask(eng, GB, "org_s")
        assert took < BOUND
        assert outcome(answer) == ("block", "account_suspended", 403)
    assert fence.kinds().count("store_error") == 1
    # An account this process knows nothing about gets what on_store_error says.
    expected = {
        "local": ("allow", "default", None),
        "allow": ("allow", "default", None),
        "block": ("block", "store_error", 503),
    }[on_store_error]
    assert outcome(ask(eng, GB, "org_unknown")[0]) == expected


# -- a black hole: every call ends at timeout, then the breaker skips the store --------------


def test_black_hole_calls_end_at_timeout_then_the_breaker_opens_and_probes(
    server: RedisServer, ask: Ask
) -> None:
    fence = Fence(server.url, "local")
    eng = fence.engine
    assert outcome(ask(eng, CN, "org_warm")[0]) == ("warn", "account_grace", None)  # connected
    assert fence.calls.count == 1
    fence.events.clear()
    server.pause()
    for i in range(FAILURES):
        answer, took = ask(eng, GB, f"org_{i}")  # a new account: needs the store
        assert outcome(answer) == ("allow", "default", None)
        # It waited for the server (a black hole, not a refusal), and no longer than timeout.
        assert TIMEOUT * 0.9 <= took < BOUND
        assert fence.calls.count == 2 + i
        assert fence.kinds() == (["store_error"] if i == FAILURES - 1 else [])
    event = fence.events[0]
    assert event.account == f"org_{FAILURES - 1}"
    assert server.url in str(event.detail["store"])

    # Open: requests that need the store skip it, whatever they are.
    for ip in (GB, CN, RU, GB):
        ask(eng, ip, "org_open")
    assert fence.calls.count == 1 + FAILURES
    fence.clock.advance(COOLDOWN - 0.01)
    ask(eng, GB, "org_open_2")
    assert fence.calls.count == 1 + FAILURES

    # After the cooldown, one request probes (and waits for the black hole); the breaker
    # opens again at once; the event does not fire again.
    fence.clock.advance(0.02)
    answer, took = ask(eng, GB, "org_probe")
    assert TIMEOUT * 0.9 <= took < BOUND
    assert fence.calls.count == 2 + FAILURES
    for _ in range(3):
        ask(eng, GB, "org_after_probe")
    assert fence.calls.count == 2 + FAILURES
    assert fence.kinds() == ["store_error"]

    # The server answers again: the next probe succeeds and closes the breaker.
    server.resume()
    fence.clock.advance(COOLDOWN)
    assert outcome(ask(eng, CN, "org_back")[0]) == ("warn", "account_grace", None)
    assert fence.calls.count == 3 + FAILURES
    assert outcome(ask(eng, RU, "org_back")[0]) == ("block", "rule", 451)  # a strike: a call
    assert fence.calls.count == 4 + FAILURES
    assert counted_strikes(eng, "org_back") == 1
    assert fence.kinds() == ["store_error", "account_grace_started", "account_strike"]


def test_kill_and_restart_requests_work_again_after_the_cooldown(
    server: RedisServer, ask: Ask
) -> None:
    fence = Fence(server.url, "local")
    eng = fence.engine
    assert outcome(ask(eng, RU, "org_k")[0]) == ("block", "rule", 451)
    assert counted_strikes(eng, "org_k") == 1
    server.kill()
    for i in range(FAILURES):
        # Other accounts: three local strikes of org_k would suspend it here ("local").
        answer, took = ask(eng, RU, f"org_down_{i}")
        assert took < BOUND
        assert outcome(answer) == ("block", "rule", 451)
    assert fence.kinds().count("store_error") == 1

    server.start()  # the same port, an empty server (persistence is off)
    server.cli("CONFIG", "RESETSTAT")
    for ip in (GB, RU, CN):
        ask(eng, ip, "org_new")
    # The breaker is open: nothing reached the restarted server.
    stats = server.cli("INFO", "commandstats")
    assert "cmdstat_evalsha" not in stats and "cmdstat_eval:" not in stats, stats
    assert fence.calls.count == 1 + FAILURES

    fence.clock.advance(COOLDOWN)
    assert outcome(ask(eng, CN, "org_new2")[0]) == ("warn", "account_grace", None)  # probe
    assert outcome(ask(eng, RU, "org_k")[0]) == ("block", "rule", 451)
    assert outcome(ask(eng, RU, "org_k")[0]) == ("block", "rule", 451)
    assert fence.calls.count == 4 + FAILURES
    # Counted by the new server: the strikes before the outage went with the old one.
    assert counted_strikes(eng, "org_k") == 2
    assert fence.kinds().count("store_error") == 1
    assert "account_grace_started" in fence.kinds()


def test_a_cancelled_probe_does_not_wedge_the_breaker(server: RedisServer) -> None:
    fence = Fence(server.url, "local")
    eng = fence.engine

    async def scenario() -> None:
        def info() -> RequestInfo:
            return RequestInfo(peer=GB, path="/v1/models")

        server.pause()
        for i in range(FAILURES):
            await eng.adecide(info(), account=Account(f"org_{i}"))
        fence.clock.advance(COOLDOWN)
        with pytest.raises(asyncio.TimeoutError):
            # The probe is cancelled while it waits for the black hole.
            await asyncio.wait_for(eng.adecide(info(), account=Account("org_p")), TIMEOUT / 10)
        assert fence.calls.count == FAILURES + 1
        server.resume()
        fence.clock.advance(COOLDOWN)
        decision = await eng.adecide(
            RequestInfo(peer=CN, path="/v1/models"), account=Account("org_q")
        )
        assert fence.calls.count == FAILURES + 2, "no probe after the cooldown"
        assert decision.reason == "account_grace"

    asyncio.run(scenario())


class Interrupted(BaseException):
    """What a worker's own deadline raises inside a blocking call (gevent.Timeout, a signal
    handler): not an Exception, so no store code may swallow it."""


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer")
def test_an_interrupted_sync_probe_does_not_wedge_the_breaker(server: RedisServer) -> None:
    fence = Fence(server.url, "local")
    eng = fence.engine

    def info(ip: str = GB) -> RequestInfo:
        return RequestInfo(peer=ip, path="/v1/models")

    def interrupt(signum: int, frame: object) -> None:
        raise Interrupted

    server.pause()
    for i in range(FAILURES):
        eng.decide(info(), account=Account(f"org_{i}"))
    fence.clock.advance(COOLDOWN)
    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        # The probe is interrupted while it waits for the black hole.
        signal.setitimer(signal.ITIMER_REAL, TIMEOUT / 10)
        with pytest.raises(Interrupted):
            eng.decide(info(), account=Account("org_p"))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert fence.calls.count == FAILURES + 1
    server.resume()
    fence.clock.advance(COOLDOWN)
    decision = eng.decide(info(CN), account=Account("org_q"))
    assert fence.calls.count == FAILURES + 2, "no probe after the cooldown"
    assert decision.reason == "account_grace"

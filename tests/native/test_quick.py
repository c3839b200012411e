"""Engine.quick(peer, method, path): cached(), and on the compiled build a new client decided
by the compiled step from these three alone, before an adapter builds any request facts.

An adapter asks ``quick(...) or answer(request)``. Whatever quick answers or leaves, that flow
must end where ``answer(request)`` alone ends: the same answers, cache entries, memos, events
and log lines; each decision that needs observing observed exactly once (by answer(), which
finds what quick stored). Skipped on the pure-Python build, where quick is cached().
"""

from __future__ import annotations

import logging
import random
import re
from typing import Any

import pytest

from geofence import Engine, Event, RequestInfo
from geofence._logs import DecisionLimits
from geofence.hotpath._newclient import NATIVE

from .test_new_client_step import (
    METHODS,
    PATHS,
    POLICIES,
    _answer,
    _entries,
    _event,
    _networks_of,
    _peers,
)

pytestmark = pytest.mark.skipif(not NATIVE, reason="geofence.hotpath._miss is not built")

COUNT = 4000
BLOCKED_SE = "89.160.20.113"  # SE in the test databases: blocked on /v1/* by "unsupported"
WARNED_GB = "81.2.69.161"  # GB: warned on /v1/* by "new"


def _settled(engine: Engine) -> Engine:
    """An engine whose clock window is set: quick() has nothing to decide before that."""
    engine.decide(RequestInfo("198.51.100.1", {}, "GET", "/"))
    return engine


class Flows:
    """One policy twice: ``fast`` asked as an adapter asks (quick, then answer with the
    request), ``slow`` with answer() alone and without the compiled step."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.events: dict[str, list[object]] = {"fast": [], "slow": []}
        fast_events, slow_events = self.events["fast"], self.events["slow"]
        self.fast = Engine.from_config(config, on_event=lambda e: fast_events.append(_event(e)))
        self.slow = Engine.from_config(config, on_event=lambda e: slow_events.append(_event(e)))
        self.slow._miss = None
        self.quick_answers = 0
        # The log limits' clock, one second a request for both engines: which lines the limits
        # let through must not depend on how fast this machine runs the loop.
        self.now = 0.0
        for engine in (self.fast, self.slow):
            engine._observer.limits = DecisionLimits(clock=lambda: self.now)

    def ask(self, peer: str | None, method: str, path: str) -> None:
        self.now += 1.0
        new = self.fast.cached(peer, method, path) is None
        fast = self.fast.quick(peer, method, path)
        if fast is None:
            fast = self.fast.answer(RequestInfo(peer, {}, method, path))
        elif new:
            self.quick_answers += 1
        slow = self.slow.answer(RequestInfo(peer, {}, method, path))
        assert _answer(fast, self.fast) == _answer(slow, self.slow), (peer, method, path)

    def check_same_state(self) -> None:
        assert _entries(self.fast) == _entries(self.slow)
        assert self.fast._finds[3] == self.slow._finds[3]
        assert self.fast._verdicts == self.slow._verdicts
        assert self.events["fast"] == self.events["slow"]


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_quick_then_answer_ends_where_answer_alone_does(
    name: str, caplog: pytest.LogCaptureFixture
) -> None:
    config = POLICIES[name]
    flows = Flows(config)
    rng = random.Random(f"quick-{name}")
    peers = _peers(rng, _networks_of(config["geoip"]["country_db"]))
    with caplog.at_level(logging.INFO, logger="geofence"):
        for _ in range(COUNT):
            flows.ask(next(peers), rng.choice(METHODS), rng.choice(PATHS))
    flows.check_same_state()
    # Each engine logged the same lines: nothing quick stored went unlogged or twice. (The
    # engines' references differ, each with its own key: compared without them.)
    lines = [r.getMessage() for r in caplog.records if r.name == "geofence"]
    assert len(lines) % 2 == 0 and lines, len(lines)
    fast, slow = (sorted(re.sub(r"ref=\S+ ", "", line) for line in lines[i::2]) for i in (0, 1))
    assert fast == slow
    # quick really decided new clients (else this compared answer() with itself); fewer where
    # the default is to block (a block is answer()'s: only it has the request).
    assert flows.quick_answers > (10 if name == "direct" else COUNT // 10), flows.quick_answers


@pytest.fixture
def engine() -> Engine:
    return _settled(Engine.from_config(POLICIES["proxied"]))


def test_a_new_allowed_client_is_answered_and_stored(engine: Engine) -> None:
    answer = engine.quick("8.8.8.8", "GET", "/v1/items")
    assert answer is not None and answer.response is None and not answer.amends
    assert answer.decision.action == "allow" and answer.decision.client_ip == "8.8.8.8"
    assert engine.cached("8.8.8.8", "GET", "/v1/items") is answer


def test_a_new_blocked_client_is_stored_for_answer_to_observe(engine: Engine) -> None:
    seen: list[Event] = []
    engine = _settled(Engine.from_config(POLICIES["proxied"], on_event=seen.append))
    before = len(seen)
    assert engine.quick(BLOCKED_SE, "GET", "/v1/items") is None
    assert len(seen) == before  # not observed yet: quick has no request to log
    assert engine.cached(BLOCKED_SE, "GET", "/v1/items") is None  # stored, but not quiet
    answer = engine.answer(
        RequestInfo(BLOCKED_SE, [("accept", "application/json")], "GET", "/v1/items")
    )
    assert answer.response is not None and answer.response.status == 451
    assert answer.decision.action == "block" and answer.decision.ref is not None
    assert [e.kind for e in seen[before:]] == ["block"]
    # The decision quick made (its reference) is the one answered.
    again = engine.answer(RequestInfo(BLOCKED_SE, {}, "GET", "/v1/items"))
    assert again.decision.ref == answer.decision.ref
    assert [e.kind for e in seen[before:]] == ["block", "block"]


def test_a_warned_client_is_left_to_answer(engine: Engine) -> None:
    assert engine.quick(WARNED_GB, "GET", "/v1/items") is None
    answer = engine.answer(RequestInfo(WARNED_GB, {}, "GET", "/v1/items"))
    assert answer.decision.action == "warn" and answer.amends


@pytest.mark.parametrize(
    ("peer", "method", "path"),
    [
        ("216.160.83.57", "GET", "/v1/items"),  # a trusted proxy: the client is elsewhere
        ("10.1.2.3", "GET", "/v1/items"),  # private
        (None, "GET", "/v1/items"),
        ("not an address", "GET", "/v1/items"),
        ("8.8.8.8", "get", "/v1/items"),  # a method answer() upper-cases
        ("8.8.8.8", "GET", "/healthz"),  # an exempt path
        (b"8.8.8.8", "GET", "/"),
        ([], "GET", "/"),  # not even hashable
    ],
)
def test_what_quick_leaves_to_answer(engine: Engine, peer: Any, method: str, path: str) -> None:
    size = len(engine._cache)
    assert engine.quick(peer, method, path) is None
    assert len(engine._cache) == size


def test_before_the_first_request_quick_decides_nothing() -> None:
    engine = Engine.from_config(POLICIES["proxied"])
    assert engine.quick("8.8.8.8", "GET", "/") is None
    assert engine._cache == {}


def test_other_calls_are_cached(engine: Engine) -> None:
    engine.answer(RequestInfo("8.8.4.4", {}, "GET", "/"))
    for args in [("8.8.4.4", "GET", "/", None), ("8.8.4.4", "GET", "/", None, "1.1.1.1")]:
        assert engine.quick(*args) is engine.cached(*args)
    # account=None passed on (a subclass's wrapper) is the common call; anything else is
    # cached(), which decides nothing.
    assert engine.quick("9.9.9.9", "GET", "/", None) is not None
    assert engine.quick("9.9.9.10", "GET", "/", None, "1.1.1.1") is None
    assert engine.quick("9.9.9.11", "GET", "/", account=None) is None
    off = _settled(Engine.from_config({**POLICIES["proxied"], "mode": "off"}))
    assert off.quick("8.8.8.8", "GET", "/") is off.cached("8.8.8.8", "GET", "/")
    assert off.quick("8.8.8.8", "GET", "/").decision.reason == "off"


def test_an_allow_counted_by_metrics_is_counted_once() -> None:
    flows = Flows(POLICIES["report"])
    for i in range(50):
        flows.ask(f"8.8.{i}.1", "GET", "/")
    assert flows.quick_answers > 0
    flows.check_same_state()


def test_a_failing_step_leaves_the_request_to_answer(engine: Engine) -> None:
    def broken(*args: Any) -> Any:
        raise RuntimeError("broken")

    engine._miss = broken
    size = len(engine._cache)
    assert engine.quick("8.8.8.8", "GET", "/") is None
    assert len(engine._cache) == size
    engine._miss = None  # (answer() would raise the step's error, as _entry would)
    assert engine.answer(RequestInfo("8.8.8.8", {}, "GET", "/")).decision.action == "allow"


def test_a_step_that_gives_no_entry_is_no_answer(engine: Engine) -> None:
    engine._miss = lambda *args: ("not", "an entry")
    assert engine.quick("8.8.8.8", "GET", "/") is None


def test_a_trusted_proxy_is_declined_every_time() -> None:
    # The step remembers the text of a peer it found to be a trusted proxy (behind one, most
    # requests are the proxy's) and declines it again without parsing it: the same None,
    # nothing stored, and the client it forwarded is still answer()'s.
    engine = _settled(Engine.from_config(POLICIES["proxied"]))
    for peer in ["216.160.83.57", "::ffff:216.160.83.57", "2a02:d3c1::7"] * 3:
        size = len(engine._cache)
        assert engine.quick(peer, "GET", "/v1/items") is None
        assert len(engine._cache) == size
    forwarded = RequestInfo("216.160.83.57", [("x-forwarded-for", "8.8.8.8")], "GET", "/v1/items")
    assert engine.answer(forwarded).decision.client_ip == "8.8.8.8"
    assert engine.quick("8.8.8.9", "GET", "/v1/items") is not None  # a direct client still is


def test_quick_after_a_miss_of_cached_never_decides_twice(engine: Engine) -> None:
    # An adapter asks cached() and then quick() with the same three (Django with exempt
    # views). Decided in between (another thread), the request is not decided again: quick()
    # answers the entry or leaves it, and answer() finds the first entry.
    peer, method, path = "8.8.8.8", "GET", "/v1/items"
    assert engine.cached(peer, method, path) is None
    first = engine.answer(RequestInfo(peer, {}, method, path))
    entry = engine._cache[(peer, method, path)]
    again = engine.quick(peer, method, path)
    assert again is None or again is first
    assert engine._cache[(peer, method, path)] is entry
    assert engine.answer(RequestInfo(peer, {}, method, path)) is first


def test_quick_after_a_miss_of_cached_follows_a_new_epoch(engine: Engine) -> None:
    # The epoch changed between cached()'s miss and quick() (a reload, or the window moved
    # on): quick() stores its entry under the new epoch.
    peer, method, path = "8.8.8.9", "GET", "/v1/items"
    assert engine.cached(peer, method, path) is None
    start, end, epoch = engine._state
    newer = (epoch[0], object())
    engine._probe.set(start, end, newer)
    assert engine.quick(peer, method, path) is not None
    assert engine._cache[(peer, method, path)][0] is newer


def test_quick_of_other_text_than_cached_missed_probes_again(engine: Engine) -> None:
    assert engine.cached("8.8.8.10", "GET", "/v1/items") is None
    engine.answer(RequestInfo("8.8.8.11", {}, "GET", "/v1/items"))
    # Equal text in other objects: the probe finds the entry answer() stored.
    known = engine.cached("8.8.8.11", "GET", "/v1/items")
    assert known is not None
    assert engine.quick("".join(["8.8.8.", "11"]), "GET", "/v1/items") is known


def test_quick_leaves_a_stale_entry_to_answer(engine: Engine) -> None:
    # The probe finds an entry of an older epoch: not a plain miss, so the step must look in
    # the cache itself and decline (Python replaces a stale entry), not overwrite it.
    peer, method, path = "8.8.8.12", "GET", "/v1/items"
    engine.answer(RequestInfo(peer, {}, method, path))
    stale = engine._cache[(peer, method, path)]
    start, end, epoch = engine._state
    engine._probe.set(start, end, (epoch[0], object()))
    assert engine.quick(peer, method, path) is None
    assert engine._cache[(peer, method, path)] is stale


def test_the_step_trusts_a_probe_that_found_nothing(engine: Engine) -> None:
    # ``absent`` (the eighth argument, from quick()'s own probe) skips the step's own look
    # into the cache; without it, a key the cache holds is declined.
    peer, method, path = "8.8.8.13", "GET", "/v1/items"
    known = engine.answer(RequestInfo(peer, {}, method, path))
    start, _, epoch = engine._state
    step = engine._miss
    assert step is not None
    wall = start + 1.0
    assert step(engine, None, epoch, wall, peer, method, path) is None
    assert step(engine, None, epoch, wall, peer, method, path, False) is None
    assert engine._cache[(peer, method, path)][3] is known
    made = step(engine, None, epoch, wall, peer, method, path, True)
    assert made is not None and made[1] == known.decision

"""The decision-cache probe: the C one (geofence.hotpath._hotpath) and its Python twin, case by
case.

Every test runs on both implementations; the C one is skipped when it is not built. A
differential test drives both with the same random operations and compares every answer.
"""

from __future__ import annotations

import gc
import itertools
import os
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

import pytest
import time_machine
from hypothesis import given, settings
from hypothesis import strategies as st

from geofence import Decision, RequestInfo
from geofence._model import DecisionKey
from geofence.hotpath import _probe
from geofence.http._answer import Answer

hotpath: ModuleType | None
try:
    from geofence.hotpath import _hotpath as hotpath
except ImportError:
    hotpath = None

NOT_BUILT = (
    "geofence.hotpath._hotpath is not built for this Python (no C compiler at install, or a "
    "GEOFENCE_PURE_PYTHON build): only the Python twin is tested"
)
IMPLEMENTATIONS = [
    pytest.param(_probe.Probe, id="python"),
    pytest.param(
        hotpath.Probe if hotpath is not None else None,
        id="c",
        marks=pytest.mark.skipif(hotpath is None, reason=NOT_BUILT),
    ),
]
INF = float("inf")
PEER = "81.2.69.142"


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = 150.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def new_epoch(segment: int = 1, generation: int = 0) -> tuple[int, int]:
    # A new object on each call (a tuple of constants in the code would be one shared object).
    return (segment, generation)


@pytest.fixture(params=IMPLEMENTATIONS)
def make(request: pytest.FixtureRequest) -> Callable[..., Any]:
    factory: Callable[..., Any] = request.param
    return factory


class World:
    """A probe over its own cache, with a hand clock, an epoch and an allowed entry."""

    def __init__(self, make: Callable[..., Any]) -> None:
        self.cache: dict[object, object] = {}
        self.clock = Clock()
        self.probe = make(self.cache, self.clock)
        self.epoch = new_epoch()
        self.probe.set(100.0, 200.0, self.epoch)
        self.decision = Decision(action="allow", enforced=True, reason="rule")
        self.answer = Answer(self.decision)
        self.request = RequestInfo(peer=PEER, method="GET", path="/a")

    def put(self, attention: object, peer: object = PEER, **kw: object) -> tuple[object, ...]:
        entry = (kw.get("epoch", self.epoch), self.decision, attention, self.answer)
        self.cache[DecisionKey(peer, "GET", "/a")] = entry  # type: ignore[arg-type]
        return entry


@pytest.fixture
def world(make: Callable[..., Any]) -> World:
    return World(make)


# -- the window ------------------------------------------------------------------------------


def test_a_new_probe_misses_until_set(make: Callable[..., Any]) -> None:
    cache: dict[object, object] = {(PEER, "GET", "/a"): (None, "decision", False, "answer")}
    probe = make(cache, Clock(0.0))
    # The initial window [0, 0) is empty, whatever the entry's epoch.
    assert probe.decision(RequestInfo(PEER, path="/a")) is None
    assert probe.answer(PEER, "GET", "/a") is None
    assert probe.entry(RequestInfo(PEER, path="/a")) is None


@pytest.mark.parametrize(
    ("now", "hit"),
    [
        (99.99999, False),
        (100.0, True),  # start is inclusive
        (150.0, True),
        (199.99999, True),
        (200.0, False),  # end is exclusive
        (1e12, False),
        (float("nan"), False),
    ],
)
def test_window_edges(world: World, now: float, hit: bool) -> None:
    world.put(False)
    world.clock.now = now
    assert (world.probe.decision(world.request) is world.decision) is hit
    assert (world.probe.answer(PEER, "GET", "/a") is world.answer) is hit
    assert (world.probe.entry(world.request) is not None) is hit


def test_the_wall_clock_moving_backwards(world: World) -> None:
    world.put(False)
    for now, hit in [(150.0, True), (50.0, False), (199.0, True), (99.0, False), (100.0, True)]:
        world.clock.now = now
        assert (world.probe.decision(world.request) is world.decision) is hit


def test_set_moves_the_window_and_accepts_integers(world: World) -> None:
    world.put(False)
    world.probe.set(0, 10, world.epoch)
    world.clock.now = 5
    assert world.probe.decision(world.request) is world.decision
    world.probe.set(-INF, INF, world.epoch)
    world.clock.now = -1e300
    assert world.probe.decision(world.request) is world.decision
    with pytest.raises(TypeError):
        world.probe.set("0", 10.0, world.epoch)
    with pytest.raises(TypeError):
        world.probe.set(0.0, 10.0)


def test_the_clock_is_the_callable_given_so_time_machine_moves_it(make: Callable[..., Any]) -> None:
    import time

    epoch = new_epoch()
    cache: dict[object, object] = {(PEER, "GET", "/a"): (epoch, "decision", False, "answer")}
    probe = make(cache, time.time)
    probe.set(1_000_000.0, 2_000_000.0, epoch)
    with time_machine.travel(1_500_000.0, tick=False):
        assert probe.answer(PEER, "GET", "/a") == "answer"
    with time_machine.travel(2_500_000.0, tick=False):
        assert probe.answer(PEER, "GET", "/a") is None


def test_a_clock_returning_an_int(world: World) -> None:
    world.put(False)
    world.probe = type(world.probe)(world.cache, lambda: 150)
    world.probe.set(100.0, 200.0, world.epoch)
    assert world.probe.decision(world.request) is world.decision
    world.clock.now = 150
    world.probe = type(world.probe)(world.cache, lambda: 250)
    world.probe.set(100.0, 200.0, world.epoch)
    assert world.probe.decision(world.request) is None


class Seconds:
    """Converts to a float, but is no number: a clock must return a float (or an int)."""

    def __float__(self) -> float:
        return 150.0


@pytest.mark.parametrize(
    "clock",
    [
        pytest.param(lambda: 1 / 0, id="raising"),
        pytest.param(lambda: "150", id="a string"),
        pytest.param(lambda: None, id="None"),
        pytest.param(Seconds, id="a float-like object"),
        pytest.param(lambda *a: a[5], id="wrong arity"),
    ],
)
def test_a_failing_clock_is_a_miss(make: Callable[..., Any], clock: Callable[[], Any]) -> None:
    epoch = new_epoch()
    cache: dict[object, object] = {(PEER, "GET", "/a"): (epoch, "decision", False, "answer")}
    probe = make(cache, clock)
    probe.set(-INF, INF, epoch)
    assert probe.decision(RequestInfo(PEER, path="/a")) is None
    assert probe.answer(PEER, "GET", "/a") is None
    assert probe.entry(RequestInfo(PEER, path="/a")) is None
    assert sys.exc_info() == (None, None, None)


def test_keyboard_interrupt_from_the_clock_is_not_swallowed(make: Callable[..., Any]) -> None:
    def interrupted() -> float:
        raise KeyboardInterrupt

    probe = make({}, interrupted)
    probe.set(-INF, INF, None)
    with pytest.raises(KeyboardInterrupt):
        probe.decision(RequestInfo(PEER))


# -- the epoch and the entry -----------------------------------------------------------------


def test_epoch_is_compared_by_identity(world: World) -> None:
    twin = new_epoch()
    assert twin == world.epoch and twin is not world.epoch
    world.put(False, epoch=twin)
    assert world.probe.decision(world.request) is None
    assert world.probe.answer(PEER, "GET", "/a") is None
    assert world.probe.entry(world.request) is None
    world.probe.set(100.0, 200.0, twin)
    assert world.probe.decision(world.request) is world.decision


def test_attention_false_is_answered(world: World) -> None:
    entry = world.put(False)
    assert world.probe.decision(world.request) is world.decision
    assert world.probe.answer(PEER, "GET", "/a") is world.answer
    assert world.probe.entry(world.request) is entry


def test_attention_true_is_left_to_the_caller(world: World) -> None:
    entry = world.put(True)
    assert world.probe.decision(world.request) is None
    assert world.probe.answer(PEER, "GET", "/a") is None
    # entry() hands it over whatever its attention: the engine's answer() observes it.
    assert world.probe.entry(world.request) is entry


def test_a_counter_counts_once_per_hit(world: World) -> None:
    counter = itertools.repeat(None, 5)
    entry = world.put(counter)
    assert world.probe.decision(world.request) is world.decision
    assert counter.__length_hint__() == 4
    assert world.probe.answer(PEER, "GET", "/a") is world.answer
    assert counter.__length_hint__() == 3
    # entry() leaves the counting to its caller.
    assert world.probe.entry(world.request) is entry
    assert counter.__length_hint__() == 3
    assert world.probe.decision(world.request) is world.decision
    assert world.probe.decision(world.request) is world.decision
    assert world.probe.answer(PEER, "GET", "/a") is world.answer
    assert counter.__length_hint__() == 0
    # Exhausted: the slow path copes.
    assert world.probe.decision(world.request) is None
    assert world.probe.answer(PEER, "GET", "/a") is None
    assert world.probe.entry(world.request) is entry


def test_a_failing_counter_is_a_miss(world: World) -> None:
    def failing() -> Iterator[None]:
        yield None
        raise RuntimeError("metrics backend gone")

    world.put(failing())
    assert world.probe.decision(world.request) is world.decision
    assert world.probe.decision(world.request) is None
    assert sys.exc_info() == (None, None, None)


def test_an_attention_that_is_no_iterator_is_a_miss(world: World) -> None:
    world.put(1)
    assert world.probe.decision(world.request) is None
    assert world.probe.answer(PEER, "GET", "/a") is None


def test_missing_key_and_cleared_cache(world: World) -> None:
    world.put(False)
    assert world.probe.decision(RequestInfo(PEER, method="POST", path="/a")) is None
    assert world.probe.answer(PEER, "GET", "/b") is None
    assert world.probe.decision(world.request) is world.decision
    world.cache.clear()  # the engine clears its cache, never replaces it
    assert world.probe.decision(world.request) is None
    assert world.probe.entry(world.request) is None


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param(None, id="None"),
        pytest.param("not a tuple", id="str"),
        pytest.param([None, None, False, None], id="list"),
        pytest.param((None, "decision", False), id="short tuple"),
        pytest.param((), id="empty tuple"),
    ],
)
def test_entries_that_are_no_entry_are_a_miss(world: World, bad: object) -> None:
    if isinstance(bad, list):
        bad[0] = world.epoch
    elif isinstance(bad, tuple) and bad:
        bad = (world.epoch, *bad[1:])
    world.cache[(PEER, "GET", "/a")] = bad
    assert world.probe.decision(world.request) is None
    assert world.probe.answer(PEER, "GET", "/a") is None
    assert world.probe.entry(world.request) is None


class Stored(NamedTuple):
    epoch: object
    decision: object
    attention: object
    answer: object


def test_a_tuple_subclass_is_an_entry_a_longer_tuple_is_not(world: World) -> None:
    entry = Stored(world.epoch, world.decision, False, world.answer)
    world.cache[(PEER, "GET", "/a")] = entry
    assert world.probe.decision(world.request) is world.decision
    assert world.probe.entry(world.request) is entry
    world.cache[(PEER, "GET", "/a")] = (world.epoch, world.decision, False, world.answer, "x")
    assert world.probe.decision(world.request) is None
    assert world.probe.answer(PEER, "GET", "/a") is None
    assert world.probe.entry(world.request) is None


def test_a_peer_of_none(world: World) -> None:
    world.put(False, peer=None)
    assert world.probe.decision(RequestInfo(None, path="/a")) is world.decision
    assert world.probe.answer(None, "GET", "/a") is world.answer
    assert world.probe.decision(world.request) is None


def test_an_unhashable_peer_is_a_miss(world: World) -> None:
    world.put(False)
    request = RequestInfo(peer=[PEER], path="/a")  # type: ignore[arg-type]
    assert world.probe.decision(request) is None
    assert world.probe.entry(request) is None
    assert world.probe.answer([PEER], "GET", "/a") is None
    assert world.probe.answer(PEER, {}, "/a") is None
    assert sys.exc_info() == (None, None, None)


def test_a_peer_whose_comparison_fails_is_a_miss(world: World) -> None:
    class Peer(str):
        __hash__ = str.__hash__

        def __eq__(self, other: object) -> bool:
            raise ValueError("no comparing")

    world.put(False)
    assert world.probe.answer(Peer(PEER), "GET", "/a") is None


def test_a_probe_from_inside_a_lookup(world: World) -> None:
    """A key's __eq__ runs Python code in the middle of a lookup; here it probes again (the C
    probe's reused key tuple is then taken: the inner probe makes its own)."""
    inner: list[object] = []

    class Peer(str):
        __hash__ = str.__hash__

        def __eq__(self, other: object) -> bool:
            inner.append(world.probe.answer("10.0.0.1", "GET", "/a"))
            inner.append(world.probe.decision(RequestInfo("10.0.0.1", path="/a")))
            return str.__eq__(self, other)

    world.put(False, peer="10.0.0.1")
    world.put(False, peer=Peer(PEER))
    assert world.probe.answer(PEER, "GET", "/a") is world.answer  # the stored Peer's __eq__
    assert inner == [world.answer, world.decision]
    # And everything still works afterwards, with no reference left behind.
    assert world.probe.decision(RequestInfo("10.0.0.1", path="/a")) is world.decision


def test_a_key_kept_by_a_comparison(world: World) -> None:
    """A stored key whose __eq__ keeps what it is compared with keeps the probe's key: the key
    must stay whole for it, and later probes work as before."""
    kept: list[object] = []

    class Key:
        def __hash__(self) -> int:
            return hash((PEER, "GET", "/a"))

        def __eq__(self, other: object) -> bool:
            kept.append(other)
            return False

    world.cache[Key()] = (world.epoch, "other", False, "other")
    world.put(False)
    for _ in range(3):
        assert world.probe.answer(PEER, "GET", "/a") is world.answer
        assert world.probe.decision(world.request) is world.decision
    assert kept and all(key == (PEER, "GET", "/a") for key in kept)
    assert all(sys.getrefcount(key) >= 2 for key in kept)


# -- requests of other shapes (the C probe reads a slots dataclass's fields directly) ---------


@dataclass(slots=True)
class Reordered:
    path: str
    extra: int
    method: str
    peer: str | None


def test_requests_of_other_types(world: World) -> None:
    world.put(False)
    # Fields at other offsets, alternating with RequestInfo: each read where it is.
    for _ in range(3):
        assert world.probe.decision(Reordered("/a", 1, "GET", PEER)) is world.decision
        assert world.probe.decision(world.request) is world.decision
        assert world.probe.decision(Reordered("/b", 1, "GET", PEER)) is None

    class Plain:  # no slots: a __dict__
        def __init__(self) -> None:
            self.peer, self.method, self.path = PEER, "GET", "/a"

    assert world.probe.decision(Plain()) is world.decision
    assert world.probe.decision(object()) is None  # no fields at all
    unset = Reordered("/a", 1, "GET", PEER)
    del unset.peer
    assert world.probe.decision(unset) is None


def test_a_request_class_changed_after_use(world: World) -> None:
    @dataclass(slots=True)
    class Request:
        peer: str | None
        method: str
        path: str

    world.put(False)
    world.put(False, peer="10.0.0.1")
    request = Request(PEER, "GET", "/a")
    for _ in range(3):
        assert world.probe.decision(request) is world.decision
        assert world.probe.entry(request) is not None
    # The field becomes a property: what the probe reads must follow.
    Request.peer = property(lambda self: "10.0.0.1")  # type: ignore[assignment,method-assign]
    world.cache.pop(DecisionKey(PEER, "GET", "/a"))
    assert world.probe.decision(request) is world.decision  # found under 10.0.0.1
    Request.peer = property(lambda self: "10.9.9.9")  # type: ignore[assignment,method-assign]
    assert world.probe.decision(request) is None


# -- construction ----------------------------------------------------------------------------


def test_construction_checks_its_arguments(make: Callable[..., Any]) -> None:
    class Cache(dict[object, object]):
        pass

    with pytest.raises(TypeError):
        make(Cache(), Clock())  # the engine's cache is an exact dict
    with pytest.raises(TypeError):
        make([], Clock())
    with pytest.raises(TypeError):
        make({}, 150.0)
    assert make(cache={}, clock=Clock()).decision(RequestInfo(PEER)) is None


def test_make_probe_picks_the_c_probe_when_built() -> None:
    probe = _probe.make_probe({}, Clock())
    expect_native = hotpath is not None and not PURE
    assert _probe.NATIVE is expect_native
    assert type(probe) is (hotpath.Probe if expect_native and hotpath else _probe.Probe)


PURE = os.environ.get("GEOFENCE_PURE_PYTHON", "") not in ("", "0")
EXPECT_NATIVE = os.environ.get("GEOFENCE_EXPECT_NATIVE", "") not in ("", "0")


@pytest.mark.skipif(
    not EXPECT_NATIVE or PURE,
    reason="GEOFENCE_EXPECT_NATIVE=1 is not set (or GEOFENCE_PURE_PYTHON is): "
    "no build is expected here",
)
def test_the_c_probe_is_used_when_ci_expects_the_compiled_build() -> None:
    assert _probe.NATIVE, (
        "geofence.hotpath._hotpath did not load: see the build log's geofence warning"
    )


def test_geofence_pure_python_turns_the_c_probe_off(tmp_path: Path) -> None:
    # Run in an empty folder: the geofence imported is this test's (an installed wheel under
    # tox), not the source tree.
    code = (
        "from geofence.hotpath import _probe\n"
        "print(_probe.NATIVE, type(_probe.make_probe({}, float)))"
    )
    for value, native in [("1", False), ("yes", False), ("0", hotpath is not None)]:
        env = {**os.environ, "GEOFENCE_PURE_PYTHON": value}
        out = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout.split()
        kind = (
            "'geofence.hotpath._hotpath.Probe'>" if native else "'geofence.hotpath._probe.Probe'>"
        )
        assert out == [str(native), "<class", kind]


def test_a_probe_in_a_cycle_is_collected(make: Callable[..., Any]) -> None:
    class Holder:
        def __init__(self) -> None:
            self.probe = make({}, self.clock)  # the probe holds the holder through its clock

        def clock(self) -> float:
            return 0.0

    holder = Holder()
    holder.probe.set(0.0, 1.0, holder)  # and through its epoch
    gone = weakref.ref(holder)
    del holder
    gc.collect()
    assert gone() is None


# -- references and threads ------------------------------------------------------------------


def test_reference_counts_are_unchanged_after_many_calls(world: World) -> None:
    counter = itertools.repeat(None, 100_000)
    peer = "".join(["81.2.", "69.142"])  # not interned: its count is the test's own
    key = DecisionKey(peer, "GET", "/a")
    entry = (world.epoch, world.decision, counter, world.answer)
    world.cache[key] = entry
    request = RequestInfo(peer, method="GET", path="/a")
    missing = RequestInfo(peer, method="GET", path="/missing")
    watched = [entry, key, peer, world.epoch, world.decision, world.answer, counter, request]
    before = [sys.getrefcount(obj) for obj in watched]
    for _ in range(10_000):
        world.probe.decision(request)
        world.probe.answer(peer, "GET", "/a")
        world.probe.entry(request)
        world.probe.decision(missing)
        world.probe.set(100.0, 200.0, world.epoch)
    assert [sys.getrefcount(obj) for obj in watched] == before
    assert counter.__length_hint__() == 100_000 - 20_000


def test_threads_see_each_window_whole(make: Callable[..., Any]) -> None:
    """One thread moves the window and the epoch forward while three probe: a probe that
    read the clock in window k answers k's decision or None, never another window's."""
    rounds = 3000
    cache: dict[object, object] = {}
    progress = [0]
    local = threading.local()

    def clock() -> float:
        local.seen = progress[0]
        return progress[0] + 0.5  # inside window k = [k, k + 1)

    probe = make(cache, clock)
    epochs = [new_epoch(k) for k in range(rounds)]
    cache[(PEER, "GET", "/")] = (epochs[0], 0, False, 0)
    probe.set(0.0, 1.0, epochs[0])
    done = threading.Event()
    errors: list[BaseException] = []
    hits = [0]

    def move() -> None:
        try:
            for k in range(1, rounds):
                cache[(PEER, "GET", "/")] = (epochs[k], k, False, k)
                probe.set(float(k), k + 1.0, epochs[k])
                progress[0] = k
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            done.set()

    def read() -> None:
        request = RequestInfo(PEER)
        try:
            while not done.is_set():
                found = probe.decision(request)
                if found is not None:
                    assert found == local.seen, (found, local.seen)
                    hits[0] += 1
                answer = probe.answer(PEER, "GET", "/")
                assert answer is None or answer == local.seen
                entry = probe.entry(request)
                assert entry is None or (entry[1] == local.seen and entry[0] is epochs[entry[1]])
        except BaseException as error:
            errors.append(error)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=read) for _ in range(3)]
        threads.append(threading.Thread(target=move))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    assert hits[0] > 0


# -- both implementations agree --------------------------------------------------------------

PEERS = (PEER, None, "::1")
Op = tuple[Any, ...]
ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("set"),
            st.sampled_from([0.0, 1.0, 2.0, -INF]),
            st.sampled_from([0.0, 2.0, 3.0, INF]),
            st.integers(0, 2),
        ),
        st.tuples(st.just("clock"), st.sampled_from([0.0, 0.5, 1.0, 2.0, 2.5, 3.0])),
        st.tuples(
            st.just("put"),
            st.integers(0, 2),
            st.integers(0, 2),
            st.sampled_from(["quiet", "loud", "counter", "short", "long", "list", "named"]),
        ),
        st.tuples(st.just("clear")),
        st.tuples(
            st.sampled_from(["decision", "answer", "entry"]), st.sampled_from([*range(3), -1])
        ),
    ),
    max_size=40,
)


def run(make: Callable[..., Any], script: list[Op]) -> list[object]:
    cache: dict[object, object] = {}
    clock = Clock(0.0)
    probe = make(cache, clock)
    epochs = [new_epoch(k) for k in range(3)]
    counters: list[Iterator[None]] = []
    seen: list[object] = []
    for op in script:
        if op[0] == "set":
            probe.set(op[1], op[2], epochs[op[3]])
        elif op[0] == "clock":
            clock.now = op[1]
        elif op[0] == "clear":
            cache.clear()
        elif op[0] == "put":
            _, peer, epoch, kind = op
            attention: object = {"quiet": False, "loud": True}.get(kind, False)
            if kind == "counter":
                counters.append(itertools.repeat(None, 2))
                attention = counters[-1]
            entry: object = (epochs[epoch], f"d{peer}{epoch}", attention, f"a{peer}{epoch}")
            if kind == "short":
                entry = (epochs[epoch], "d", False)
            elif kind == "long":
                entry = (epochs[epoch], "d", False, "a", "x")
            elif kind == "list":
                entry = [epochs[epoch], "d", False, "a"]
            elif kind == "named":
                entry = Stored(epochs[epoch], "d", False, "a")
            cache[(PEERS[peer], "GET", "/")] = entry
        else:
            peer = PEERS[op[1]] if op[1] >= 0 else [PEER]  # -1: unhashable
            if op[0] == "answer":
                seen.append(probe.answer(peer, "GET", "/"))
            else:
                found = getattr(probe, op[0])(RequestInfo(peer))  # type: ignore[arg-type]
                seen.append(found[1] if op[0] == "entry" and found is not None else found)
    seen.append([counter.__length_hint__() for counter in counters])
    return seen


@pytest.mark.skipif(hotpath is None, reason=NOT_BUILT)
@settings(max_examples=300, deadline=None)
@given(ops)
def test_c_and_python_agree(script: list[Op]) -> None:
    assert hotpath is not None
    assert run(hotpath.Probe, script) == run(_probe.Probe, script)


# -- the engine's own probe ------------------------------------------------------------------


def test_the_engine_probe_finds_what_the_engine_cached(country_db: str) -> None:
    """Whichever probe the engine was built with finds its entries: were the engine's entry
    or key to change shape, every probe would miss and only speed would tell."""
    from geofence import Engine

    engine = Engine.from_config(
        {
            "geoip": {"country_db": country_db, "reload_interval": 0},
            "rules": [{"name": "no-cn", "action": "block", "regions": ["CN"]}],
        }
    )
    probe = engine._probe
    allowed = RequestInfo("81.2.69.142", method="GET", path="/v1")
    blocked = RequestInfo("175.16.199.1", method="GET", path="/v1")
    decision = engine.decide(allowed)
    assert decision.action == "allow"
    assert probe.decision(allowed) is decision
    answer = engine.answer(allowed)
    assert probe.answer("81.2.69.142", "GET", "/v1") is answer
    assert engine.cached("81.2.69.142", "GET", "/v1") is answer
    block = engine.decide(blocked)
    assert block.action == "block"
    assert probe.decision(blocked) is None  # logged on every request: the engine's path
    entry = probe.entry(blocked)
    assert entry is not None and entry[1] is block

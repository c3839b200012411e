"""Engine.decide and Engine.cached as C fronts (geofence.hotpath._hotpath.Front) on the compiled
build.

A front answers decide(request) and cached(peer, method, path) from the engine's probe and
calls the Python method for everything else. It must behave as the Python method it stands
for: the same answers, the same errors, and the same Python semantics (bound per access, class
patching and subclass overrides honoured, no reference cycle that keeps an engine alive).
"""

from __future__ import annotations

import asyncio
import gc
import inspect
import time
import weakref
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest

import geofence
from geofence import Engine, RequestInfo
from geofence.hotpath import _probe
from geofence.http._answer import Answer

POLICY: dict[str, Any] = {
    "default": "allow",
    "rules": [{"name": "cn", "action": "block", "regions": ["CN"]}],
    "exempt": {"paths": ["/healthz"]},
}
US, CN = "8.8.8.8", "175.16.199.1"


def request(peer: object, path: str = "/v1/models", method: str = "GET") -> RequestInfo:
    return RequestInfo(peer=peer, headers=(), method=method, path=path)  # type: ignore[arg-type]


@pytest.fixture
def engine() -> Iterator[Engine]:
    yield Engine.from_config(POLICY)


def test_the_class_holds_a_front_on_the_compiled_build_and_the_method_otherwise() -> None:
    for name, slow in (
        ("decide", "_decide_inline"),
        ("cached", "_cached_inline"),
        ("answer", "_answer_probed"),
    ):
        held = Engine.__dict__[name]
        if _probe.NATIVE:
            assert type(held).__name__ == "Front"
            assert held.__wrapped__ is Engine.__dict__[slow]
            assert held.__doc__ == Engine.__dict__[slow].__doc__
        elif name == "answer":
            assert held is Engine.__dict__["_answer_inline"]
        else:
            assert held is Engine.__dict__[slow]


def test_decide_gives_the_python_methods_answers(engine: Engine) -> None:
    for peer in (US, CN, "10.0.0.1", "not an address", None, "::1", "2001:db8::1"):
        for path in ("/v1/models", "/healthz"):
            req = request(peer, path)
            first = engine.decide(req)
            again = engine.decide(req)  # from the cache when it may be
            assert first == again == engine._decide_inline(req)
            assert Engine.decide(engine, req) == first  # called on the class
    blocked = engine.decide(request(CN))
    assert blocked.action == "block" and blocked.status is not None


def _same_answer(made: Answer, expected: Answer) -> None:
    assert type(made) is type(expected) is Answer
    assert made.decision == expected.decision
    assert made.response == expected.response and made.amends == expected.amends


def test_answer_gives_the_python_methods_answers() -> None:
    # The front on one engine, the Python method on another of the same policy; a block's
    # response (built per request, Accept and method read) included.
    policy = {
        **POLICY,
        "rules": [*POLICY["rules"], {"name": "w", "action": "warn", "regions": ["SE"]}],
    }
    fronted, plain = Engine.from_config(policy), Engine.from_config(policy)
    html = [("Accept", "text/html")]
    for peer in (US, CN, "89.160.20.113", "10.0.0.1", "not an address", None, "::1"):
        for path in ("/v1/models", "/healthz"):
            for method, headers in (("GET", ()), ("HEAD", ()), ("GET", html)):
                info = RequestInfo(peer, headers, method, path)  # type: ignore[arg-type]
                for _ in range(2):  # a miss, then a hit (logged or not)
                    _same_answer(fronted.answer(info), plain._answer_inline(info))
                    assert Engine.answer(fronted, info).decision == fronted.decide(info)
    blocked = fronted.answer(request(CN))
    assert blocked.response is not None and blocked.response.status == 451
    warned = fronted.answer(request("89.160.20.113"))
    assert warned.response is None and warned.amends


def test_a_miss_in_answer_takes_the_step_or_entry_and_a_block_its_response(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Called by name, as the Python method calls them: patches are honoured.
    seen: list[str] = []
    for name in ("_entry", "_answer_of"):
        original = getattr(Engine, name)

        def recording(
            self: Engine, *args: Any, _name: str = name, _f: Any = original, **kw: Any
        ) -> Any:
            seen.append(_name)
            return _f(self, *args, **kw)

        monkeypatch.setattr(Engine, name, recording)
    engine.answer(request(US))  # the window set
    seen.clear()
    answer = engine.answer(request(CN, "/v1/x"))
    assert answer.response is not None and answer.decision.country == "CN"
    if _probe.NATIVE:
        # the step took the request (or _entry did, without one); the response is the block's
        assert seen[-1] == "_answer_of" and seen.count("_entry") == (engine._miss is None)
    assert engine.answer(request(CN, "/v1/x")).response == answer.response  # a logged hit


def test_other_calls_take_the_python_method(engine: Engine) -> None:
    req = request(US)
    at = datetime(2027, 1, 1, tzinfo=timezone.utc)
    assert engine.decide(req, at).country == "US"
    assert engine.decide(req, now=at).country == "US"
    assert engine.decide(request=req).country == "US"
    assert engine.decide(req, None, None) == engine.decide(req)
    with pytest.raises(TypeError):
        engine.decide()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        engine.decide(req, at, None, None)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        engine.decide(req, bogus=1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Engine.decide()  # type: ignore[call-arg]


def test_cached_gives_the_python_methods_answers(engine: Engine) -> None:
    assert engine.cached(US, "GET", "/a") is None  # never decided
    answer = engine.answer(request(US, "/a"))
    assert isinstance(answer, Answer)
    assert engine.cached(US, "GET", "/a") is answer
    assert engine.cached(US, "GET", "/a") is engine._cached_inline(US, "GET", "/a")
    assert engine.cached(US, "GET", "/a", None, None) is answer
    assert engine.cached(US, "GET", "/a", forwarded=None) is answer
    # a block must be logged and answered per request: never from cached()
    engine.answer(request(CN, "/a"))
    assert engine.cached(CN, "GET", "/a") is None
    if _probe.NATIVE:
        # the probe's rule (the Python method raises TypeError; adapters pass str or None)
        assert engine.cached(["x"], "GET", "/a") is None  # type: ignore[arg-type]


def test_cached_on_an_engine_that_is_off_is_the_python_methods() -> None:
    off = Engine.from_config({**POLICY, "mode": "off"})
    assert off.cached(US, "GET", "/") == off._cached_inline(US, "GET", "/")
    assert off.decide(request(CN)).action == "allow"


def test_patching_the_class_after_the_engine_was_made_is_honoured(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine.decide(request(US))
    seen: list[RequestInfo] = []
    original = Engine.decide

    def counting(self: Engine, info: RequestInfo, *args: Any) -> geofence.Decision:
        seen.append(info)
        return original(self, info, *args)

    monkeypatch.setattr(Engine, "decide", counting)
    assert engine.decide(request(US)).country == "US"
    assert len(seen) == 1


def test_a_miss_is_decided_by_entry_with_the_windows_epoch_and_the_clock_read(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On a miss the C front calls engine._entry itself (by name, so a patch is honoured), with
    # what Engine._decide_inline would pass: the same on both builds.
    calls: list[tuple[Any, ...]] = []
    original = Engine._entry

    def recording(self: Engine, info: RequestInfo, *args: Any, **kwargs: Any) -> Any:
        calls.append((info, args, kwargs))
        return original(self, info, *args, **kwargs)

    monkeypatch.setattr(Engine, "_entry", recording)
    steps: list[tuple[Any, ...]] = []
    if engine._miss is not None:
        # Without the compiled new-client step, which would take this request itself; what
        # the front hands the step is checked just below.
        monkeypatch.setattr(engine, "_miss", lambda *args: steps.append(args))
    engine.decide(request(US))  # sets the window, whichever path it takes
    calls.clear()
    steps.clear()
    before = time.time()
    decision = engine.decide(request(CN, "/v1/chat"))
    after = time.time()
    assert decision == engine._decide_inline(request(CN, "/v1/chat"))
    assert decision.action == "block" and decision.country == "CN"
    info, args, kwargs = calls[0]
    assert info.peer == CN and args == (None, engine._state[2])
    # stepped: the C front asked the engine's step first (here it declined: None); the Python
    # path asks it in _entry.
    expected = {"wall", "stepped"} if _probe.NATIVE else {"wall"}
    assert set(kwargs) == expected and kwargs.get("stepped", True) is True
    if steps:
        assert len(steps) == 1 and steps[0] == (engine, info, engine._state[2], kwargs["wall"])
    assert before <= kwargs["wall"] <= after
    calls.clear()
    # Found again: a block is logged, so not by the probe alone, but without a new _entry.
    assert engine.decide(request(CN, "/v1/chat")) == decision
    assert calls == []


def test_a_subclass_and_an_instance_attribute_override_it(engine: Engine) -> None:
    class Mine(Engine):
        def decide(self, *args: Any, **kwargs: Any) -> geofence.Decision:
            return super().decide(*args, **kwargs)._replace(rule="mine")

    mine = Mine.from_config(POLICY)
    assert mine.decide(request(US)).rule == "mine"
    assert mine.decide(request(US)).rule == "mine"  # the cached decision, still through Mine
    engine.decide = lambda *args, **kwargs: "instance"  # type: ignore[method-assign, assignment]
    assert engine.decide(request(US)) == "instance"  # type: ignore[comparison-overlap]


def test_bound_like_a_method(engine: Engine) -> None:
    bound = engine.decide
    assert bound == engine.decide and hash(bound) == hash(engine.decide)
    assert bound != Engine.from_config(POLICY).decide
    assert getattr(bound, "__self__", None) is engine
    assert "request" in inspect.signature(Engine.decide).parameters


def test_no_cycle_keeps_an_engine_alive() -> None:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        made = Engine.from_config(POLICY)
        made.decide(request(US))
        bound = made.cached
        alive = weakref.ref(made)
        del made
        assert alive() is not None  # the bound front holds it, as a bound method would
        assert bound(US, "GET", "/v1/models") is not None
        del bound
        assert alive() is None  # freed by its reference count, no collection needed
    finally:
        if was_enabled:
            gc.enable()


def test_adecide_answers_from_the_cache(engine: Engine) -> None:
    req = request(US)
    first = engine.decide(req)
    assert asyncio.run(engine.adecide(req)) is first
    at = datetime(2027, 1, 1, tzinfo=timezone.utc)
    assert asyncio.run(engine.adecide(req, at)).country == "US"


def test_a_front_stored_by_an_adapter_answers_as_the_engine_does(engine: Engine) -> None:
    # Adapters store engine.cached once; on the compiled build that bound front keeps the
    # engine's probe (fixed for the engine's life) instead of looking it up per call.
    decide, cached = engine.decide, engine.cached  # bound before any request: empty window
    assert cached(US, "GET", "/a") is None
    first = decide(request(US, "/a"))
    answer = cached(US, "GET", "/a")
    assert answer is not None and answer.decision is first
    assert decide(request(US, "/a")) is first is engine.decide(request(US, "/a"))
    assert cached(US, "GET", "/a", None, None) is answer  # the Python method's path
    blocked = decide(request(CN, "/a"))
    assert blocked.action == "block" and decide(request(CN, "/a")) == blocked
    assert cached(CN, "GET", "/a") is None  # a block is answered per request
    assert cached(["x"], "GET", "/a") is None if _probe.NATIVE else True  # type: ignore[arg-type]
    off = Engine.from_config({**POLICY, "mode": "off"})
    off_cached, off_decide = off.cached, off.decide
    assert off_decide(request(CN)).action == "allow"
    assert off_cached(CN, "GET", "/v1/models") == off._cached_inline(CN, "GET", "/v1/models")


def test_a_front_bound_while_the_engine_is_being_built_asks_it_per_call() -> None:
    class Early(Engine):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self.early_decide = self.decide  # no _off, no _probe yet
            self.early_cached = self.cached
            super().__init__(*args, **kwargs)

    early = Early.from_config(POLICY)
    assert early.early_decide(request(US)).country == "US"
    answer = early.early_cached(US, "GET", "/v1/models")
    assert answer is not None and answer.decision == early.decide(request(US))
    assert early.early_decide(request(CN)).action == "block"

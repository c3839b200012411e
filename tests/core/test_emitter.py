"""geofence._events.Emitter: which receivers make the engine build request-kind events."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from tests_support import CITY_DB

from geofence import Engine, Event, RequestInfo
from geofence._events import Emitter

CN = "175.16.199.1"
T = datetime(2030, 1, 1, tzinfo=timezone.utc)


class Conditional:
    def __init__(self, answer: bool | None) -> None:
        self.answer = answer
        self.got: list[str] = []

    def __call__(self, event: Event) -> None:
        self.got.append(event.kind)

    def geofence_listening(self) -> bool:
        if self.answer is None:
            raise RuntimeError("geofence_listening() bug")
        return self.answer


def test_no_receiver_wants_nothing() -> None:
    assert not Emitter().wants_requests and not Emitter().active


def test_a_plain_callback_always_listens() -> None:
    assert Emitter(lambda event: None).wants_requests


@pytest.mark.parametrize(("answer", "wants"), [(True, True), (False, False), (None, True)])
def test_listening_decides_for_its_callback(answer: bool | None, wants: bool) -> None:
    emitter = Emitter(Conditional(answer))
    assert emitter.wants_requests is wants  # a geofence_listening() that raises counts as listening
    assert emitter.active


def test_any_listener_is_enough_and_receivers_without_requests_do_not_count() -> None:
    emitter = Emitter(Conditional(False))
    emitter.add(lambda event: None, requests=False)
    assert not emitter.wants_requests
    emitter.add(Conditional(True))
    assert emitter.wants_requests
    plain = Emitter(Conditional(False))
    plain.add(lambda event: None)
    assert plain.wants_requests


def test_the_answer_is_asked_at_each_decision(monkeypatch: pytest.MonkeyPatch) -> None:
    receiver = Conditional(False)
    engine = Engine.from_config(
        {
            "geoip": {"country_db": CITY_DB},
            "rules": [{"name": "cn", "action": "block", "regions": ["CN"]}],
        },
        on_event=receiver,
    )
    assert engine.decide(RequestInfo(CN), T).action == "block"
    assert receiver.got == []
    receiver.answer = True
    assert engine.decide(RequestInfo(CN), T).action == "block"
    assert engine.decide(RequestInfo(CN)).action == "block"  # the cached decision too
    assert receiver.got == ["block", "block"]

"""Engine.answer(): the one thing an adapter asks per request, and what it may do with it."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import geofence
from geofence.http import Answer

CN, BY, US = "175.16.199.1", "178.120.0.1", "216.160.83.56"
POLICY = {
    "info_url": "https://example.com/regions",
    "rules": [
        {"name": "cn", "action": "block", "regions": ["CN"]},
        {
            "name": "by",
            "action": "block",
            "regions": ["BY"],
            "warn_from": "2024-01-01T00:00:00Z",
            "enforce_from": "2999-01-01T00:00:00Z",
        },
    ],
}


def info(peer: str, *headers: tuple[str, str], method: str = "GET") -> geofence.RequestInfo:
    return geofence.RequestInfo(peer, list(headers), method, "/v1/models")


def header(pairs: list[tuple[str, str]], name: str) -> str | None:
    return next((v for k, v in pairs if k.lower() == name.lower()), None)


def test_an_allowed_request_passes_untouched_and_its_answer_is_shared() -> None:
    engine = geofence.Engine.from_config(POLICY)
    first = engine.answer(info(US))
    assert first.response is None and not first.amends and first.headers(lambda _: None) == []
    assert first.decision.action == "allow" and first.decision.status is None
    assert engine.answer(info(US)) is first  # cached: no allocation per repeated request
    assert engine.cached(US, "GET", "/v1/models") is first


def test_a_block_is_a_response_negotiated_per_request() -> None:
    engine = geofence.Engine.from_config(POLICY)
    api = engine.answer(info(CN))
    assert api.response is not None and not api.amends
    assert api.response.status == 451 and api.decision.status == 451
    body = json.loads(api.response.body)
    assert body["error"]["code"] == "unsupported_country_region_territory"
    page = engine.answer(info(CN, ("Accept", "text/html,*/*;q=0.8")))
    assert page.response is not None and page.response.html
    assert header(list(page.response.headers), "content-type") == "text/html; charset=utf-8"
    head = engine.answer(info(CN, ("Accept", "text/html"), method="HEAD"))
    assert head.response is not None and head.response.body == b""
    assert header(list(head.response.headers), "content-length") == str(len(page.response.body))
    # Never served from the peer-only fast path: a block must be logged and negotiated.
    assert engine.cached(CN, "GET", "/v1/models") is None


def test_a_warning_passes_and_amends_the_apps_headers() -> None:
    engine = geofence.Engine.from_config(POLICY)
    answer = engine.answer(info(BY))
    assert answer.response is None and answer.amends
    app_headers = {"Cache-Control": "public, max-age=60", "Link": "</a>; rel=next"}
    added = dict(answer.headers(app_headers.get))
    assert added["Cache-Control"] == "private, max-age=60"
    assert added["Link"] == '</a>; rel=next, <https://example.com/regions>; rel="sunset"'
    assert added["Sunset"] == "Tue, 01 Jan 2999 00:00:00 GMT"
    assert answer.decision.status is None


def test_report_mode_never_responds_nor_amends() -> None:
    engine = geofence.Engine.from_config({**POLICY, "mode": "report"})
    for peer in (CN, BY):
        answer = engine.answer(info(peer))
        assert answer.decision.action in ("block", "warn") and not answer.decision.enforced
        assert answer.response is None and not answer.amends


def test_mode_off_is_one_constant_pass() -> None:
    engine = geofence.Engine.from_config({**POLICY, "mode": "off"})
    answers = {id(engine.answer(info(p))) for p in (CN, BY, US)}
    assert len(answers) == 1
    answer = engine.answer(info(CN))
    assert answer.response is None and answer.decision.reason == "off"


def test_an_answer_at_a_given_time_follows_the_rule_dates() -> None:
    engine = geofence.Engine.from_config(POLICY)
    before = engine.answer(info(BY), now=datetime(2023, 12, 31, tzinfo=timezone.utc))
    assert isinstance(before, Answer) and before.response is None and not before.amends
    during = engine.answer(info(BY), now=datetime(2030, 1, 1, tzinfo=timezone.utc))
    assert during.response is None and during.amends
    after = engine.answer(info(BY), now=datetime(2999, 1, 1, tzinfo=timezone.utc))
    assert after.response is not None and after.response.status == 451


def test_installed_twice_the_same_policy_decides_once_and_another_decides_again() -> None:
    outer = geofence.Engine.from_config(POLICY)
    same = geofence.Engine.from_config(POLICY)
    other = geofence.Engine.from_config({"rules": [{"action": "block", "regions": ["US"]}]})
    assert outer.decided(outer.mark) and same.decided(outer.mark)
    assert not other.decided(outer.mark)
    assert not outer.decided(None)

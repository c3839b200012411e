"""The ASGI side of the core (geofence.http._asgi) with a raw ASGI app, no framework: the gate
(ASGIGate), request facts from a scope, and routes that decide again with their account
(decide_in_route, call_routed). The ASGI adapter is this gate built from a policy
(tests/asgi)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from scenarios.table import ACCOUNTS, BASE, CN, IR, US, WARN_HEADERS

import geofence
from geofence.http import _asgi
from geofence.http._asgi import (
    STATE_KEY,
    ASGIGate,
    Message,
    RouteDenied,
    Scope,
    decide_in_route,
    scope_facts,
)

HOME_RU = geofence.Account("acct-home-ru", home_country="RU")  # blocked by rule home-ru
HOME_IR = geofence.Account("acct-home-ir", home_country="IR")  # account grace


class App:
    """A raw ASGI app; ``inside(scope)`` runs before it answers (a route)."""

    def __init__(self, inside: Callable[[Scope], Awaitable[Any]] | None = None) -> None:
        self.seen: list[Any] = []
        self.inside = inside

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            self.seen.append("lifespan")
            return
        if self.inside is not None:
            await self.inside(scope)
        self.seen.append(scope["state"][STATE_KEY])
        headers = [(b"content-type", b"text/plain"), (b"cache-control", b"max-age=60")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"app body"})


def scope_of(peer: str, path: str = "/v1/models", **extra: Any) -> Scope:
    return {
        "type": "http",
        "method": "GET",
        "path": path,
        "headers": [(b"host", b"example.com")],
        "client": (peer, 50000),
        **extra,
    }


def call(app: Any, scope: Scope) -> tuple[int, dict[str, str], bytes, int]:
    """(status, headers, body, receive() calls) of one request."""
    sent: list[Message] = []
    received = 0

    async def receive() -> Message:
        nonlocal received
        received += 1
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = sent[0]
    headers = {k.decode(): v.decode() for k, v in start.get("headers", [])}
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return start["status"], headers, body, received


def test_lifespan_passes_and_requests_are_decided() -> None:
    app = App()
    gate = ASGIGate(app, geofence.Engine.from_config(BASE))
    asyncio.run(gate({"type": "lifespan"}, None, None))  # type: ignore[arg-type]
    assert app.seen == ["lifespan"]
    assert call(gate, scope_of(US))[:3] == (
        200,
        {"content-type": "text/plain", "cache-control": "max-age=60"},
        b"app body",
    )
    status, _, body, received = call(gate, scope_of(CN))
    assert status == 451 and b"unsupported_country" in body and received == 0
    status, headers, _, _ = call(gate, scope_of(IR))
    assert status == 200 and headers["sunset"] == WARN_HEADERS["sunset"]
    assert headers["cache-control"] == WARN_HEADERS["cache-control"]
    call(gate, scope_of(US))  # repeated: from the cache, the decision still in the state
    assert [d.reason for d in app.seen[1:]] == ["default", "rule", "default"]


def test_installed_twice_with_one_engine_decides_once() -> None:
    engine = geofence.Engine.from_config(BASE)
    app = App()
    gate = ASGIGate(ASGIGate(app, engine), engine)
    asked: list[str] = []
    answer = engine.answer

    def counted(info: geofence.RequestInfo, now: Any = None) -> Any:
        asked.append(info.path)
        return answer(info, now)

    engine.answer = counted  # type: ignore[method-assign]
    assert call(gate, scope_of(IR))[0] == 200
    assert asked == ["/v1/models"]


def test_request_facts_from_a_scope() -> None:
    assert scope_facts(scope_of(US, "/api/v1/x", root_path="/api"), "http") == (
        US,
        "GET",
        "/v1/x",
    )
    websocket = {"type": "websocket", "path": "/ws", "client": None}
    assert scope_facts(websocket, "websocket") == (None, "GET", "/ws")
    assert scope_facts({"client": (b"1.2.3.4", 1), "method": "POST"}, "http") == (
        None,
        "POST",
        "/",
    )
    assert _asgi.request_info(scope_of(US)).host == "example.com"


async def async_home_ru(scope: Scope) -> Any:
    return HOME_RU


@pytest.mark.parametrize("hook", [lambda scope: HOME_RU, async_home_ru], ids=["sync", "async"])
def test_the_account_hook_decides_for_its_account(hook: Any) -> None:
    gate = ASGIGate(App(), geofence.Engine.from_config(ACCOUNTS), hook)
    assert [call(gate, scope_of(US))[0] for _ in range(2)] == [451, 403]


def test_a_failing_hook_is_logged_on_the_adapters_logger(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def hook(scope: Scope) -> Any:
        raise RuntimeError("the app's hook is broken")

    app = App()
    logger = logging.getLogger("t.asgi")
    gate = ASGIGate(app, geofence.Engine.from_config(ACCOUNTS), hook, logger=logger)
    assert call(gate, scope_of(US))[0] == 200 and app.seen[0].account is None
    (record,) = [r for r in caplog.records if r.name == "t.asgi"]
    assert record.exc_info is not None and "account hook" in record.getMessage()


# -- routes that decide again: decide_in_route, call_routed ----------------------------------


@pytest.fixture
def routes_decide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_asgi, "ROUTES_DECIDE", True)


def route(account: Any, *, handled: bool = False) -> Callable[[Scope], Awaitable[Any]]:
    async def inside(scope: Scope) -> None:
        try:
            await decide_in_route(scope, account)
        except RouteDenied:
            if not handled:
                raise

    return inside


@pytest.mark.usefixtures("routes_decide")
@pytest.mark.parametrize("handled", [False, True], ids=["raised", "caught-by-the-app"])
def test_a_route_denial_replaces_the_apps_response(handled: bool) -> None:
    app = App(route(HOME_RU, handled=handled))
    gate = ASGIGate(app, geofence.Engine.from_config(ACCOUNTS))
    status, headers, body, _ = call(gate, scope_of(US))
    assert status == 451 and b"unsupported_country" in body and b"app body" not in body
    assert headers["cache-control"] == "private, no-store"
    # Caught by the app, the route went on and answered: its response is replaced all the same.
    assert [d.reason for d in app.seen] == (["rule"] if handled else [])


@pytest.mark.usefixtures("routes_decide")
def test_a_route_warning_amends_and_no_account_changes_nothing() -> None:
    engine = geofence.Engine.from_config(ACCOUNTS)
    grace = App(route(HOME_IR))
    status, headers, _, _ = call(ASGIGate(grace, engine), scope_of(US))
    assert status == 200 and "sunset" in headers and grace.seen[0].reason == "account_grace"
    anonymous = App(route(None))
    status, headers, _, _ = call(ASGIGate(anonymous, engine), scope_of(IR))
    assert headers["sunset"] == WARN_HEADERS["sunset"] and anonymous.seen[0].reason == "rule"


@pytest.mark.usefixtures("routes_decide")
def test_a_denial_raised_after_the_response_started_propagates() -> None:
    async def late(scope: Scope, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await decide_in_route(scope, HOME_RU)

    with pytest.raises(RouteDenied):
        call(ASGIGate(late, geofence.Engine.from_config(ACCOUNTS)), scope_of(US))


def test_a_route_decision_needs_the_gate_in_front() -> None:
    with pytest.raises(RuntimeError, match="need GeofenceMiddleware in front"):
        asyncio.run(decide_in_route(scope_of(US), HOME_RU))

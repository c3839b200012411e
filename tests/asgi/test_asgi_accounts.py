"""Accounts through the ASGI adapter: the ``account=`` hook (sync, async, awaitable, failing),
``on_event``, and routes that decide again with the account they resolve (the FastAPI
dependency ``geofence_account`` and ``decide_account``). The shared table runs the hook too
(test_asgi_scenarios.py)."""

# No `from __future__ import annotations`: FastAPI reads the routes' annotations at runtime.

import asyncio
import logging
from collections.abc import Iterator
from email.utils import format_datetime
from typing import Annotated, Any

import pytest

pytest.importorskip("fastapi")

import httpx
from asgi_apps import Scope, Seen, raw_app
from fastapi import Depends, FastAPI, Header, HTTPException, Request, WebSocket
from fastapi.responses import PlainTextResponse
from scenarios.table import (
    ACCOUNT_HEADER,
    ACCOUNTS,
    BROWSER_ACCEPT,
    CN,
    IR,
    US,
    WARN_HEADERS,
    account_from_header,
    account_header,
)
from starlette.applications import Starlette
from starlette.routing import Route

import geofence
from geofence import Account
from geofence._events import REQUEST_KINDS
from geofence.http import _asgi as asgi_protocol
from geofence_asgi import GeofenceMiddleware, decide_account, geofence_account

# Importing geofence_asgi.routes (above) turned the route wrapper on for the whole process;
# the other ASGI tests check the middleware as it runs without it. The tests here turn it on.
asgi_protocol.ROUTES_DECIDE = False
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

HOME_RU = Account("acct-home-ru", home_country="RU")  # blocked by rule home-ru, from anywhere
HOME_IR = Account("acct-home-ir", home_country="IR")  # account grace by rule home-ir-grace


@pytest.fixture
def routes_decide(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(asgi_protocol, "ROUTES_DECIDE", True)
    yield


def header_of(account: Account | str | None) -> dict[str, str]:
    return {} if account is None else {ACCOUNT_HEADER: account_header(account)}


async def get(
    app: Any, peer: str, path: str = "/v1/models", headers: dict[str, str] | None = None
) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=(peer, 50123))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.get(path, headers=headers or {})


def send_all(app: Any, requests: list[tuple[str, dict[str, str]]]) -> list[httpx.Response]:
    async def main() -> list[httpx.Response]:
        return [await get(app, peer, headers=headers) for peer, headers in requests]

    return asyncio.run(main())


def hooked_app(engine: geofence.Engine, hook: Any, seen: Seen | None = None) -> Any:
    return GeofenceMiddleware(raw_app(seen or Seen()), engine=engine, account=hook)


def scope_account(scope: Scope) -> Any:
    headers = dict(scope["headers"])
    value = headers.get(ACCOUNT_HEADER.encode())
    return account_from_header(value.decode() if value is not None else None)


# -- the account= hook ----------------------------------------------------------------------


async def async_scope_account(scope: Scope) -> Any:
    return scope_account(scope)


class AsyncHook:
    async def __call__(self, scope: Scope) -> Any:
        return scope_account(scope)


def awaitable_scope_account(scope: Scope) -> Any:
    return async_scope_account(scope)


@pytest.mark.parametrize(
    "hook",
    [scope_account, async_scope_account, AsyncHook(), awaitable_scope_account],
    ids=["sync", "async", "async-call", "sync-returning-awaitable"],
)
def test_every_kind_of_hook_decides_for_its_account(hook: Any) -> None:
    app = hooked_app(geofence.Engine.from_config(ACCOUNTS), hook)
    first, second, later = send_all(app, [(US, header_of(HOME_RU))] * 3)
    assert first.status_code == 451  # home_regions: blocked from an allowed country
    assert second.status_code == later.status_code == 403  # two strikes: suspended
    assert second.json()["error"]["code"] == "account_suspended"


def _raise_sync(scope: Scope) -> Any:
    raise RuntimeError("the app's hook is broken")


async def _raise_async(scope: Scope) -> Any:
    raise RuntimeError("the app's hook is broken")


def _raise_awaited(scope: Scope) -> Any:
    return _raise_async(scope)


@pytest.mark.parametrize("hook", [_raise_sync, _raise_async, _raise_awaited])
@pytest.mark.parametrize(("peer", "status"), [(US, 200), (CN, 451)])
def test_a_failing_hook_is_logged_and_the_request_decided_without_an_account(
    hook: Any, peer: str, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    seen = Seen()
    app = hooked_app(geofence.Engine.from_config(ACCOUNTS), hook, seen)
    (response,) = send_all(app, [(peer, {})])
    assert response.status_code == status  # what it is without an account: never a 500
    if status == 200:
        assert seen.decisions[0].account is None
    (record,) = [r for r in caplog.records if r.name == "geofence.asgi"]
    assert record.levelno == logging.ERROR and "account hook" in record.getMessage()
    assert record.exc_info is not None and "the app's hook is broken" in caplog.text


class AsgiUser:
    """Not an account: what a hook returns when it forgets to make one."""

    def __init__(self, scope: Scope) -> None:
        self.scope = scope


def test_a_hook_that_returns_no_account_is_logged_and_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen = Seen()
    app = hooked_app(geofence.Engine.from_config(ACCOUNTS), AsgiUser, seen)
    (response,) = send_all(app, [(US, {})])
    assert response.status_code == 200
    assert seen.decisions[0].account is None
    # (the engine logs each wrong type once per process)
    assert "returned a AsgiUser, not a geofence.Account" in caplog.text


def test_an_id_string_is_an_account() -> None:
    engine = geofence.Engine.from_config(ACCOUNTS)
    app = hooked_app(engine, lambda scope: "acct-by-id")
    statuses = [r.status_code for r in send_all(app, [(CN, {}), (CN, {}), (US, {}), (US, {})])]
    assert statuses == [451, 403, 403, 403]


def test_the_hook_runs_once_per_request_and_never_for_lifespan() -> None:
    calls: list[str] = []

    def hook(scope: Scope) -> Any:
        calls.append(scope["type"])
        return Account("acct-once")

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    from starlette.testclient import TestClient

    wrapped = GeofenceMiddleware(app, config=ACCOUNTS, account=hook)
    with TestClient(wrapped, client=(US, 1)) as client:
        assert client.get("/v1/a").status_code == 200
        assert client.get("/v1/a").status_code == 200  # repeated: the account's memo
    assert calls == ["http", "http"]


# -- on_event -------------------------------------------------------------------------------


@pytest.mark.parametrize("given", ["config", "engine"])
def test_on_event_gets_the_engine_events(given: str) -> None:
    events: list[geofence.Event] = []
    kwargs: dict[str, Any] = (
        {"config": ACCOUNTS}
        if given == "config"
        else {"engine": geofence.Engine.from_config(ACCOUNTS)}
    )
    app = GeofenceMiddleware(
        raw_app(Seen()), account=scope_account, on_event=events.append, **kwargs
    )
    send_all(app, [(US, header_of(HOME_RU))] * 2 + [(US, header_of(HOME_IR))])
    kinds = [(e.kind, e.account) for e in events if e.kind not in REQUEST_KINDS]
    assert kinds == [
        ("account_strike", HOME_RU.id),
        ("account_strike", HOME_RU.id),
        ("account_suspended", HOME_RU.id),
        ("account_grace_started", HOME_IR.id),
    ]


def test_a_failing_on_event_never_reaches_the_request(caplog: pytest.LogCaptureFixture) -> None:
    def broken(event: geofence.Event) -> None:
        raise RuntimeError("receiver bug")

    app = GeofenceMiddleware(
        raw_app(Seen()), config=ACCOUNTS, account=scope_account, on_event=broken
    )
    first, second = send_all(app, [(US, header_of(HOME_RU))] * 2)
    assert (first.status_code, second.status_code) == (451, 403)
    assert "receiver bug" in caplog.text


# -- routes that decide with the account: geofence_account, decide_account -------------------


def current_account(x_test_account: Annotated[str | None, Header()] = None) -> Any:
    """The app's own authentication, a dependency: 401 for a bad key."""
    if x_test_account == "bad-key":
        raise HTTPException(401, "unknown API key")
    return account_from_header(x_test_account)


GeofencedAccount = Annotated[Any, Depends(geofence_account(current_account))]


def fastapi_app(engine: geofence.Engine, seen: list[Any], *, outside: bool = False) -> Any:
    """A FastAPI app whose routes resolve the account with the dependency; the middleware
    added with add_middleware, or wrapping the whole app (outside its error middleware)."""
    app = FastAPI()

    @app.get("/v1/{p:path}")
    async def v1(request: Request, account: GeofencedAccount) -> PlainTextResponse:
        seen.append((request.state.geofence, account))
        return PlainTextResponse("hello", headers={"cache-control": "max-age=60"})

    @app.get("/open")
    async def open_route(request: Request) -> PlainTextResponse:
        seen.append((request.state.geofence, None))
        return PlainTextResponse("open")

    @app.websocket("/v1/stream")
    async def stream(websocket: WebSocket, account: GeofencedAccount) -> None:
        await websocket.accept()
        await websocket.send_text("hi")
        await websocket.close()

    if outside:
        return GeofenceMiddleware(app, engine=engine)
    app.add_middleware(GeofenceMiddleware, engine=engine)
    return app


def test_importing_the_routes_module_turns_the_wrapper_on() -> None:
    import importlib

    from geofence_asgi import routes

    try:
        importlib.reload(routes)
        assert asgi_protocol.ROUTES_DECIDE is True
    finally:
        asgi_protocol.ROUTES_DECIDE = False


@pytest.mark.usefixtures("routes_decide")
@pytest.mark.parametrize("outside", [False, True], ids=["add_middleware", "wrapping"])
@pytest.mark.parametrize("accept", [None, BROWSER_ACCEPT], ids=["json", "html"])
def test_a_route_denial_is_exactly_the_middleware_denial(outside: bool, accept: str | None) -> None:
    """Suspended after two home_regions blocks: the client gets, byte for byte, what the
    middleware sends when it knows the account itself (account=)."""
    headers = header_of(HOME_RU) | ({"accept": accept} if accept else {})
    seen: list[Any] = []
    routed = fastapi_app(geofence.Engine.from_config(ACCOUNTS), seen, outside=outside)
    hooked = hooked_app(geofence.Engine.from_config(ACCOUNTS), scope_account)
    for app_requests in range(3):
        got = send_all(routed, [(US, headers)])[0]
        want = send_all(hooked, [(US, headers)])[0]
        assert (got.status_code, got.content) == (want.status_code, want.content)
        assert sorted(got.headers.multi_items()) == sorted(want.headers.multi_items())
        assert got.status_code == (451 if app_requests == 0 else 403)
    assert seen == []  # the route's body never ran


@pytest.mark.usefixtures("routes_decide")
def test_a_route_warning_sets_the_account_grace_headers() -> None:
    seen: list[Any] = []
    app = fastapi_app(geofence.Engine.from_config(ACCOUNTS), seen)
    (response,) = send_all(app, [(US, header_of(HOME_IR))])
    decision, account = seen[0]
    assert response.status_code == 200 and response.text == "hello"
    assert (decision.action, decision.reason, decision.account) == (
        "warn",
        "account_grace",
        HOME_IR.id,
    )
    assert account == HOME_IR
    # The account's own date, not the rule's.
    assert response.headers["sunset"] == format_datetime(decision.enforce_from, usegmt=True)
    assert response.headers["cache-control"] == "private, max-age=60"
    assert "deprecation" not in response.headers


@pytest.mark.usefixtures("routes_decide")
def test_an_exempt_account_in_a_route_lifts_the_middleware_warning() -> None:
    seen: list[Any] = []
    app = fastapi_app(geofence.Engine.from_config(ACCOUNTS), seen)
    warned, exempt = send_all(app, [(IR, {}), (IR, header_of(Account("acct-exempt")))])
    assert warned.headers["sunset"] == WARN_HEADERS["sunset"]  # by the client's address
    assert "sunset" not in exempt.headers
    assert exempt.headers["cache-control"] == "max-age=60"
    assert [d.reason for d, _ in seen] == ["rule", "exempt_account"]


@pytest.mark.usefixtures("routes_decide")
def test_without_an_account_the_route_changes_nothing() -> None:
    seen: list[Any] = []
    app = fastapi_app(geofence.Engine.from_config(ACCOUNTS), seen)
    allowed, warned = send_all(app, [(US, {}), (IR, {})])
    open_route = asyncio.run(get(app, US, "/open"))
    assert allowed.status_code == 200 and "sunset" not in allowed.headers
    assert warned.headers["sunset"] == WARN_HEADERS["sunset"]
    assert warned.headers["cache-control"] == WARN_HEADERS["cache-control"]
    assert open_route.text == "open"
    assert [(d.reason, d.account, a) for d, a in seen] == [
        ("default", None, None),
        ("rule", None, None),
        ("default", None, None),
    ]


@pytest.mark.usefixtures("routes_decide")
def test_what_the_address_blocks_never_reaches_the_route() -> None:
    """The documented limit: the middleware refuses by the client's address before the route
    knows the account, so an exempt account cannot lift that block here (account= can)."""
    seen: list[Any] = []
    app = fastapi_app(geofence.Engine.from_config(ACCOUNTS), seen)
    (response,) = send_all(app, [(CN, header_of(Account("acct-exempt")))])
    assert response.status_code == 451
    assert seen == []


@pytest.mark.usefixtures("routes_decide")
def test_the_apps_own_authentication_errors_pass_through() -> None:
    seen: list[Any] = []
    app = fastapi_app(geofence.Engine.from_config(ACCOUNTS), seen)
    (response,) = send_all(app, [(US, {ACCOUNT_HEADER: "bad-key"})])
    assert response.status_code == 401
    assert response.json() == {"detail": "unknown API key"}


@pytest.mark.usefixtures("routes_decide")
def test_a_route_denial_of_a_websocket_handshake() -> None:
    from starlette.testclient import TestClient, WebSocketDenialResponse

    app = fastapi_app(geofence.Engine.from_config(ACCOUNTS), [])
    headers = header_of(HOME_RU)
    with TestClient(app, client=(US, 1)) as client:
        with client.websocket_connect("/v1/stream", headers={"x": "1"}) as ws:
            assert ws.receive_text() == "hi"  # no account: allowed
        with (
            pytest.raises(WebSocketDenialResponse) as denied,
            client.websocket_connect("/v1/stream", headers=headers),
        ):
            pass
    assert denied.value.status_code == 451
    assert denied.value.json()["error"]["code"] == "unsupported_country_region_territory"


def test_a_route_decision_without_the_middleware_is_an_error() -> None:
    app = FastAPI()

    @app.get("/v1/x")
    async def v1(account: GeofencedAccount) -> str:
        return "unprotected"

    with pytest.raises(RuntimeError, match="need GeofenceMiddleware in front"):
        asyncio.run(get(app, US, "/v1/x", header_of(HOME_RU)))


@pytest.mark.usefixtures("routes_decide")
def test_decide_account_in_a_starlette_endpoint() -> None:
    seen: list[Any] = []

    async def endpoint(request: Any) -> PlainTextResponse:
        decision = await decide_account(request, scope_account(request.scope))
        seen.append((decision, request.state.geofence))
        return PlainTextResponse("ok")

    app = GeofenceMiddleware(Starlette(routes=[Route("/v1/x", endpoint)]), config=ACCOUNTS)

    async def main() -> list[httpx.Response]:
        return [await get(app, US, "/v1/x", header_of(a)) for a in (None, HOME_RU)]

    ok, blocked = asyncio.run(main())
    assert (ok.status_code, ok.text) == (200, "ok")
    assert blocked.status_code == 451
    assert blocked.json()["error"]["code"] == "unsupported_country_region_territory"
    ((decision, state),) = seen
    assert decision is state and (decision.reason, decision.account) == ("default", None)

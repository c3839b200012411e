"""The shared scenario table (tests/helpers/scenarios/table.py) through the ASGI middleware.

Every scenario runs on a raw ASGI app, a Starlette app and a FastAPI app, each sent through
httpx's ASGI transport with the scenario's peer as the client address; without and with an
account hook, which is a plain function (raw), a coroutine function (Starlette), and a plain
function returning an awaitable (FastAPI).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from functools import cache
from typing import Any

import pytest

pytest.importorskip("httpx")

import httpx
from asgi_apps import KINDS, Seen, build
from scenarios.table import ACCOUNT_HEADER, APP_LINK, CASES, Scenario, account_from_header, check

import geofence
from geofence.http import _asgi as asgi_protocol
from geofence.http._asgi import Scope


@cache
def _engine(config_json: str) -> geofence.Engine:
    return geofence.Engine.from_config(json.loads(config_json))


def engine_for(config: Mapping[str, Any]) -> geofence.Engine:
    """One engine per distinct config, shared by the scenarios and app kinds that use it."""
    return _engine(json.dumps(config, sort_keys=True))


def account_of(scope: Scope) -> Any:
    """The account hook of the scenario table: the x-test-account header."""
    for name, value in scope["headers"]:
        if name == ACCOUNT_HEADER.encode():
            return account_from_header(value.decode())
    return None


async def async_account_of(scope: Scope) -> Any:
    return account_of(scope)


def awaitable_account_of(scope: Scope) -> Any:
    return async_account_of(scope)  # a coroutine, from a plain function


HOOKS = {"raw": account_of, "starlette": async_account_of, "fastapi": awaitable_account_of}


async def send(app: Any, s: Scenario, peer: str, path: str, body: bytes = b"") -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=(peer, 50123))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.request(s.method, path, headers=s.request_headers(), content=body)


@pytest.mark.parametrize("routes", [False, True], ids=["plain", "routes"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("s", "hooked"), CASES)
def test_scenario(
    s: Scenario, hooked: bool, kind: str, routes: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``routes``: as in a process where routes decide with accounts (geofence_asgi.routes
    imported): every response goes through the wrapper that would apply a route's answer."""
    if kind != "raw":
        pytest.importorskip(kind)
    monkeypatch.setattr(asgi_protocol, "ROUTES_DECIDE", routes)
    seen = Seen()
    # Account state lives in the engine: a fresh one for each row that has any.
    engine = geofence.Engine.from_config(s.config) if "accounts" in s.config else None
    hook = HOOKS[kind] if hooked else None
    app = seen.wrap(build(kind, seen, engine or engine_for(s.config), hook))
    for peer, path in s.prior:
        asyncio.run(send(app, s, peer, path))
    seen.decisions.clear()
    seen.receive_calls = 0
    response = asyncio.run(send(app, s, s.peer, s.path, s.body))
    headers = dict(response.headers.items())  # lower-case names, repeated values joined
    decision = seen.decisions[-1] if seen.decisions else None
    check(s, response.status_code, headers, response.content, seen.app_called, decision)
    if s.app_called:
        assert len(seen.decisions) == 1
        # The app's own headers survive, merged with any the policy adds.
        assert APP_LINK in headers["link"]
    else:
        assert seen.receive_calls == 0, "the request body of a denied request was read"
        assert APP_LINK not in headers.get("link", "")

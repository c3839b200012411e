"""The shared scenario table (tests/helpers/scenarios/table.py) through the ASGI middleware.

Every scenario runs on a raw ASGI app, a Starlette app and a FastAPI app, each sent through
httpx's ASGI transport with the scenario's peer as the client address.
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
from scenarios.table import APP_LINK, SCENARIOS, Scenario, check

import geofence


@cache
def _engine(config_json: str) -> geofence.Engine:
    return geofence.Engine.from_config(json.loads(config_json))


def engine_for(config: Mapping[str, Any]) -> geofence.Engine:
    """One engine per distinct config, shared by the scenarios and app kinds that use it."""
    return _engine(json.dumps(config, sort_keys=True))


async def send(app: Any, s: Scenario) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, client=(s.peer, 50123))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        return await client.request(s.method, s.path, headers=dict(s.headers), content=s.body)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("s", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_scenario(s: Scenario, kind: str) -> None:
    if kind != "raw":
        pytest.importorskip(kind)
    seen = Seen()
    app = seen.wrap(build(kind, seen, engine_for(s.config)))
    response = asyncio.run(send(app, s))
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

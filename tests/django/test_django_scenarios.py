"""The shared scenario table through Django's sync Client and its AsyncClient."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.http.response import HttpResponseBase
from django.test import Client, override_settings
from django_support import CountingInput, PeerAsyncClient
from djsite import views
from scenarios.table import SCENARIOS, Scenario, check


def _request_args(s: Scenario) -> tuple[dict[str, Any], dict[str, str]]:
    headers = {k: v for k, v in s.headers.items() if k.lower() != "content-type"}
    content_type = s.headers.get("content-type", "application/octet-stream")
    return {"data": s.body, "content_type": content_type}, headers


def _outcome(s: Scenario, response: HttpResponseBase) -> None:
    headers = {k.lower(): v for k, v in response.items()}
    body = b"".join(response) if response.streaming else response.content  # type: ignore[attr-defined]
    seen = views.SEEN
    check(s, response.status_code, headers, body, bool(seen), seen[-1] if seen else None)


@pytest.mark.parametrize("s", SCENARIOS, ids=lambda s: s.id)
def test_sync_client(s: Scenario) -> None:
    args, headers = _request_args(s)
    body = CountingInput(s.body)
    with override_settings(GEOFENCE=s.config):
        client = Client(REMOTE_ADDR=s.peer)
        response = client.generic(s.method, s.path, headers=headers, **args, **{"wsgi.input": body})
    _outcome(s, response)
    if not s.app_called:
        assert body.reads == 0, s.id
    elif s.method == "POST":
        assert body.reads > 0  # the view reads the body: the counter works


@pytest.mark.parametrize("s", SCENARIOS, ids=lambda s: s.id)
def test_async_client(s: Scenario) -> None:
    args, headers = _request_args(s)

    async def send() -> HttpResponseBase:
        client = PeerAsyncClient(s.peer)
        return await client.generic(s.method, s.path, headers=headers, **args)

    with override_settings(GEOFENCE=s.config, ROOT_URLCONF="djsite.urls_async"):
        response = asyncio.run(send())
    _outcome(s, response)

"""The shared scenario table through Django's sync Client and its AsyncClient.

With an account hook, the sync client runs a sync hook (``djsite.views.account_of``) and the
async client an async one (``djsite.views.async_account_of``); the other two combinations
are in test_django_accounts.py.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.http.response import HttpResponseBase
from django.test import Client, override_settings
from django_support import CountingInput, PeerAsyncClient
from djsite import views
from scenarios.table import CASES, Scenario, check

SYNC_HOOK = "djsite.views.account_of"
ASYNC_HOOK = "djsite.views.async_account_of"


def _request_args(s: Scenario) -> tuple[dict[str, Any], dict[str, str]]:
    headers = {k: v for k, v in s.request_headers().items() if k.lower() != "content-type"}
    content_type = s.headers.get("content-type", "application/octet-stream")
    return {"data": s.body, "content_type": content_type}, headers


def _outcome(s: Scenario, response: HttpResponseBase) -> None:
    headers = {k.lower(): v for k, v in response.items()}
    body = b"".join(response) if response.streaming else response.content  # type: ignore[attr-defined]
    seen = views.SEEN
    check(s, response.status_code, headers, body, bool(seen), seen[-1] if seen else None)


@pytest.mark.parametrize(("s", "hooked"), CASES)
def test_sync_client(s: Scenario, hooked: bool) -> None:
    args, headers = _request_args(s)
    body = CountingInput(s.body)
    with override_settings(GEOFENCE=s.config, GEOFENCE_ACCOUNT=SYNC_HOOK if hooked else None):
        client = Client(REMOTE_ADDR=s.peer)
        for peer, path in s.prior:
            client.generic(s.method, path, headers=headers, REMOTE_ADDR=peer, **args)
        views.SEEN.clear()
        response = client.generic(s.method, s.path, headers=headers, **args, **{"wsgi.input": body})
    _outcome(s, response)
    if not s.app_called:
        assert body.reads == 0, s.id
    elif s.method == "POST":
        assert body.reads > 0  # the view reads the body: the counter works


@pytest.mark.parametrize(("s", "hooked"), CASES)
def test_async_client(s: Scenario, hooked: bool) -> None:
    args, headers = _request_args(s)

    async def send() -> HttpResponseBase:
        for peer, path in s.prior:
            await PeerAsyncClient(peer).generic(s.method, path, headers=headers, **args)
        views.SEEN.clear()
        client = PeerAsyncClient(s.peer)
        return await client.generic(s.method, s.path, headers=headers, **args)

    with override_settings(
        GEOFENCE=s.config,
        GEOFENCE_ACCOUNT=ASYNC_HOOK if hooked else None,
        ROOT_URLCONF="djsite.urls_async",
    ):
        response = asyncio.run(send())
    _outcome(s, response)

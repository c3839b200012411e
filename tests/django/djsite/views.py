"""The scenario table's app: one catch-all view, sync and async flavours."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from scenarios.table import (
    ACCOUNT_HEADER,
    APP_BODY,
    APP_CACHE_CONTROL,
    APP_CONTENT_TYPE,
    APP_STATUS,
    account_from_header,
)

# request.geofence as each call of the view saw it (in-process tests reset it).
SEEN: list[object] = []


def _answer(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        request.body  # noqa: B018 - an app that reads what it is sent
    SEEN.append(getattr(request, "geofence", None))
    response = HttpResponse(APP_BODY, status=APP_STATUS, content_type=APP_CONTENT_TYPE)
    response["Cache-Control"] = APP_CACHE_CONTROL
    if hasattr(request, "geofence"):
        response["X-Geofence-Action"] = request.geofence.action
    return response


def app_view(request: HttpRequest, path: str = "") -> HttpResponse:
    return _answer(request)


async def async_app_view(request: HttpRequest, path: str = "") -> HttpResponse:
    return _answer(request)


def account_of(request: HttpRequest) -> object:
    """settings.GEOFENCE_ACCOUNT of the scenario table: the x-test-account header."""
    return account_from_header(request.headers.get(ACCOUNT_HEADER))


async def async_account_of(request: HttpRequest) -> object:
    return account_from_header(request.headers.get(ACCOUNT_HEADER))

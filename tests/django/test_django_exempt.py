"""``geofence_django.exempt``: per-view exemption (reason ``exempt_view``), sync and async."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from django.test import Client, override_settings
from django.urls.resolvers import URLResolver
from django_support import PeerAsyncClient
from scenarios.table import BASE, RU, US, merged

import geofence
from geofence_django import exempt

URLS = "djsite.urls_exempt"
# Reason of every request: RU is blocked everywhere (403), US allowed.
EXEMPT_PATHS = [
    "/health/",
    "/ahealth/",
    "/v1/status/7/",
    "/cbv/dispatch/",
    "/cbv/class/",
    "/cbv/urlconf/",
    "/api/ping",
    "/legacy/12",
]
DECIDED_PATHS = [
    "/v1/models",  # a neighbour under an exempt view's prefix
    "/v1/amodels",
    "/v1/status/x/",  # the exempt pattern's prefix, but no int: 404
    "/cbv/plain/",
    "/api/pong",
    "/health",  # APPEND_SLASH would redirect it to the exempt view: not that view
    "/nowhere",  # 404
    "/legacy/x",
]


def get(path: str, peer: str, *, asgi: bool = False, **extra: Any) -> Any:
    if asgi:
        return asyncio.run(PeerAsyncClient(peer).get(path, **extra))
    return Client(REMOTE_ADDR=peer).get(path, **extra)


@pytest.mark.parametrize("asgi", [False, True], ids=["wsgi", "asgi"])
def test_exempt_views_get_their_view_from_a_blocked_country(asgi: bool) -> None:
    with override_settings(GEOFENCE=BASE, ROOT_URLCONF=URLS):
        for path in EXEMPT_PATHS:
            response = get(path, RU, asgi=asgi)
            assert (path, response.status_code, response.content) == (path, 200, b"exempt_view")


@pytest.mark.parametrize("asgi", [False, True], ids=["wsgi", "asgi"])
def test_everything_else_is_decided(asgi: bool) -> None:
    with override_settings(GEOFENCE=BASE, ROOT_URLCONF=URLS):
        for path in DECIDED_PATHS:
            assert (path, get(path, RU, asgi=asgi).status_code) == (path, 403)
        # Allowed clients get the view (or Django's 404, or its slash redirect).
        assert get("/v1/models", US, asgi=asgi).content == b"default"
        assert get("/nowhere", US, asgi=asgi).status_code == 404


def test_an_exempt_request_is_neither_decided_nor_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    asked: list[object] = []
    answer = geofence.Engine.answer
    monkeypatch.setattr(
        geofence.Engine, "answer", lambda self, *a, **k: asked.append(a) or answer(self, *a, **k)
    )
    caplog.set_level(logging.INFO, logger="geofence")
    with override_settings(GEOFENCE=merged(mode="report"), ROOT_URLCONF=URLS):
        assert get("/health/", RU).content == b"exempt_view"
        assert asked == []
        assert not [r for r in caplog.records if hasattr(r, "geofence")]
        # Positive control: the neighbour is decided and logged as "would block".
        assert get("/v1/models", RU).status_code == 200
        assert len(asked) == 1
        assert [r.geofence["action"] for r in caplog.records if hasattr(r, "geofence")]


def test_the_account_hook_does_not_decide_an_exempt_view() -> None:
    with override_settings(
        GEOFENCE=merged(accounts={"store": "memory://"}),
        GEOFENCE_ACCOUNT="djsite.views.account_of",
        ROOT_URLCONF=URLS,
    ):
        assert get("/health/", RU).content == b"exempt_view"
        assert get("/ahealth/", RU, asgi=True).content == b"exempt_view"
        assert get("/v1/models", RU).status_code == 403


def test_without_exempt_views_nothing_is_resolved_before_deciding(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    resolved: list[str] = []
    resolve = URLResolver.resolve

    def counting(self: URLResolver, path: str) -> Any:
        resolved.append(path)
        return resolve(self, path)

    monkeypatch.setattr(URLResolver, "resolve", counting)
    with override_settings(GEOFENCE=BASE):  # djsite.urls: no exempt view
        assert get("/v1/models", RU).status_code == 403
    # And with exempt views, a denial outside their prefixes resolves nothing either.
    with override_settings(GEOFENCE=BASE, ROOT_URLCONF=URLS):
        assert get("/cbv/plain/", RU).status_code == 403
        assert get("/nowhere", RU).status_code == 403
    assert resolved == []


def test_exempt_returns_the_view_unchanged() -> None:
    async def view() -> None: ...

    assert exempt(view) is view
    assert asyncio.iscoroutinefunction(view)


class ExemptUrlconf:
    """A middleware in front of geofence's that routes the request with another URLconf, as
    django-hosts does (``request.urlconf``)."""

    def __init__(self, get_response: Any) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        request.urlconf = URLS
        return self.get_response(request)


def test_a_urlconf_set_by_a_middleware_is_the_one_routed() -> None:
    ours = "geofence_django.middleware.GeofenceMiddleware"
    first = "test_django_exempt.ExemptUrlconf"
    with override_settings(GEOFENCE=BASE, MIDDLEWARE=[first, ours]):  # ROOT_URLCONF: djsite.urls
        assert get("/health/", RU).content == b"exempt_view"
        assert get("/v1/models", RU).status_code == 403
    with override_settings(GEOFENCE=BASE):  # without it, /health/ is djsite.urls' catch-all
        assert get("/health/", RU).status_code == 403


def _count_asks(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(method of the engine, path) for each cached() and quick() the middleware makes (bound
    when the middleware is built, so patched on the class before any request)."""
    asked: list[tuple[str, str]] = []
    for name in ("cached", "quick"):
        real = getattr(geofence.Engine, name)

        def counting(self: Any, *args: Any, _name: str = name, _real: Any = real) -> Any:
            asked.append((_name, args[2]))
            return _real(self, *args)

        monkeypatch.setattr(geofence.Engine, name, counting)
    return asked


def _in_cache(path: str) -> bool:
    from geofence_django.conf import get_engine

    return any(key[2] == path for key in get_engine()._cache)


@pytest.mark.parametrize("asgi", [False, True], ids=["wsgi", "asgi"])
def test_without_exempt_views_quick_decides_a_new_client_before_any_exempt_check(
    asgi: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A URLconf with no exempt view, once read: a repeated client is one cached(); a new
    allowed one is cached() then quick(), without the exempt-view check and the request mark
    (GeofenceMiddleware._unknown), which only a request quick() leaves to answer() needs."""
    from geofence.hotpath._newclient import NATIVE
    from geofence_django.middleware import GeofenceMiddleware

    asked = _count_asks(monkeypatch)
    unknown: list[object] = []
    real_unknown = GeofenceMiddleware._unknown

    def counting(self: Any, request: Any) -> Any:
        unknown.append(request.path_info)
        return real_unknown(self, request)

    monkeypatch.setattr(GeofenceMiddleware, "_unknown", counting)
    with override_settings(GEOFENCE=BASE):  # djsite.urls: no exempt view
        assert get("/v1/models", RU, asgi=asgi).status_code == 403  # reads the URLconf
        del asked[:], unknown[:]
        peer = "216.160.83.57" if not asgi else "216.160.83.61"
        for _ in range(2):
            assert get("/v1/models", peer, asgi=asgi).status_code == 200
    # The pure build's quick() is cached(), which leaves a new client to answer(). A sync
    # middleware after Django's own only (djsite's) asks quick() first, once ROOT_URLCONF is
    # known to have no exempt view: one question a request.
    if asgi:
        assert asked == [
            ("cached", "/v1/models"),
            ("quick", "/v1/models"),
            ("cached", "/v1/models"),
        ]
    else:
        assert asked == [("quick", "/v1/models"), ("quick", "/v1/models")]
    assert unknown == ([] if NATIVE else ["/v1/models"])


@pytest.mark.parametrize("asgi", [False, True], ids=["wsgi", "asgi"])
def test_an_exempt_view_is_never_decided_for_a_new_allowed_client(
    asgi: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With exempt views the cache comes first, and quick() only for what is not routed to
    one: an allowed client's request to an exempt view leaves no decision anywhere."""
    asked = _count_asks(monkeypatch)
    with override_settings(GEOFENCE=BASE, ROOT_URLCONF=URLS):
        for path in EXEMPT_PATHS:
            response = get(path, "216.160.83.58", asgi=asgi)
            assert (path, response.content) == (path, b"exempt_view")
            assert not _in_cache(path)
        assert [name for name, path in asked if path in EXEMPT_PATHS] == ["cached"] * len(
            EXEMPT_PATHS
        )
        assert get("/v1/models", "216.160.83.58", asgi=asgi).status_code == 200
        assert _in_cache("/v1/models")


def test_a_urlconf_with_exempt_views_set_by_a_middleware_is_read_before_quick(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The root URLconf has no exempt view, but a middleware routes with one that has: its
    requests are never asked quick() first, a new allowed client's included."""
    asked = _count_asks(monkeypatch)
    ours = "geofence_django.middleware.GeofenceMiddleware"
    first = "test_django_exempt.ExemptUrlconf"
    with override_settings(GEOFENCE=BASE):
        assert get("/v1/models", RU).status_code == 403  # the root URLconf, read: exempt-free
    with override_settings(GEOFENCE=BASE, MIDDLEWARE=[first, ours]):
        for peer in ("216.160.83.59", "216.160.83.60", RU):
            assert get("/health/", peer).content == b"exempt_view"
        assert not _in_cache("/health/")
    assert ("quick", "/health/") not in asked


def test_only_a_middleware_after_djangos_own_is_routed_by_the_root_urlconf() -> None:
    from geofence_django.middleware import GeofenceMiddleware
    from geofence_django.routing import first_after_django

    ours = "geofence_django.middleware.GeofenceMiddleware"
    security = "django.middleware.security.SecurityMiddleware"
    cases = [
        ([ours], True),
        ([security, "django.middleware.locale.LocaleMiddleware", ours], True),
        ([security, ours, "test_django_exempt.ExemptUrlconf"], True),  # after it: no matter
        (["test_django_exempt.ExemptUrlconf", ours], False),  # may set request.urlconf
        ([ours, security, ours], False),  # installed twice
        ([security], False),  # not installed (built by hand)
    ]
    for middleware, expected in cases:
        with override_settings(MIDDLEWARE=middleware):
            assert first_after_django(GeofenceMiddleware) is expected, middleware


def test_a_first_middleware_asks_quick_first_until_the_root_urlconf_changes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Once ROOT_URLCONF is known to route to no exempt view, a middleware that only Django's
    own run before asks quick() first (which answers what the cache holds too): one probe for
    a new client. A new ROOT_URLCONF puts the cache first again until that is known of it."""
    asked = _count_asks(monkeypatch)
    client = Client()  # one handler, so one middleware, for every request below

    def status(path: str, peer: str) -> int:
        return int(client.get(path, REMOTE_ADDR=peer).status_code)

    with override_settings(GEOFENCE=BASE):  # djsite.urls: no exempt view
        assert status("/v1/models", RU) == 403  # reads the URLconf
        assert status("/v1/models", "216.160.83.64") == 200  # cached(), quick(): and from now
        del asked[:]
        assert status("/v1/models", "216.160.83.64") == 200  # repeated
        assert status("/v1/models", "216.160.83.65") == 200  # new
        assert status("/v1/models", RU) == 403  # quick() leaves a block to answer()
        assert asked == [("quick", "/v1/models")] * 3
        del asked[:]
        with override_settings(ROOT_URLCONF=URLS):  # exempt views: the cache first again
            for peer in ("216.160.83.66", "216.160.83.67", RU):
                assert client.get("/health/", REMOTE_ADDR=peer).content == b"exempt_view"
            assert not _in_cache("/health/")
        assert ("quick", "/health/") not in asked
        assert [name for name, _ in asked] == ["cached"] * 3

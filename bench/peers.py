"""The peers callgrind.py measures geofence against, in front of the same bare apps.

- django-geoip2-extras: its ``GeoIP2Middleware`` (country data on every request, cached per
  address in Django's cache, here the default local-memory cache) on the same GeoIP2-Country
  file, in front of the bare Django handler of ``apps.py``. It only annotates the request:
  it blocks nothing.
- fastapi-guard: its ``SecurityMiddleware`` with only the country check on (``CN`` blocked,
  as in geofence's example policy) in front of the bare Starlette app. Its other checks are
  switched off (rate limiting, IP banning, penetration detection, security headers, cloud
  provider ranges, Redis, the agent); logging stays at its defaults (a line per country
  check). Its own geo handler (``IPInfoManager``) downloads an ipinfo.io file and reads
  ipinfo's record layout, so it is given the documented alternative instead: a
  ``GeoIPHandler`` (its protocol) over the same .mmdb, read with the same maxminddb C reader.
- A Starlette ``BaseHTTPMiddleware`` that only calls the next app: the floor of the most
  common way to write a Starlette middleware (fastapi-guard is one).

A peer process never reaches the network: :func:`block_network` makes every outgoing
connection and name lookup fail loudly, so a peer that tried to download would fail the
run instead of being measured on something else.
"""

from __future__ import annotations

import socket
from typing import Any

import apps

BLOCKED_COUNTRY = "CN"


class NetworkBlocked(OSError):
    pass


def block_network() -> None:
    """Every connect and name lookup in this process raises :class:`NetworkBlocked`
    (Unix sockets too: nothing the peers need uses them; asyncio's self-pipe is a
    socketpair, which connects nothing)."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise NetworkBlocked("bench: no network access in a measured process")

    socket.socket.connect = refuse  # type: ignore[method-assign]
    socket.socket.connect_ex = refuse  # type: ignore[method-assign]
    socket.getaddrinfo = refuse
    socket.create_connection = refuse


def missing(module: str) -> str | None:
    """Why a peer cannot be measured here, or None."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        return f"not measured: {module} is not installed (pip install -r bench/requirements.txt)"
    return None


# -- django-geoip2-extras ------------------------------------------------------------------

DJANGO_MIDDLEWARE = "peers.GeoIP2ExtrasMiddleware"


def django_settings(db_path: str) -> dict[str, Any]:
    """What django-geoip2-extras reads from Django's settings."""
    return {
        "GEOIP_PATH": db_path,
        "CACHES": {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
        "GEOIP2_EXTRAS_ADD_RESPONSE_HEADERS": False,
    }


def _extras_class() -> type:
    from geoip2_extras.middleware import GeoIP2Middleware

    class GeoIP2ExtrasMiddleware(GeoIP2Middleware):  # type: ignore[misc]
        """django-geoip2-extras 4.1 as it ran before Django 5.1, which dropped the
        ``GeoIP2._city`` / ``._country`` attributes that its ``city_or_country`` tests
        (it fails every request with AttributeError otherwise). Only those two flags are
        restored, once, at start-up; the per-request path is the package's own."""

        def __init_geoip2__(self) -> None:
            super().__init_geoip2__()
            geoip2 = self.geoip2
            if not hasattr(geoip2, "_city"):
                geoip2._city = geoip2.is_city
                geoip2._country = geoip2.is_country

    return GeoIP2ExtrasMiddleware


def __getattr__(name: str) -> Any:
    # Django imports the middleware by dotted path; the class is made on first use so that
    # importing this module needs neither Django nor the peer.
    if name == "GeoIP2ExtrasMiddleware":
        return _extras_class()
    raise AttributeError(name)


def django_handlers(db_path: str) -> tuple[Any, Any]:
    """(bare WSGIHandler, WSGIHandler with django-geoip2-extras), same settings."""
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler

    bare, _ = apps.django_handlers(None, django_settings(db_path))
    settings.MIDDLEWARE = [DJANGO_MIDDLEWARE]
    extras = WSGIHandler()
    settings.MIDDLEWARE = []
    return bare, extras


def extras_country(ip: str) -> str | None:
    """The country django-geoip2-extras cached for ``ip`` after a request (to prove that it
    ran on the database: it blocks nothing, so the status cannot show it)."""
    from django.core.cache import caches

    data = caches["default"].get(f"geoip2-extras::{ip}")
    return data.get("country_code") if isinstance(data, dict) else None


# -- fastapi-guard -------------------------------------------------------------------------


class MmdbCountries:
    """fastapi-guard's ``GeoIPHandler`` protocol over a GeoIP2-Country .mmdb: loaded at
    construction, never refreshed or downloaded."""

    def __init__(self, db_path: str) -> None:
        import maxminddb

        self._reader = maxminddb.open_database(db_path, maxminddb.MODE_MMAP_EXT)

    @property
    def is_initialized(self) -> bool:
        return True

    async def initialize(self) -> None:
        return None

    async def initialize_redis(self, redis_handler: Any) -> None:
        return None

    async def initialize_agent(self, agent_handler: Any) -> None:
        return None

    def get_country(self, ip: str) -> str | None:
        record = self._reader.get(ip)
        if isinstance(record, dict):
            country = record.get("country")
            if isinstance(country, dict):
                code = country.get("iso_code")
                return code if isinstance(code, str) else None
        return None

    async def refresh(self) -> None:
        return None

    def close(self) -> None:
        self._reader.close()


def guard_app(db_path: str) -> Any:
    """The bare Starlette app behind fastapi-guard with only its country check."""
    from guard.middleware import SecurityMiddleware
    from guard_core.models import SecurityConfig

    config = SecurityConfig(
        geo_ip_handler=MmdbCountries(db_path),
        blocked_countries=frozenset([BLOCKED_COUNTRY]),
        enable_redis=False,
        enable_agent=False,
        enable_rate_limiting=False,
        enable_ip_banning=False,
        enable_penetration_detection=False,
        enable_dynamic_rules=False,
        block_cloud_providers=None,
        enforce_https=False,
        security_headers=None,
    )
    app = apps.starlette_app(None)
    app.add_middleware(SecurityMiddleware, config=config)
    return app


def passthrough_app() -> Any:
    """The bare Starlette app behind a BaseHTTPMiddleware that only calls the next app."""
    from starlette.middleware.base import BaseHTTPMiddleware

    app = apps.starlette_app(None)

    async def dispatch(request: Any, call_next: Any) -> Any:
        return await call_next(request)

    app.add_middleware(BaseHTTPMiddleware, dispatch=dispatch)
    return app

"""Section 3: what each adapter adds to the same bare app, called in-process as a server would.

No test client: a WSGI app is called with a ready environ and a no-op ``start_response`` and
its body iterated and closed; the ASGI app is awaited with a ready scope, a ``receive`` that
returns an empty body and a ``send`` that drops messages. Every request gets a fresh environ /
scope (frameworks and adapters write into them), built before the clock starts.
"""

from __future__ import annotations

import asyncio
import io
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import apps
from report import Row
from timing import Batch, Pair, clock, paired
from workload import HEADERS, PATH, REPEATED, Addresses, policy

Environ = dict[str, Any]
WSGIApp = Callable[[Environ, Callable[..., Any]], Iterable[bytes]]

SECTION = "3. adapter overhead in-process (geofence vs the same bare app)"
# Targets from the performance issue: overhead in percent of the bare request.
TARGETS = {
    ("Django", "repeated"): 3.0,
    ("Flask", "repeated"): 3.0,
    ("Starlette", "repeated"): 15.0,
    ("Django", "new"): 12.0,
    ("Flask", "new"): 15.0,
}


@dataclass(frozen=True)
class Sizes:
    count: int  # requests per batch
    rounds: int


# One request's client: (socket peer, X-Forwarded-For value or None).
Client = tuple[str, str | None]
Clients = Callable[[int], list[Client]]
PROXY = "127.0.0.1"  # trusted by the example policy


def _environ(peer: str, forwarded: str | None = None) -> Environ:
    environ: Environ = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": PATH,
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": peer,
        "REMOTE_PORT": "54321",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(b""),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in HEADERS:
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    if forwarded is not None:
        environ["HTTP_X_FORWARDED_FOR"] = forwarded
    return environ


_RAW_HEADERS = [(n.encode("latin-1"), v.encode("latin-1")) for n, v in HEADERS]


def _scope(peer: str, forwarded: str | None = None) -> dict[str, Any]:
    headers = _RAW_HEADERS
    if forwarded is not None:
        headers = [*headers, (b"x-forwarded-for", forwarded.encode("latin-1"))]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": PATH,
        "raw_path": PATH.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": (peer, 54321),
        "server": ("127.0.0.1", 8000),
        "state": {},
        "extensions": {},
    }


def _start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
    _start_response.status = status  # type: ignore[attr-defined]
    return None


def _wsgi_batch(app: WSGIApp, clients: Clients) -> Batch:
    def batch(count: int) -> int:
        environs = [_environ(*client) for client in clients(count)]
        start = _start_response
        started = clock()
        for environ in environs:
            result = app(environ, start)
            for _ in result:
                pass
            close = getattr(result, "close", None)
            if close is not None:
                close()
        return clock() - started

    return batch


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: dict[str, Any]) -> None:
    if message["type"] == "http.response.start":
        _send.status = message["status"]  # type: ignore[attr-defined]


def _asgi_batch(app: Any, clients: Clients, loop: asyncio.AbstractEventLoop) -> Batch:
    async def many(scopes: list[dict[str, Any]]) -> int:
        started = clock()
        for scope in scopes:
            await app(scope, _receive, _send)
        return clock() - started

    def batch(count: int) -> int:
        return loop.run_until_complete(many([_scope(*client) for client in clients(count)]))

    return batch


def _wsgi_status(app: WSGIApp, client: Client) -> int:
    result = app(_environ(*client), _start_response)
    body = b"".join(result)
    getattr(result, "close", lambda: None)()
    assert body is not None
    return int(_start_response.status.split()[0])  # type: ignore[attr-defined]


def _asgi_status(app: Any, client: Client, loop: asyncio.AbstractEventLoop) -> int:
    loop.run_until_complete(app(_scope(*client), _receive, _send))
    return int(_send.status)  # type: ignore[attr-defined]


def adapter_rows(
    db_path: str, addresses: Addresses, reader: Any, blocked: str, sizes: Sizes
) -> list[Row]:
    """``reader``: the database's maxminddb Reader, to pick new clients from unused networks;
    ``blocked``: an address the policy blocks on it (to prove that geofence is on)."""
    config = policy(db_path)
    django_bare, django_fenced = apps.django_handlers(config)
    flask_bare, flask_fenced = apps.flask_app(None), apps.flask_app(config)
    loop = asyncio.new_event_loop()
    star_bare, star_fenced = apps.starlette_app(None), apps.starlette_app(config)

    def check(name: str, status: Callable[[Any, Client], int], bare: Any, fenced: Any) -> None:
        got = (
            status(bare, (blocked, None)),
            status(fenced, (blocked, None)),
            status(fenced, (REPEATED, None)),
            status(fenced, (PROXY, blocked)),
        )
        if got != (200, 451, 200, 451):
            raise RuntimeError(f"{name}: statuses {got}, expected (200, 451, 200, 451)")

    check("Django", _wsgi_status, django_bare, django_fenced)
    check("Flask", _wsgi_status, flask_bare.wsgi_app, flask_fenced.wsgi_app)
    check("Starlette", lambda a, p: _asgi_status(a, p, loop), star_bare, star_fenced)

    def repeated(count: int) -> list[Client]:
        return [(REPEATED, None)] * count

    def new(count: int) -> list[Client]:
        return [(peer, None) for peer in addresses.new_networks(count, reader)]

    def proxied(count: int) -> list[Client]:
        return [(PROXY, REPEATED)] * count

    rows: list[Row] = []
    frameworks: list[tuple[str, Callable[[Clients], tuple[Batch, Batch]]]] = [
        (
            "Django",
            lambda clients: (
                _wsgi_batch(django_bare, clients),
                _wsgi_batch(django_fenced, clients),
            ),
        ),
        (
            "Flask",
            lambda clients: (
                _wsgi_batch(flask_bare.wsgi_app, clients),
                _wsgi_batch(flask_fenced.wsgi_app, clients),
            ),
        ),
        (
            "Starlette",
            lambda clients: (
                _asgi_batch(star_bare, clients, loop),
                _asgi_batch(star_fenced, clients, loop),
            ),
        ),
    ]
    try:
        for client, clients in (("repeated", repeated), ("new", new), ("proxied", proxied)):
            for name, make in frameworks:
                bare, fenced = make(clients)
                result = paired(bare, fenced, sizes.count, sizes.rounds)
                rows.append(_row(name, client, result))
    finally:
        loop.close()
    return rows


def _row(name: str, client: str, result: Pair) -> Row:
    limit = TARGETS.get((name, client))
    pct = result.overhead_pct
    added = (result.b.median - result.a.median) / 1000
    who = {
        "repeated": "repeated client",
        "new": "new client each request",
        "proxied": "repeated client via trusted proxy (X-Forwarded-For)",
    }[client]
    return Row(
        SECTION,
        f"{name}: {who}",
        f"{pct:+.1f} %",
        f"bare {result.a.us:.1f} us, geofence {result.b.us:.1f} us (+{added:.1f} us); "
        f"ratio p10-p90 {result.ratio.p10:.3f}-{result.ratio.p90:.3f}",
        f"<= {limit:g} %" if limit is not None else "",
        pct <= limit if limit is not None else None,
        {
            "overhead_pct": round(pct, 2),
            "bare_median_ns": round(result.a.median, 1),
            "geofence_median_ns": round(result.b.median, 1),
            "ratio_p10": round(result.ratio.p10, 4),
            "ratio_p90": round(result.ratio.p90, 4),
        },
    )

"""One small driver per framework: the same hostile request through every adapter.

A request is described as it travels on the wire: the request target percent-encoded, header
values as bytes. Each driver hands it to its framework the way a real server would (WSGI
servers decode header bytes as Latin-1 and percent-decode the path; ASGI servers give the
decoded path and the raw header bytes), so the adapters see what they would see in
production, and the framework test clients' own validation (werkzeug refuses CR/LF in header
values) cannot hide a hazard.

Every app behind the drivers answers 200 with :data:`APP_BODY` and the headers in
:data:`APP_HEADERS`: deliberately shared-cacheable, so that a warn decision that fails to
make the response private is visible.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

APP_BODY = b"hello from the app"
APP_HEADERS: tuple[tuple[str, str], ...] = (
    ("Content-Type", "text/plain; charset=utf-8"),
    ("Cache-Control", "public, max-age=600, s-maxage=600"),
    # RFC 9213 targeted fields: a CDN that honours them ignores Cache-Control altogether.
    ("CDN-Cache-Control", "max-age=600"),
    ("Surrogate-Control", "max-age=600"),
)
ADAPTERS = ("django", "flask", "asgi", "starlette")
# Methods every app accepts (Flask and Starlette route by method).
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@dataclass(frozen=True)
class Wire:
    """A request as sent: ``target`` percent-encoded, header values as raw bytes."""

    peer: str
    target: str = "/v1/models"
    method: str = "GET"
    headers: tuple[tuple[str, bytes], ...] = ()
    host: bytes = b"testserver"

    @property
    def path(self) -> str:
        """The path as the app routes on it (what servers and test clients decode)."""
        return unquote(urlsplit(self.target).path)


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]  # lower-case names, in order, repeated names kept
    body: bytes
    decisions: list[Any] = field(default_factory=list)  # what the app saw; empty: not called

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return ", ".join(values) if values else None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]


# -- Django --------------------------------------------------------------------------------

DJANGO_MIDDLEWARE = "geofence_django.middleware.GeofenceMiddleware"


def django_ready() -> None:
    """Configure Django once per process, unless another suite has done it already."""
    pytest.importorskip("django")
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            **django_settings([DJANGO_MIDDLEWARE]), DATABASES={}, SECRET_KEY="hazards-only"
        )
        django.setup()


def django_settings(middleware: Sequence[str]) -> dict[str, Any]:
    # Everything the drivers rely on, re-applied per request: another suite in this process
    # may have configured Django differently.
    return {
        "DEBUG": False,
        "ALLOWED_HOSTS": ["*"],
        "INSTALLED_APPS": ["geofence_django"],
        "MIDDLEWARE": list(middleware),
        "ROOT_URLCONF": "hazard_django_urls",
        "TEMPLATES": [
            {"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}
        ],
    }


def send_django(
    config: Mapping[str, Any], wire: Wire, *, middleware: Sequence[str] = (DJANGO_MIDDLEWARE,)
) -> Reply:
    django_ready()
    import hazard_django_urls
    from django.test import Client, override_settings

    seen = hazard_django_urls.SEEN
    seen.clear()
    headers = {name: value.decode("latin-1") for name, value in wire.headers}
    headers["host"] = wire.host.decode("latin-1")
    with override_settings(GEOFENCE=config, **django_settings(middleware)):
        client = Client(REMOTE_ADDR=wire.peer)
        response = client.generic(wire.method, wire.target, headers=headers)
    pairs = [(k.lower(), v) for k, v in response.items()]
    body = b"".join(response) if response.streaming else response.content
    return Reply(response.status_code, pairs, body, list(seen))


# -- Flask ---------------------------------------------------------------------------------


def flask_app(config: Mapping[str, Any], *, installs: int = 1, hostile_hook: bool = False) -> Any:
    """A catch-all Flask app with the extension installed ``installs`` times.

    ``hostile_hook``: the app also has an after_request hook that makes every response
    publicly cacheable (as a careless caching helper would), denials included.
    """
    pytest.importorskip("flask")
    from flask import Flask, g

    from geofence_flask import Geofence

    app = Flask(__name__, static_folder=None)
    app.config["GEOFENCE"] = config
    seen: list[Any] = []
    app.config["HAZARD_SEEN"] = seen

    @app.route("/", defaults={"p": ""}, methods=METHODS)
    @app.route("/<path:p>", methods=METHODS)
    def catch_all(p: str) -> tuple[bytes, int, list[tuple[str, str]]]:
        seen.append(g.geofence)
        return APP_BODY, 200, list(APP_HEADERS)

    if hostile_hook:

        @app.after_request
        def make_public(response: Any) -> Any:
            response.headers["Cache-Control"] = "public, max-age=86400, s-maxage=86400"
            response.headers["Expires"] = "Fri, 01 Jan 2100 00:00:00 GMT"
            response.headers["CDN-Cache-Control"] = "max-age=86400"
            response.headers["Surrogate-Control"] = "max-age=86400"
            return response

    for _ in range(installs):
        Geofence(app)
    return app


def send_flask(config: Mapping[str, Any], wire: Wire, app: Any = None) -> Reply:
    app = app if app is not None else flask_app(config)
    seen = app.config["HAZARD_SEEN"]
    seen.clear()
    environ = {
        # Straight into the environ, as a WSGI server puts them: werkzeug's header object
        # would refuse CR/LF, which a raw socket does not.
        "HTTP_" + name.upper().replace("-", "_"): value.decode("latin-1")
        for name, value in wire.headers
    }
    environ["HTTP_HOST"] = wire.host.decode("latin-1")
    environ["REMOTE_ADDR"] = wire.peer
    # Straight to the WSGI app, as a server calls it: the test client of Werkzeug 2.3 builds
    # the request URL for its cookie jar and fails on a hostile Host before the app runs.
    from werkzeug.test import EnvironBuilder, run_wsgi_app

    builder = EnvironBuilder(wire.target, method=wire.method, environ_overrides=environ)
    body, status, headers = run_wsgi_app(app, builder.get_environ(), buffered=True)
    pairs = [(k.lower(), v) for k, v in headers.items()]
    return Reply(int(status.split()[0]), pairs, b"".join(body), list(seen))


# -- ASGI: raw and Starlette ---------------------------------------------------------------


def raw_app(seen: list[Any]) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope.get("state", {}).get("geofence"))
        headers = [(k.lower().encode(), v.encode()) for k, v in APP_HEADERS]
        headers.append((b"content-length", str(len(APP_BODY)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        body = b"" if scope["method"] == "HEAD" else APP_BODY
        await send({"type": "http.response.body", "body": body})

    return app


def asgi_app(kind: str, config: Mapping[str, Any], seen: list[Any], *, installs: int = 1) -> Any:
    """``kind`` "asgi": the raw middleware (wrapped ``installs`` times) around a raw app;
    "starlette": a Starlette app with the middleware in its list ``installs`` times."""
    from geofence_asgi import GeofenceMiddleware

    if kind == "asgi":
        app: Any = raw_app(seen)
        for _ in range(installs):
            app = GeofenceMiddleware(app, config=config)
        return app
    pytest.importorskip("starlette")
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def view(request: Request) -> Response:
        seen.append(getattr(request.state, "geofence", None))
        body = b"" if request.method == "HEAD" else APP_BODY
        return Response(body, 200, headers=dict(APP_HEADERS[1:]), media_type=APP_HEADERS[0][1])

    middleware = [Middleware(GeofenceMiddleware, config=config) for _ in range(installs)]
    return Starlette(routes=[Route("/{p:path}", view, methods=METHODS)], middleware=middleware)


_ports = itertools.count(40000)


def scope_for(wire: Wire) -> dict[str, Any]:
    """The HTTP scope an ASGI server builds for ``wire``."""
    raw_path = urlsplit(wire.target).path.encode("ascii")
    headers = [(b"host", wire.host)]
    headers += [(name.lower().encode("latin-1"), value) for name, value in wire.headers]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": wire.method,
        "scheme": "http",
        "path": wire.path,
        "raw_path": raw_path,
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": (wire.peer, next(_ports) % 65536),
        "server": ("testserver", 80),
    }


async def call_asgi(app: ASGIApp, wire: Wire) -> tuple[int, list[tuple[str, str]], bytes]:
    """Drive ``app`` with one request, as a server would; returns status, headers, body."""
    messages: list[Message] = []
    sent_body = False

    async def receive() -> Message:
        nonlocal sent_body
        if sent_body:
            await asyncio.Event().wait()  # the client stays connected
        sent_body = True
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        messages.append(message)

    await app(scope_for(wire), receive, send)
    start = next(m for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    headers = [(k.decode("latin-1").lower(), v.decode("latin-1")) for k, v in start["headers"]]
    return start["status"], headers, body


async def start_asgi(app: ASGIApp) -> None:
    """Run the lifespan startup and shutdown of ``app``, as a server does before serving."""
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive() -> Message:
        return next(messages)

    async def send(message: Message) -> None:
        pass

    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)


def send_asgi(kind: str, config: Mapping[str, Any], wire: Wire, *, installs: int = 1) -> Reply:
    seen: list[Any] = []
    app = asgi_app(kind, config, seen, installs=installs)
    status, headers, body = asyncio.run(call_asgi(app, wire))
    return Reply(status, headers, body, seen)


# -- one entry point -----------------------------------------------------------------------


def send(adapter: str, config: Mapping[str, Any], wire: Wire) -> Reply:
    if adapter == "django":
        return send_django(config, wire)
    if adapter == "flask":
        return send_flask(config, wire)
    return send_asgi(adapter, config, wire)


def send_twice_installed(adapter: str, config: Mapping[str, Any], wire: Wire) -> Reply:
    """``wire`` through an app with the adapter installed twice."""
    if adapter == "django":
        return send_django(config, wire, middleware=[DJANGO_MIDDLEWARE, DJANGO_MIDDLEWARE])
    if adapter == "flask":
        return send_flask(config, wire, flask_app(config, installs=2))
    return send_asgi(adapter, config, wire, installs=2)


def build_only(adapter: str, config: Mapping[str, Any]) -> None:
    """Install the adapter with ``config`` the framework's usual way, and make it load."""
    if adapter == "django":
        send_django(config, Wire(peer="127.0.0.1", target="/"))
    elif adapter == "flask":
        flask_app(config)
    else:
        # The raw middleware loads when it is built; Starlette builds its middleware stack
        # inside its first call, the lifespan startup a server sends before any request.
        asyncio.run(start_asgi(asgi_app(adapter, config, [])))

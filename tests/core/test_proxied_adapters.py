"""WSGI and ASGI adapters find a repeated client behind a trusted proxy in the engine's cache
by the proxy's address and the forwarding line (issue 15), without deciding it again."""

from __future__ import annotations

import asyncio
from typing import Any

from scenarios.table import BASE, CN, US

import geofence
from geofence.http import Answer
from geofence.http._asgi import forwarded_line
from geofence.http._wsgi import DECISION_KEY, WSGIGate
from geofence_asgi import GeofenceMiddleware
from geofence_asgi.middleware import STATE_KEY

PROXIED = {**BASE, "client_ip": {"trusted_proxies": ["10.0.0.0/8"]}}


class CountingEngine(geofence.Engine):
    answers = 0

    def answer(self, request: geofence.RequestInfo, now: Any = None, account: Any = None) -> Answer:
        self.answers += 1
        return super().answer(request, now, account)


def _environ(line: str | None) -> dict[str, Any]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/v1/x",
        "REMOTE_ADDR": "10.0.0.1",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
    }
    if line is not None:
        environ["HTTP_X_FORWARDED_FOR"] = line
    return environ


def test_wsgi() -> None:
    engine = CountingEngine.from_config(PROXIED)
    seen: list[geofence.Decision] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        seen.append(environ[DECISION_KEY])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    gate = WSGIGate(engine, app)

    def get(line: str | None) -> str:
        status: list[str] = []
        body = gate.wsgi(_environ(line), lambda s, h, e=None: status.append(s))
        b"".join(body)
        return status[0]

    for _ in range(3):
        assert get(US).startswith("200") and seen[-1].client_ip == US
    assert engine.answers == 1
    assert get(CN).startswith("451") and get(CN).startswith("451")
    assert engine.answers == 3
    assert get(None).startswith("200") and seen[-1].reason == "unresolved_client"


def _scope(line: bytes | None) -> dict[str, Any]:
    headers = [(b"host", b"testserver")]
    if line is not None:
        headers.append((b"x-forwarded-for", line))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/v1/x",
        "raw_path": b"/v1/x",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("10.0.0.1", 50123),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


def test_asgi() -> None:
    engine = CountingEngine.from_config(PROXIED)
    seen: list[geofence.Decision] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["state"][STATE_KEY])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    middleware = GeofenceMiddleware(app, engine=engine)

    def get(line: bytes | None) -> int:
        sent: list[Any] = []

        async def receive() -> Any:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Any) -> None:
            sent.append(message)

        asyncio.run(middleware(_scope(line), receive, send))
        return int(sent[0]["status"])

    for _ in range(3):
        assert get(US.encode()) == 200 and seen[-1].client_ip == US
    assert engine.answers == 1
    assert get(CN.encode()) == 451 and get(CN.encode()) == 451
    assert engine.answers == 3


def test_forwarded_line_reads_exactly_one_line() -> None:
    name = b"x-forwarded-for"
    assert forwarded_line([(b"host", b"a"), (name, b"1.2.3.4")], name) == "1.2.3.4"
    assert forwarded_line([(b"X-Forwarded-For", b"1.2.3.4")], name) == "1.2.3.4"
    assert forwarded_line([(name, b"1.2.3.4"), (name, b"5.6.7.8")], name) is None
    assert forwarded_line([(b"host", b"a")], name) is None
    assert forwarded_line([(name, b"caf\xe9")], name) == "caf\xe9"
    assert forwarded_line([("not", "bytes")], name) is None  # type: ignore[list-item]
    assert forwarded_line(None, name) is None  # type: ignore[arg-type]

"""``geofence demo``: a tiny raw-ASGI app behind the example policy, served by uvicorn.

The app has no framework on purpose: what protects it is only
``geofence_asgi.GeofenceMiddleware(app, config=example_policy())``. Every page it serves shows
the decision the middleware handed it, so a visitor sees why a request was allowed or warned.
The example policy believes X-Forwarded-For from loopback only, which lets curl on the same
machine pretend to come from anywhere.

Under another server: ``uvicorn --factory geofence.cli.demo:create_app``.
"""

from __future__ import annotations

import html
import json
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from typing import Any

from geofence._model import Decision
from geofence.cli._example import example_policy

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

INSTALL_HINT = 'geofence demo needs uvicorn: pip install "geofence-middleware[demo]"'
# What to try: (what it shows, X-Forwarded-For, path, Accept). The README shows the same.
EXAMPLES = (
    ("allowed: 8.8.8.8 is in the US", "8.8.8.8", "/v1/models", None),
    (
        "warned: 178.120.0.1 is in Belarus, in its grace period (Sunset header)",
        "178.120.0.1",
        "/v1/models",
        None,
    ),
    ("blocked, JSON: 175.16.199.1 is in China", "175.16.199.1", "/v1/models", None),
    ("blocked, a page for browsers", "175.16.199.1", "/web/home", "text/html"),
    ("exempt: /healthz is never blocked", "175.16.199.1", "/healthz", None),
)
SHOWN = ("action", "enforced", "reason", "rule", "client_ip", "country", "phase")


def curl_lines(base: str) -> list[str]:
    lines = []
    for what, client, path, accept in EXAMPLES:
        command = f'curl -i -H "X-Forwarded-For: {client}"'
        if accept:
            command += f' -H "Accept: {accept}"'
        lines.append(f"{command} {base}{path}    # {what}")
    return lines


def create_app(now: datetime | None = None) -> ASGIApp:
    """The demo app wrapped in the middleware (``now`` places the example's grace period)."""
    from geofence_asgi import GeofenceMiddleware

    return GeofenceMiddleware(demo_app, config=example_policy(now))


def run(host: str = "127.0.0.1", port: int = 8000) -> int:
    """Serve the demo until interrupted; the exit status for ``geofence demo``."""
    try:
        import uvicorn
    except ImportError:
        print(INSTALL_HINT, file=sys.stderr)
        return 2
    app = create_app()
    print(banner(host, port), flush=True)
    # proxy_headers=False: uvicorn would otherwise rewrite the client address from
    # X-Forwarded-For itself; the demo shows geofence's own (trusted-proxy) resolution.
    config = uvicorn.Config(app, host=host, port=port, lifespan="on", proxy_headers=False)
    server = uvicorn.Server(config)
    try:
        server.run()
    except SystemExit as exit_:  # uvicorn exits like this when it cannot listen
        return exit_.code if isinstance(exit_.code, int) else 1
    return 0


def banner(host: str, port: int) -> str:
    # A wildcard listener is reached on loopback, the only address whose X-Forwarded-For counts.
    shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host, host)  # noqa: S104
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    base = f"http://{shown}:{port}"
    lines = [f"geofence demo on {base}: the example policy, embedded country data.", "Try:"]
    return "\n".join([*lines, *(f"  {line}" for line in curl_lines(base)), ""])


def decision_fields(decision: Decision | None) -> dict[str, Any]:
    if decision is None:
        return {}
    fields = {name: getattr(decision, name) for name in SHOWN}
    fields["phase"] = decision.phase or None
    return fields


async def demo_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    if scope["type"] != "http":
        await send({"type": "websocket.close", "code": 1000})
        return
    decision: Decision | None = scope.get("state", {}).get("geofence")
    shown = decision_fields(decision)
    path, method = scope["path"], scope["method"]
    if method not in ("GET", "HEAD"):
        status, kind, body = 405, "application/json", _json({"error": "use GET"})
    elif path == "/":
        host = dict(scope["headers"]).get(b"host", b"127.0.0.1:8000").decode("latin-1")
        status, kind, body = 200, "text/html; charset=utf-8", _index(f"http://{host}", shown)
    elif path == "/v1/models":
        models = [{"id": "demo-small", "object": "model"}, {"id": "demo-large", "object": "model"}]
        document = {"object": "list", "data": models, "geofence": shown}
        status, kind, body = 200, "application/json", _json(document)
    elif path == "/web/home":
        status, kind, body = 200, "text/html; charset=utf-8", _page("Home", "", shown)
    elif path == "/healthz":
        status, kind, body = 200, "application/json", _json({"status": "ok", "geofence": shown})
    else:
        status, kind, body = 404, "application/json", _json({"error": "not found"})
    headers = [(b"content-type", kind.encode()), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def _json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent=2).encode() + b"\n"


def _page(title: str, intro: str, shown: dict[str, Any]) -> bytes:
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in shown.items()
    )
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)} - geofence demo</title></head><body>"
        f"<h1>{html.escape(title)}</h1>{intro}"
        f"<h2>What geofence decided for this request</h2><table>{rows}</table>"
        "</body></html>\n"
    ).encode()


def _index(base: str, shown: dict[str, Any]) -> bytes:
    examples = "".join(f"<li><pre>{html.escape(line)}</pre></li>" for line in curl_lines(base))
    intro = (
        "<p>This app is protected by <code>geofence_asgi.GeofenceMiddleware</code> with the "
        "example policy: clients in unsupported regions are blocked on <code>/v1/*</code> "
        "(JSON for API clients) and <code>/web/*</code> (a page for browsers); two more "
        "countries are in a grace period and get <code>Sunset</code> / <code>Deprecation</code> "
        "headers until the block starts; <code>/healthz</code> is exempt.</p>"
        "<p>The policy trusts <code>X-Forwarded-For</code> from loopback only, so from this "
        f"machine you can pretend to be anywhere:</p><ul>{examples}</ul>"
    )
    return _page("geofence demo", intro, shown)

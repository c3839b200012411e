"""``geofence demo``: a tiny raw-ASGI app behind the example policy, served by uvicorn.

Two parts. The protected app has no framework on purpose: what protects it is only
``geofence_asgi.GeofenceMiddleware(app, config=example_policy())``, and every answer it gives
shows the decision the middleware handed it. The policy believes X-Forwarded-For from loopback
only, which lets curl on the same machine pretend to come from anywhere.

The page at ``/`` (and ``/preview``) is the demo's own explorer and sits *outside* the
middleware, so it is never blocked: a browser sends no X-Forwarded-For, and the person looking
is not who the page decides for. They pick an address or a country, a time, a path and what the
client accepts; the page asks the middleware's own engine (``engine.answer``) and shows the
decision, the response geofence would send and, for a block, the page a blocked user gets.

Under another server: ``uvicorn --factory geofence.cli.demo:create_app --no-proxy-headers``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import ipaddress
import json
import re
import sys
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from geofence._model import Decision, RequestInfo
from geofence.cli._example import example_policy

if TYPE_CHECKING:
    from geofence import Engine
    from geofence.http._answer import Answer

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = list[tuple[str, str]]

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
# The explorer's own paths: answered before the middleware, so never blocked.
EXPLORER_PATHS = ("/", "/preview")


def curl_lines(base: str) -> list[str]:
    lines = []
    for what, client, path, accept in EXAMPLES:
        command = f'curl -i -H "X-Forwarded-For: {client}"'
        if accept:
            command += f' -H "Accept: {accept}"'
        lines.append(f"{command} {base}{path}    # {what}")
    return lines


def create_app(now: datetime | None = None) -> Demo:
    """The demo: the explorer, and the app wrapped in the middleware (``now`` places the
    example's grace period)."""
    from geofence_asgi import GeofenceMiddleware

    demo = Demo(GeofenceMiddleware(demo_app, config=example_policy(now)))
    country_samples()  # the scan of the embedded data, before the first visitor waits for it
    return demo


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
    lines = [
        f"geofence demo on {base}: the example policy, embedded country data.",
        f"Open {base}/ in a browser to pick an address, a country and a date. Or try:",
    ]
    return "\n".join([*lines, *(f"  {line}" for line in curl_lines(base)), ""])


def decision_fields(decision: Decision | None) -> dict[str, Any]:
    if decision is None:
        return {}
    fields = {name: getattr(decision, name) for name in SHOWN}
    fields["phase"] = decision.phase or None
    return fields


# -- the protected app --------------------------------------------------------------------


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
    elif path == "/v1/models":
        models = [{"id": "demo-small", "object": "model"}, {"id": "demo-large", "object": "model"}]
        document = {"object": "list", "data": models, "geofence": shown}
        status, kind, body = 200, "application/json", _json(document)
    elif path == "/web/home":
        status, kind, body = 200, "text/html; charset=utf-8", _page("Home", shown)
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


def _page(title: str, shown: dict[str, Any]) -> bytes:
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in shown.items()
    )
    return (
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)} - geofence demo</title></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f"<h2>What geofence decided for this request</h2><table>{rows}</table>"
        "</body></html>\n"
    ).encode()


# -- the explorer -------------------------------------------------------------------------


class Demo:
    """What ``geofence demo`` serves: the explorer at ``/`` and ``/preview``, everything else
    (lifespan included) through the middleware to :func:`demo_app`."""

    def __init__(self, protected: Any) -> None:
        #: ``GeofenceMiddleware(demo_app, ...)``; its engine is the one the explorer asks.
        self.protected = protected
        self.engine: Engine = protected.engine

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path") in EXPLORER_PATHS:
            await self.explore(scope, send)
        else:
            await self.protected(scope, receive, send)

    async def explore(self, scope: Scope, send: Send) -> None:
        method = scope.get("method", "GET")
        if method not in ("GET", "HEAD"):
            body = _json({"error": "use GET"})
            await _send(send, 405, [("Content-Type", "application/json")], body, method)
            return
        # To the minute: what the form's time field holds, so a resubmitted form decides the same.
        now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
        query = scope.get("query_string", b"").decode("latin-1")
        # The page's language defaults to the viewer's own: the block page they would get.
        viewer_languages = _header(scope, b"accept-language")[:MAX_FIELD]
        pick = parse_pick(query, now, country_samples(), viewer_languages)
        shown = await self.show(pick) if pick.ready else None
        if scope["path"] == "/preview":
            if shown is None:
                body = _json({"error": "pick an address or a country", "problems": pick.problems})
                await _send(send, 400, [("Content-Type", "application/json")], body, method)
            else:
                await _send(send, shown.status, list(shown.headers), shown.body, method)
            return
        host = _header(scope, b"host") or "127.0.0.1:8000"
        viewer = (scope.get("client") or ("", 0))[0]
        page, csp = explorer_page(self.engine, pick, shown, viewer, f"http://{host}")
        headers = [
            ("Content-Type", "text/html; charset=utf-8"),
            ("Content-Security-Policy", csp),
            ("X-Content-Type-Options", "nosniff"),
            ("Referrer-Policy", "no-referrer"),
            ("Cache-Control", "no-store"),
        ]
        await _send(send, 200, headers, page.encode(), method)

    async def show(self, pick: Pick) -> Shown:
        """What the engine decides for ``pick`` and the response a client would get.

        The middleware's own engine answers, so a pick is decided (and logged, like a request
        would be: the log line a support desk finds by ``ref``) exactly as a request is."""
        answer = self.engine.answer(request_for(pick), now=pick.at, account=None)
        return await shown_response(answer, pick)


@dataclass(frozen=True)
class Pick:
    """What the visitor picked in the form (every field checked), and what was wrong with it."""

    ip: str  # the address decided for: the typed one, else the country's sample
    typed: str  # the address box as submitted ("" when a country was picked)
    country: str  # the picked country ("" when none)
    at: datetime  # aware, UTC
    path: str
    client: str  # a key of CLIENTS
    language: str  # the Accept-Language header sent
    problems: tuple[str, ...] = ()
    asked: bool = False  # the form was submitted (any parameter given)

    @property
    def ready(self) -> bool:
        return self.asked and bool(self.ip) and not self.problems


# What the picked client sends as Accept: an API client (curl, an SDK) or a browser.
CLIENTS = {
    "api": ("API client (JSON)", "application/json"),
    "browser": (
        "Browser (HTML)",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    ),
}
PATHS = ("/v1/models", "/web/home", "/healthz")
LANGUAGES = ("en", "zh-CN", "zh-TW", "ru", "uk", "fa", "ar", "es", "ko", "de")
MAX_FIELD = 200
_PRINTABLE = re.compile(r"[\x20-\x7e]*")


def parse_pick(query: str, now: datetime, samples: Mapping[str, str], languages: str = "") -> Pick:
    """The form's fields from a query string. Bad input becomes a problem to show, never an
    exception: the explorer answers any URL."""
    fields: dict[str, str] = {}
    for key, value in parse_qsl(query[:4096], keep_blank_values=True, errors="replace"):
        fields.setdefault(key, value.strip()[:MAX_FIELD])
    problems: list[str] = []
    typed = fields.get("ip", "")
    country = fields.get("country", "").upper()
    ip = ""
    if typed:
        try:
            ip = str(ipaddress.ip_address(typed))
        except ValueError:
            problems.append(f"{typed!r} is not an IPv4 or IPv6 address.")
        country = ""
    elif country:
        if country in samples:
            ip = samples[country]
        else:
            problems.append(f"no sample address for the country code {country!r}.")
            country = ""
    elif "ip" in fields or "country" in fields:  # the form was sent with neither filled in
        problems.append("pick an address or a country.")
    at = now
    if fields.get("at"):
        try:
            at = _parse_time(fields["at"])
        except ValueError:
            problems.append(f"{fields['at']!r} is not a date and time between 1970 and 2100.")
    path = fields.get("path") or PATHS[0]
    if not path.startswith("/") or not _PRINTABLE.fullmatch(path):
        problems.append(f"the path {path!r} must start with / and be printable ASCII.")
        path = PATHS[0]
    client = fields.get("client", "api")
    if client not in CLIENTS:
        problems.append(f"unknown client kind {client!r}.")
        client = "api"
    if not _PRINTABLE.fullmatch(languages):
        languages = ""
    language = fields.get("lang") or languages.strip() or "en"
    if not _PRINTABLE.fullmatch(language):
        problems.append("Accept-Language must be printable ASCII.")
        language = "en"
    return Pick(ip, typed, country, at, path, client, language, tuple(problems), bool(fields))


def _parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)  # the form says the time is UTC
    moment = moment.astimezone(timezone.utc)
    if not 1970 <= moment.year <= 2100:
        raise ValueError(text)
    return moment


def request_for(pick: Pick) -> RequestInfo:
    """The request the picked client sends: straight from its address (no proxy between)."""
    headers = [("accept", CLIENTS[pick.client][1]), ("accept-language", pick.language)]
    return RequestInfo(pick.ip, headers, "GET", pick.path)


def pick_query(pick: Pick, **changes: str) -> str:
    """The explorer's query string for ``pick`` with some fields changed."""
    fields = {
        "ip": pick.typed,
        "country": pick.country,
        "at": pick.at.strftime("%Y-%m-%dT%H:%M"),
        "path": pick.path,
        "client": pick.client,
        "lang": pick.language,
    }
    fields.update(changes)
    return urlencode({k: v for k, v in fields.items() if v})


@dataclass(frozen=True)
class Shown:
    """The response a client would get for a pick, and what decided it."""

    decision: Decision
    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    denied: bool  # geofence answered instead of the app
    added: tuple[str, ...]  # names of headers geofence set on the app's response (a warning)


async def shown_response(answer: Answer, pick: Pick) -> Shown:
    decision = answer.decision
    if answer.response is not None:
        response = answer.response
        return Shown(decision, response.status, response.headers, response.body, True, ())
    status, headers, body = await _app_response(pick, decision)
    added: list[str] = []
    if answer.amends:
        replaced = answer.headers(lambda name: _joined(headers, name))
        added = [name for name, _ in replaced]
        names = {name.lower() for name in added}
        headers = [h for h in headers if h[0].lower() not in names] + replaced
    return Shown(decision, status, tuple(headers), body, False, tuple(added))


async def _app_response(pick: Pick, decision: Decision) -> tuple[int, Headers, bytes]:
    """Run :func:`demo_app` in process, as the middleware would call it for this decision."""
    scope: Scope = {
        "type": "http",
        "method": "GET",
        "path": pick.path,
        "headers": [(k.encode(), v.encode()) for k, v in request_for(pick).headers],
        "client": (pick.ip, 0),
        "state": {"geofence": decision},
    }
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    await demo_app(scope, receive, send)
    start = sent[0]
    headers = [(k.decode("latin-1").title(), v.decode("latin-1")) for k, v in start["headers"]]
    return start["status"], headers, b"".join(m.get("body", b"") for m in sent[1:])


def _joined(headers: Sequence[tuple[str, str]], name: str) -> str | None:
    values = [v for k, v in headers if k.lower() == name.lower()]
    return ", ".join(values) if values else None


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers") or ():
        if key == name:
            return str(value.decode("latin-1"))
    return ""


async def _send(send: Send, status: int, headers: Headers, body: bytes, method: str) -> None:
    if not any(k.lower() == "content-length" for k, _ in headers):
        headers = [*headers, ("Content-Length", str(len(body)))]
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else body})


# -- sample addresses ----------------------------------------------------------------------


@cache
def country_samples() -> Mapping[str, str]:
    """One address per country that the embedded data (iptocc) places there, by code.

    Found by asking the embedded data about x.y.z.1 for every /20 of the public IPv4 space
    (~900,000 lookups in one batch call, about half a second, once per process), the first hit
    per country kept; the curl examples' addresses come first so the two agree. Countries the
    data has no IPv4 block for (a few uninhabited or tiny territories) have no sample.
    """
    from iptocc import country_code

    from geofence._iso3166 import countries

    known = countries()
    samples: dict[str, str] = {}
    seeds = [ip for _, ip, _, _ in EXAMPLES]
    addresses = [
        f"{a}.{b}.{c}.1" for a in range(1, 224) for b in range(256) for c in range(0, 256, 16)
    ]
    for ip, code in zip([*seeds, *addresses], country_code([*seeds, *addresses]), strict=True):
        if code in known and code not in samples:
            samples[code] = ip
    return dict(sorted(samples.items()))


# -- the explorer's page -------------------------------------------------------------------

STYLE = """\
:root{color-scheme:light dark;--bg:#f6f7f9;--fg:#1b1f24;--muted:#59636e;--card:#fff;
--line:#d5d9de;--accent:#0b57d0;--block:#b3261e;--warn:#8a5a00;--allow:#1e7f3c;
--chip:#eef1f4}
@media (prefers-color-scheme:dark){:root{--bg:#14171b;--fg:#e6e8eb;--muted:#9aa4ae;
--card:#1d2127;--line:#343a42;--accent:#8ab4f8;--block:#f2b8b5;--warn:#f0c36d;
--allow:#8fd4a4;--chip:#262b32}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);
font:1rem/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
main{max-width:64rem;margin:0 auto;padding:1.5rem 1rem 3rem}
h1{font-size:1.6rem;line-height:1.2;margin:0 0 .25rem}
h2{font-size:1.15rem;margin:0 0 .75rem}
h3{font-size:1rem;margin:1rem 0 .5rem}
p{margin:0 0 .75rem}
a{color:var(--accent)}
.lead{color:var(--muted)}
.card{background:var(--card);border:1px solid var(--line);border-radius:.75rem;
padding:1rem;margin:0 0 1rem;min-width:0}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(14rem,100%),1fr));
gap:.75rem 1rem}
label{display:block;font-weight:600;font-size:.9rem;margin:0 0 .25rem}
.hint{display:block;font-weight:400;color:var(--muted);font-size:.8rem}
input,select,button{font:inherit;width:100%;padding:.5rem .6rem;border-radius:.5rem;
border:1px solid var(--line);background:var(--bg);color:var(--fg);min-width:0}
button{background:var(--accent);color:var(--bg);border:0;font-weight:600;cursor:pointer}
.actions{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center;margin-top:1rem}
.actions button{width:auto;padding:.55rem 1.5rem}
.try a{display:inline-block;margin:.15rem .4rem .15rem 0}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;vertical-align:top;padding:.3rem .5rem;border-top:1px solid var(--line);
overflow-wrap:anywhere}
th{font-weight:600;white-space:nowrap;width:1%}
code,pre{font:.85rem/1.45 ui-monospace,"DejaVu Sans Mono",monospace}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:var(--chip);padding:.75rem;
border-radius:.5rem;margin:0}
.verdict{font-size:1.25rem;font-weight:700;margin:0 0 .5rem}
.block{color:var(--block)}.warn{color:var(--warn)}.allow{color:var(--allow)}
.problems{border-color:var(--block)}
.status{font-weight:600}
iframe{width:100%;height:34rem;border:1px solid var(--line);border-radius:.5rem}
.cols{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(20rem,100%),1fr));
gap:0 1.5rem}
.now{font-weight:700}
"""


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _csp(extra_styles: Sequence[str]) -> str:
    # No script anywhere; styles only by hash (the page's own, and the shown denial page's,
    # which its srcdoc frame inherits from this document); the form only to this origin.
    styles = " ".join(dict.fromkeys([_hash(STYLE), *(_hash(s) for s in extra_styles)]))
    return (
        f"default-src 'none'; style-src {styles}; form-action 'self'; base-uri 'none'; "
        "frame-ancestors 'none'"
    )


_STYLE_ELEMENT = re.compile(r"<style[^>]*>(.*?)</style>", re.S | re.I)


def explorer_page(
    engine: Engine, pick: Pick, shown: Shown | None, viewer: str, base: str
) -> tuple[str, str]:
    """The explorer's HTML and its Content-Security-Policy."""
    e = html.escape
    framed = ""
    if shown is not None and _is_html(shown):
        framed = shown.body.decode("utf-8", "replace")
    parts = [
        "<!doctype html>\n<html lang=en><head><meta charset=utf-8>",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>geofence demo</title>",
        f"<style>{STYLE}</style></head><body><main>",
        "<h1>geofence demo</h1>",
        '<p class="lead">An example app behind <code>geofence_asgi.GeofenceMiddleware</code> '
        "and the example policy, on the embedded country data. Pick who asks, when and for "
        "what: this page shows what geofence decides and the response it sends.</p>",
        _viewer_note(viewer),
        _form(engine, pick),
    ]
    if pick.problems:
        items = "".join(f"<li>{e(p)}</li>" for p in pick.problems)
        parts.append(f'<section class="card problems"><h2>Check the form</h2><ul>{items}</ul>')
        parts.append("</section>")
    if shown is not None:
        parts.append(_result(pick, shown, framed))
    parts.append(_timeline(engine, pick))
    parts.append(_terminal(base))
    parts.append("</main></body></html>\n")
    return "".join(parts), _csp(_STYLE_ELEMENT.findall(framed))


def _is_html(shown: Shown) -> bool:
    kind = _joined(shown.headers, "content-type") or ""
    return kind.startswith("text/html")


def _viewer_note(viewer: str) -> str:
    e = html.escape
    try:
        loopback = ipaddress.ip_address(viewer).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return (
            f'<p class="lead">You are looking from <code>{e(viewer)}</code>, on loopback: '
            "the policy trusts loopback as a proxy, and a browser sends no "
            "<code>X-Forwarded-For</code>, so geofence could not say where <em>you</em> are. "
            "This page decides for the address you pick instead, as if that client asked the "
            "app directly. It is the demo's own page and is never blocked.</p>"
        )
    return (
        f'<p class="lead">You are looking from <code>{e(viewer or "an unknown address")}'
        "</code>. This page decides for the address you pick, not for you, and is never "
        "blocked.</p>"
    )


def _form(engine: Engine, pick: Pick) -> str:
    e = html.escape
    samples = country_samples()
    options = _country_options(engine, pick, samples)
    clients = "".join(
        f'<option value="{k}"{" selected" if k == pick.client else ""}>{e(label)}</option>'
        for k, (label, _) in CLIENTS.items()
    )
    paths = "".join(f'<option value="{e(p)}">' for p in PATHS)
    languages = "".join(f'<option value="{e(lang)}">' for lang in LANGUAGES)
    at = pick.at.strftime("%Y-%m-%dT%H:%M")
    examples = [
        ("blocked page (China, browser)", "CN", "/web/home", "browser", "en"),
        ("blocked JSON (Russia, API)", "RU", "/v1/models", "api", "en"),
        ("warned (Belarus, grace period)", "BY", "/v1/models", "api", "en"),
        ("allowed (United States)", "US", "/v1/models", "api", "en"),
        ("exempt (/healthz)", "CN", "/healthz", "api", "en"),
        ("blocked page in Persian", "IR", "/web/home", "browser", "fa"),
        ("blocked page in Chinese", "CN", "/web/home", "browser", "zh-CN"),
    ]
    tries = " ".join(
        f'<a href="/?{e(pick_query(pick, ip="", country=c, path=p, client=k, lang=lang))}">'
        f"{e(label)}</a>"
        for label, c, p, k, lang in examples
    )
    return (
        '<form class="card" method="get" action="/"><h2>Who asks, when, for what</h2>'
        '<div class="grid">'
        '<div><label for="ip">Address <span class="hint">IPv4 or IPv6; wins over the country'
        "</span></label>"
        f'<input id="ip" name="ip" value="{e(pick.typed)}" placeholder="e.g. 175.16.199.1" '
        'autocomplete="off" spellcheck="false" inputmode="text"></div>'
        '<div><label for="country">or a country <span class="hint">a sample address the '
        "embedded data places there</span></label>"
        f'<select id="country" name="country">{options}</select></div>'
        '<div><label for="at">When <span class="hint">UTC; default: now</span></label>'
        f'<input id="at" name="at" type="datetime-local" value="{e(at)}"></div>'
        '<div><label for="path">Path <span class="hint">/v1/* API, /web/* site, /healthz'
        "</span></label>"
        f'<input id="path" name="path" value="{e(pick.path)}" list="paths" spellcheck="false">'
        f'<datalist id="paths">{paths}</datalist></div>'
        f'<div><label for="client">Client <span class="hint">its Accept header</span></label>'
        f'<select id="client" name="client">{clients}</select></div>'
        '<div><label for="lang">Accept-Language <span class="hint">the block page\'s '
        "language</span></label>"
        f'<input id="lang" name="lang" value="{e(pick.language)}" list="langs" '
        f'spellcheck="false"><datalist id="langs">{languages}</datalist></div>'
        "</div>"
        '<div class="actions"><button type="submit">Decide</button>'
        '<a href="/">start over</a></div>'
        f'<p class="try">Try: {tries}</p>'
        "</form>"
    )


def _country_options(engine: Engine, pick: Pick, samples: Mapping[str, str]) -> str:
    """The countries, grouped by what the policy does to them at the picked time and path."""
    from geofence._iso3166 import country_names

    names = country_names()
    groups: dict[str, list[str]] = {"block": [], "warn": [], "allow": []}
    for code, ip in samples.items():
        info = RequestInfo(ip, (), "GET", pick.path)
        groups.setdefault(engine.decide(info, now=pick.at).action, []).append(code)
    labels = {
        "block": "Blocked here and now",
        "warn": "Warned (grace period)",
        "allow": "Allowed",
    }
    e = html.escape
    out = ['<option value="">(pick a country)</option>']
    for kind, codes in groups.items():
        if not codes:
            continue
        codes.sort(key=lambda c: names.get(c, c))
        items = "".join(
            f'<option value="{c}"{" selected" if c == pick.country else ""}>'
            f"{e(names.get(c, c))} ({c}) {samples[c]}</option>"
            for c in codes
        )
        out.append(f'<optgroup label="{e(labels.get(kind, kind))}">{items}</optgroup>')
    return "".join(out)


def _result(pick: Pick, shown: Shown, framed: str) -> str:
    e = html.escape
    decision = shown.decision
    action = decision.action
    fields = decision_fields(decision)
    ref = getattr(decision, "ref", None)
    if ref is not None:
        fields["ref"] = ref
    rows = "".join(
        f'<tr data-field="{e(k)}"><th>{e(k)}</th><td>{e(_text(v))}</td></tr>'
        for k, v in fields.items()
    )
    who = f"{pick.ip}" + (f" (a sample address in {pick.country})" if pick.country else "")
    verdict = {
        "block": "Blocked" if decision.enforced else "Would be blocked (report mode)",
        "warn": "Allowed, with a warning",
        "allow": "Allowed",
    }.get(action, action)
    header_rows = "".join(
        f"<tr><th>{e(k)}</th><td>{e(v)}"
        + (" <em>(set by geofence)</em>" if k in shown.added else "")
        + "</td></tr>"
        for k, v in shown.headers
    )
    try:
        phrase = HTTPStatus(shown.status).phrase
    except ValueError:
        phrase = ""
    by = (
        "geofence answered; the app was not called"
        if shown.denied
        else "the app answered" + (", geofence added headers" if shown.added else ", untouched")
    )
    preview = f"/preview?{pick_query(pick)}"
    if framed:
        title = "The page a blocked user gets" if shown.denied else "The page the app sends"
        body = (
            f"<h3>{title}</h3>"
            f'<iframe sandbox title="{e(title)}" srcdoc="{e(framed, quote=True)}"></iframe>'
        )
    else:
        text = shown.body.decode("utf-8", "replace")
        body = f'<h3>Body</h3><pre id="body">{e(text)}</pre>'
    return (
        '<section class="card" id="result">'
        f'<p class="verdict {e(action)}" id="verdict">{e(verdict)}</p>'
        f"<p>GET <code>{e(pick.path)}</code> from <code>{e(who)}</code> at "
        f"<code>{e(pick.at.isoformat())}</code>, "
        f"Accept-Language <code>{e(pick.language)}</code>.</p>"
        # Side by side when there is room: what was decided and sent, and what it looks like.
        '<div class="cols"><div><h3>Decision</h3>'
        f'<table id="decision">{rows}</table>'
        f'<h3>Response <span class="hint">{e(by)}</span></h3>'
        f'<p class="status" id="status">{shown.status} {e(phrase)}</p>'
        f'<table id="headers">{header_rows}</table>'
        f'<p><a href="{e(preview)}" id="preview">Open this exact response</a></p></div>'
        f"<div>{body}</div></div></section>"
    )


def _text(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _timeline(engine: Engine, pick: Pick) -> str:
    """The policy's rules and their dates, with links that move the picked time."""
    e = html.escape
    rows = []
    for rule in engine.policy.rules:
        warn_from, enforce_from = rule.warn_from, rule.enforce_from
        if enforce_from is not None and pick.at >= enforce_from:
            now = "enforced"
        elif warn_from is not None and pick.at >= warn_from:
            now = "grace period: warns"
        elif warn_from is None and enforce_from is None:
            now = "always"
        else:
            now = "not yet"
        moments = []
        if warn_from is not None:
            moments.append(("the day before:", warn_from - timedelta(days=1)))
            moments.append(("grace period from", warn_from))
        if enforce_from is not None:
            moments.append(("enforced from", enforce_from))
        links = "<br>".join(
            f'<a href="/?{e(pick_query(pick, at=m.strftime("%Y-%m-%dT%H:%M")))}">'
            f"{e(label)} {m.date().isoformat()}</a>"
            for label, m in moments
        )
        regions = ", ".join(rule.regions) or "any"
        paths = ", ".join(rule.paths) or "any"
        rows.append(
            f"<tr><th>{e(rule.name)}</th><td>{e(rule.action)} {e(regions)} on {e(paths)}</td>"
            f'<td class="now">{e(now)}</td><td>{links or "-"}</td></tr>'
        )
    exempt = ", ".join(engine.policy.exempt_paths) or "none"
    return (
        '<section class="card" id="timeline"><h2>The example policy over time</h2>'
        f"<p>At <code>{e(pick.at.isoformat())}</code> (click a date to move there). "
        f"Exempt paths: <code>{e(exempt)}</code>.</p>"
        f"<table><tr><th>rule</th><th>what</th><th>at that time</th><th>dates</th></tr>"
        f"{''.join(rows)}</table></section>"
    )


def _terminal(base: str) -> str:
    examples = "".join(f"<li><pre>{html.escape(line)}</pre></li>" for line in curl_lines(base))
    return (
        '<section class="card" id="curl"><h2>From a terminal</h2>'
        "<p>The app itself (<code>/v1/models</code>, <code>/web/home</code>, "
        "<code>/healthz</code>) is behind the middleware. The policy trusts "
        "<code>X-Forwarded-For</code> from loopback only, so from this machine you can "
        f"pretend to be anywhere:</p><ul>{examples}</ul></section>"
    )

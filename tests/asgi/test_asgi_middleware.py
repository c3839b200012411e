"""ASGI-specific behaviour of geofence_asgi.GeofenceMiddleware (the shared table is elsewhere).

Most tests drive the middleware with hand-written ASGI messages, so that they can assert exactly
what is sent and whether ``receive()`` or the app is ever called.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import pytest
from asgi_apps import Message, Receive, Scope, Seen, Send, raw_app
from scenarios.table import BASE, CN, IR, RU, US, WARN_HEADERS

import geofence
from geofence import ConfigError
from geofence.hotpath._newclient import NATIVE
from geofence.http import Answer
from geofence_asgi import STATE_KEY, GeofenceMiddleware
from geofence_asgi.middleware import encode_headers, request_facts, request_info, routed_path

SUNSET = WARN_HEADERS["sunset"]
UK_RULE = {"rules": [{"action": "block", "regions": ["UK"]}]}
UK_FREE = {"geoip": BASE["geoip"]}  # another policy that allows everyone
MIXED_HEADERS = [(b"host", b"api.example.com"), (b"x-name", b"caf\xe9")]


class CountingEngine(geofence.Engine):
    """An engine that counts its decisions (the answers it works out, cache probes aside)."""

    calls = 0

    def answer(self, request: geofence.RequestInfo, now: datetime | None = None) -> Answer:
        self.calls += 1
        return super().answer(request, now)


ENGINE = CountingEngine.from_config(BASE)
# Starlette >= 1.x warns that its TestClient will move from httpx to httpx2.
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")


class Peer:
    """The server side of one ASGI call: queued incoming messages, recorded outgoing ones."""

    def __init__(self, incoming: Sequence[Message] = ()) -> None:
        self.incoming = list(incoming)
        self.sent: list[Message] = []
        self.receive_calls = 0

    async def receive(self) -> Message:
        self.receive_calls += 1
        if self.incoming:
            return self.incoming.pop(0)
        # A real server would wait here; a test fails fast instead of hanging.
        raise AssertionError("receive() called with nothing left to receive")

    async def send(self, message: Message) -> None:
        self.sent.append(message)


def http_scope(peer: str | None = CN, path: str = "/v1/models", **extra: Any) -> Scope:
    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "client": (peer, 50123) if peer else None,
        "server": ("127.0.0.1", 8000),
        "state": {},  # as uvicorn and hypercorn send it (a copy of the lifespan state)
    }
    scope.update(extra)
    return scope


def ws_scope(peer: str = CN, path: str = "/v1/stream", **extra: Any) -> Scope:
    scope = http_scope(peer, path, type="websocket", scheme="ws", subprotocols=[])
    del scope["method"]
    scope.update(extra)
    return scope


def run(app: Any, scope: Scope, peer: Peer) -> None:
    asyncio.run(app(scope, peer.receive, peer.send))


def start_headers(message: Message) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in message["headers"]}


# -- construction -------------------------------------------------------------------------


def test_bad_config_raises_config_error_at_construction() -> None:
    seen = Seen()
    with pytest.raises(ConfigError, match=r"rules\[0\]\.regions\[0\].*'GB'"):
        GeofenceMiddleware(
            raw_app(seen), config={"rules": [{"action": "block", "regions": ["UK"]}]}
        )
    assert not seen.app_called


def test_missing_config_file_raises_config_error(tmp_path: Any) -> None:
    with pytest.raises(ConfigError):
        GeofenceMiddleware(raw_app(Seen()), config=str(tmp_path / "missing.toml"))


def test_config_file_path_is_accepted(tmp_path: Any) -> None:
    path = tmp_path / "geofence.json"
    path.write_text(json.dumps(BASE))
    peer = Peer()
    run(GeofenceMiddleware(raw_app(Seen()), config=str(path)), http_scope(CN), peer)
    assert peer.sent[0]["status"] == 451


@pytest.mark.parametrize("kwargs", [{}, {"config": BASE, "engine": ENGINE}])
def test_exactly_one_of_config_and_engine(kwargs: dict[str, Any]) -> None:
    with pytest.raises(TypeError):
        GeofenceMiddleware(raw_app(Seen()), **kwargs)


def test_starlette_bad_config_stops_startup() -> None:
    # Starlette builds its middleware stack on the first event, the lifespan startup, so a bad
    # config stops the server from starting instead of failing its first request.
    pytest.importorskip("starlette")
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.testclient import TestClient

    bad = {"mode": "enforced"}
    app = Starlette(middleware=[Middleware(GeofenceMiddleware, config=bad)])
    with pytest.raises(ConfigError, match="mode"), TestClient(app):
        pass


UK_MESSAGE = "rules[0].regions[0]: 'UK' is not an ISO 3166-1 code (did you mean 'GB'?)"


def lazily_built(inner: Any, config: Any) -> Any:
    """An app that builds the middleware inside its first ASGI call, as Starlette does."""
    built: list[Any] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if not built:
            built.append(GeofenceMiddleware(inner, config=config))
        await built[0](scope, receive, send)

    return app


def test_bad_config_in_a_coroutine_that_is_no_asgi_call_still_raises() -> None:
    async def main() -> None:
        GeofenceMiddleware(raw_app(Seen()), config=UK_RULE)

    with pytest.raises(ConfigError, match="'GB'"):
        asyncio.run(main())


def test_bad_config_built_inside_an_asgi_call_fails_the_lifespan_startup() -> None:
    seen = Seen()
    app = lazily_built(raw_app(seen), UK_RULE)
    peer = Peer([{"type": "lifespan.startup"}])
    scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    with pytest.raises(ConfigError, match="'GB'"):
        run(app, scope, peer)
    assert peer.sent == [{"type": "lifespan.startup.failed", "message": f"geofence: {UK_MESSAGE}"}]
    assert not seen.app_called


@pytest.mark.parametrize(
    ("scope", "sent"),
    [
        (http_scope(US, method="POST"), ["http.response.start", "http.response.body"]),
        (
            ws_scope(US, extensions={"websocket.http.response": {}}),
            ["websocket.http.response.start", "websocket.http.response.body"],
        ),
        (ws_scope(US), ["websocket.close"]),
    ],
)
def test_bad_config_built_inside_an_asgi_call_refuses_every_request(
    scope: Scope, sent: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    # A server run without lifespan: the app is never called, the body never read.
    seen = Seen()
    peer = Peer([{"type": "http.request", "body": b"secret", "more_body": False}])
    run(lazily_built(raw_app(seen), UK_RULE), scope, peer)
    assert [m["type"] for m in peer.sent] == sent
    if sent[0] == "websocket.close":
        assert peer.sent[0]["code"] == 1011
    else:
        assert peer.sent[0]["status"] == 500
        assert peer.sent[1]["body"] == b"Internal Server Error"
    assert not seen.app_called and peer.receive_calls == 0
    assert UK_MESSAGE in caplog.text


def test_bad_config_built_inside_an_asgi_call_passes_other_scope_types() -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    scope: Scope = {"type": "custom.protocol"}
    run(lazily_built(app, UK_RULE), scope, Peer())
    assert seen == [scope]


def test_starlette_without_lifespan_refuses_requests_with_a_bad_config() -> None:
    # No lifespan (TestClient outside a with block): the stack is built on the first request.
    pytest.importorskip("starlette")
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Route
    from starlette.testclient import TestClient

    seen: list[Any] = []

    async def view(request: Any) -> Any:
        seen.append(request)

    app = Starlette(
        routes=[Route("/{p:path}", view)],
        middleware=[Middleware(GeofenceMiddleware, config=UK_RULE)],
    )
    response = TestClient(app, client=(US, 1)).get("/v1/models")
    assert (response.status_code, response.text) == (500, "Internal Server Error")
    assert seen == []


def test_mounted_sub_app_with_a_bad_config_refuses_its_requests() -> None:
    # Starlette sends no lifespan to a mounted app: its requests are refused, the rest served.
    pytest.importorskip("starlette")
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import Mount
    from starlette.testclient import TestClient

    seen = Seen()
    api = Starlette(
        routes=[Mount("/", app=raw_app(seen))],
        middleware=[Middleware(GeofenceMiddleware, config=UK_RULE)],
    )
    app = Starlette(routes=[Mount("/api", app=api), Mount("/", app=raw_app(seen))])
    with TestClient(app, client=(US, 1)) as client:
        assert client.get("/api/v1/models").status_code == 500
        assert client.get("/v1/models").status_code == 200
    assert len(seen.decisions) == 1


# -- request facts ------------------------------------------------------------------------


def test_request_info_translates_the_scope() -> None:
    scope = http_scope(CN, "/api/v1/models", root_path="/api", method="POST", headers=MIXED_HEADERS)
    info = request_info(scope)
    assert (info.peer, info.method, info.path, info.host) == (
        CN,
        "POST",
        "/v1/models",
        "api.example.com",
    )
    assert list(info.headers) == [("host", "api.example.com"), ("x-name", "café")]
    assert len(info.headers) == 2 and info.headers[1] == ("x-name", "café")


def test_request_info_without_client_or_headers() -> None:
    scope = http_scope(None, headers=[])
    del scope["client"]
    info = request_info(scope)
    assert (info.peer, list(info.headers), info.host) == (None, [], "")
    assert request_info(http_scope(None)).peer is None


def test_websocket_is_decided_as_get() -> None:
    assert request_info(ws_scope(CN)).method == "GET"


def test_request_facts_are_request_info_without_host() -> None:
    # The middleware builds request_facts (the engine never reads Host); request_info adds it.
    for scope in (
        http_scope(CN, "/api/v1/models", root_path="/api", method="POST", headers=MIXED_HEADERS),
        ws_scope(US, headers=MIXED_HEADERS),
        http_scope(None, headers=[]),
    ):
        facts, info = request_facts(scope, scope["type"]), request_info(scope)
        assert facts.host == ""
        assert (facts.peer, list(facts.headers), facts.method, facts.path) == (
            info.peer,
            list(info.headers),
            info.method,
            info.path,
        )


@pytest.mark.parametrize("client", [(b"175.16.199.1", 1), (None, 1), (175, 1), ("", 1)])
def test_a_peer_that_is_not_text_is_no_peer(client: Any) -> None:
    assert request_info(http_scope(client=client)).peer in (None, "")
    seen = Seen()
    peer = Peer()
    run(GeofenceMiddleware(raw_app(seen), engine=ENGINE), http_scope(client=client), peer)
    # Decided without a client address, never crashed (BASE lets unresolved clients through).
    assert peer.sent[0]["status"] == 200
    assert seen.decisions[0].reason == "unresolved_client"


@pytest.mark.parametrize(
    ("path", "root_path", "routed"),
    [
        ("/v1/models", "", "/v1/models"),
        ("/api/v1/models", "/api", "/v1/models"),  # uvicorn >= 0.26, Starlette Mount
        ("/v1/models", "/api", "/v1/models"),  # older servers: prefix already removed
        ("/api", "/api", "/"),
        ("/apiv1/models", "/api", "/apiv1/models"),  # not at a segment boundary
        ("/api/", "/api", "/"),
    ],
)
def test_routed_path(path: str, root_path: str, routed: str) -> None:
    assert routed_path({"path": path, "root_path": root_path}) == routed


# -- pass-through -------------------------------------------------------------------------


def test_lifespan_passes_through_untouched() -> None:
    calls: list[tuple[Scope, Receive, Send]] = []
    events: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append((scope, receive, send))
        while True:
            message = await receive()
            events.append(message["type"])
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return

    peer = Peer([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    asyncio.run(GeofenceMiddleware(app, engine=ENGINE)(scope, peer.receive, peer.send))
    assert events == ["lifespan.startup", "lifespan.shutdown"]
    assert [m["type"] for m in peer.sent] == [
        "lifespan.startup.complete",
        "lifespan.shutdown.complete",
    ]
    # The very same scope, receive and send: nothing wrapped, nothing added.
    assert calls[0][0] is scope and scope == {
        "type": "lifespan",
        "asgi": {"version": "3.0"},
        "state": {},
    }
    assert calls[0][1] == peer.receive and calls[0][2] == peer.send


def test_starlette_lifespan_runs_through_the_middleware() -> None:
    pytest.importorskip("starlette")
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.testclient import TestClient

    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        events.append("startup")
        yield
        events.append("shutdown")

    app = Starlette(lifespan=lifespan, middleware=[Middleware(GeofenceMiddleware, engine=ENGINE)])
    with TestClient(app):
        assert events == ["startup"]
    assert events == ["startup", "shutdown"]


def test_unknown_scope_type_passes_through() -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    scope: Scope = {"type": "custom.protocol", "client": (CN, 1)}
    run(GeofenceMiddleware(app, engine=ENGINE), scope, Peer())
    assert seen == [{"type": "custom.protocol", "client": (CN, 1)}]


def test_installed_twice_decides_once() -> None:
    # Two middlewares built from the same policy (e.g. on the app and on a mounted sub-app).
    outer = CountingEngine.from_config(BASE)
    inner = CountingEngine.from_config(BASE)
    seen = Seen()
    app = GeofenceMiddleware(GeofenceMiddleware(raw_app(seen), engine=inner), engine=outer)
    peer = Peer()
    run(app, http_scope(US), peer)
    assert peer.sent[0]["status"] == 200
    assert (outer.calls, inner.calls) == (1, 0)
    assert seen.decisions[0].reason == "default" and seen.decisions[0].country == "US"


def test_nested_middleware_with_another_policy_applies_both() -> None:
    allow_all = CountingEngine.from_config({"geoip": BASE["geoip"]})
    block_cn = CountingEngine.from_config(BASE)
    seen = Seen()
    app = GeofenceMiddleware(GeofenceMiddleware(raw_app(seen), engine=block_cn), engine=allow_all)
    peer = Peer()
    run(app, http_scope(CN), peer)
    assert peer.sent[0]["status"] == 451
    assert (allow_all.calls, block_cn.calls) == (1, 1)
    assert seen.decisions == []


def test_policies_alternating_down_the_stack_each_decide() -> None:
    # The mark is the policy of the nearest middleware that decided, so A inside B inside A
    # decides three times.
    outer, middle, inner = (CountingEngine.from_config(c) for c in (BASE, UK_FREE, BASE))
    seen = Seen()
    app = GeofenceMiddleware(
        GeofenceMiddleware(GeofenceMiddleware(raw_app(seen), engine=inner), engine=middle),
        engine=outer,
    )
    run(app, http_scope(US), Peer())
    assert (outer.calls, middle.calls, inner.calls) == (1, 1, 1)
    assert seen.decisions[0].reason == "default"


class MarkedEngine(CountingEngine):
    """A counting engine that records what it is asked about marks."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.asked: list[tuple[object, bool]] = []

    def decided(self, mark: object) -> bool:
        verdict = super().decided(mark)
        self.asked.append((mark, verdict))
        return verdict


def test_installed_twice_asks_the_engine_what_the_mark_means() -> None:
    outer, inner = MarkedEngine.from_config(BASE), MarkedEngine.from_config(BASE)
    other = MarkedEngine.from_config(UK_FREE)
    for engine, decided in ((inner, True), (other, False)):
        app = GeofenceMiddleware(GeofenceMiddleware(raw_app(Seen()), engine=engine), engine=outer)
        run(app, http_scope(US), Peer())
        assert engine.asked == [(outer.mark, decided)]
    assert outer.asked == []  # the outermost finds no mark


def test_outer_block_is_final_for_nested_middleware() -> None:
    block_cn = CountingEngine.from_config(BASE)
    allow_all = CountingEngine.from_config(UK_FREE)
    seen = Seen()
    app = GeofenceMiddleware(GeofenceMiddleware(raw_app(seen), engine=allow_all), engine=block_cn)
    peer = Peer()
    run(app, http_scope(CN), peer)
    assert peer.sent[0]["status"] == 451
    assert (block_cn.calls, allow_all.calls) == (1, 0)
    assert seen.decisions == []


@pytest.mark.parametrize(("inner_config", "inner_calls"), [(BASE, 0), (UK_FREE, 1)])
def test_starlette_app_and_mounted_sub_app(inner_config: Any, inner_calls: int) -> None:
    # On the app with add_middleware and again on a mounted sub-app: the same policy decides
    # once, another one decides again.
    pytest.importorskip("starlette")
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.testclient import TestClient

    outer, inner = CountingEngine.from_config(BASE), CountingEngine.from_config(inner_config)
    seen = Seen()
    api = GeofenceMiddleware(raw_app(seen), engine=inner)
    app = Starlette(routes=[Mount("/api", app=api)])
    app.add_middleware(GeofenceMiddleware, engine=outer)
    with TestClient(app, client=(US, 1)) as client:
        assert client.get("/api/v1/models").status_code == 200
    assert (outer.calls, inner.calls) == (1, inner_calls)
    assert seen.decisions[0].country == "US"


def test_allowed_request_reaches_the_app_untouched() -> None:
    # The allow path wraps nothing: the app gets the server's own scope, receive and send.
    calls: list[tuple[Scope, Receive, Send]] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        calls.append((scope, receive, send))

    scope = http_scope(US)
    peer = Peer()
    run(GeofenceMiddleware(app, engine=ENGINE), scope, peer)
    assert calls[0][0] is scope and scope["state"][STATE_KEY].action == "allow"
    assert calls[0][1] == peer.receive and calls[0][2] == peer.send


class WatchedHeaders(list[tuple[bytes, bytes]]):
    """Raw headers that count how often they are read."""

    reads = 0

    def __iter__(self) -> Any:
        self.reads += 1
        return super().__iter__()


def test_headers_are_not_decoded_when_no_one_reads_them() -> None:
    # No trusted proxy: the client is the peer, so an allowed request needs no header.
    headers = WatchedHeaders([(b"host", b"x"), (b"x-forwarded-for", b"175.16.199.1")])
    seen = Seen()
    run(GeofenceMiddleware(raw_app(seen), engine=ENGINE), http_scope(US, headers=headers), Peer())
    assert seen.decisions[0].country == "US" and headers.reads == 0


def test_shared_state_dict_does_not_skip_later_requests() -> None:
    # The spec wants a copy of the lifespan state per request; a server that passed the same
    # dict every time must not let the first request's decision cover the next ones.
    state: dict[str, Any] = {}
    middleware = GeofenceMiddleware(raw_app(Seen()), engine=ENGINE)
    statuses = []
    for client in (US, CN):
        peer = Peer()
        run(middleware, http_scope(client, state=state), peer)
        statuses.append(peer.sent[0]["status"])
    assert statuses == [200, 451]


def test_mode_off_decides_nothing_per_request() -> None:
    engine = CountingEngine.from_config({**BASE, "mode": "off"})
    middleware = GeofenceMiddleware(raw_app(seen := Seen()), engine=engine)
    before = engine.calls
    for _ in range(3):
        peer = Peer()
        run(middleware, http_scope(CN), peer)
        assert peer.sent[0]["status"] == 200
    assert engine.calls == before
    assert [d.reason for d in seen.decisions] == ["off"] * 3


class ProbedEngine(CountingEngine):
    """A CountingEngine that also counts its cache probes (quick() is one too: the gate asks
    it instead of cached() once it knows the app has no exempt route)."""

    probes = 0

    def cached(
        self, peer: str | None, method: str, path: str, account: Any = None
    ) -> Answer | None:
        self.probes += 1
        return super().cached(peer, method, path, account)

    def quick(self, peer: str | None, method: str, path: str, account: Any = None) -> Answer | None:
        self.probes += 1
        return super().quick(peer, method, path, account)


@pytest.mark.parametrize(
    "missing", [(), ("state",), ("root_path",), ("state", "root_path")], ids=str
)
def test_a_repeated_request_asks_the_cache_once_whatever_the_scope_holds(
    missing: tuple[str, ...],
) -> None:
    # A scope with every key uvicorn sends is answered on the hot path; one without some of
    # them (other servers) takes the long way. Either way one probe per request, and only
    # the first request is worked out.
    engine = ProbedEngine.from_config(BASE)
    middleware = GeofenceMiddleware(raw_app(seen := Seen()), engine=engine)
    for _ in range(3):
        scope = http_scope(US)
        for key in missing:
            del scope[key]
        peer = Peer()
        run(middleware, scope, peer)
        assert peer.sent[0]["status"] == 200
        assert scope["state"][STATE_KEY].country == "US"
    assert (engine.calls, engine.probes) == (1, 3)
    assert [d.country for d in seen.decisions] == ["US"] * 3


def test_a_peer_that_cannot_be_a_key_is_no_peer_on_every_request() -> None:
    # The hot path probes the cache with the scope's client as it is; one that cannot key a
    # dict takes the long way, where it is no peer.
    middleware = GeofenceMiddleware(raw_app(seen := Seen()), engine=ENGINE)
    for _ in range(2):
        peer = Peer()
        run(middleware, http_scope(US, client=(["10.0.0.1"], 1)), peer)
        assert peer.sent[0]["status"] == 200
    assert [d.reason for d in seen.decisions] == ["unresolved_client"] * 2


def test_existing_scope_state_is_kept() -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope)

    state = {"db": "pool"}
    run(GeofenceMiddleware(app, engine=ENGINE), http_scope(US, state=state), Peer())
    assert seen[0]["state"] is state
    assert state["db"] == "pool" and state[STATE_KEY].country == "US"


# -- http answers -------------------------------------------------------------------------


def test_blocked_post_never_calls_receive_or_app() -> None:
    seen = Seen()
    peer = Peer([{"type": "http.request", "body": b"secret", "more_body": False}])
    run(GeofenceMiddleware(raw_app(seen), engine=ENGINE), http_scope(CN, method="POST"), peer)
    assert peer.receive_calls == 0 and not seen.app_called
    assert [m["type"] for m in peer.sent] == ["http.response.start", "http.response.body"]
    assert peer.sent[0]["status"] == 451
    headers = start_headers(peer.sent[0])
    assert headers["cache-control"] == "private, no-store"
    assert int(headers["content-length"]) == len(peer.sent[1]["body"])
    assert (
        json.loads(peer.sent[1]["body"])["error"]["code"] == "unsupported_country_region_territory"
    )


@pytest.mark.parametrize("client", [US, IR])
def test_streaming_response_is_not_buffered(client: str) -> None:
    """The first chunk reaches the server while the app is still producing the second."""
    first_chunk_out = asyncio.Event()
    sent: list[Message] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-app", b"1")]})
        await send({"type": "http.response.body", "body": b"one", "more_body": True})
        # Blocks forever (and times out) if the middleware held the first chunk back.
        await asyncio.wait_for(first_chunk_out.wait(), timeout=5)
        await send({"type": "http.response.body", "body": b"two", "more_body": False})

    async def send(message: Message) -> None:
        sent.append(message)
        if message.get("body") == b"one":
            first_chunk_out.set()

    async def main() -> None:
        await GeofenceMiddleware(app, engine=ENGINE)(http_scope(client), Peer().receive, send)

    asyncio.run(main())
    assert [m.get("body") for m in sent] == [None, b"one", b"two"]
    headers = start_headers(sent[0])
    assert headers["x-app"] == "1"
    assert ("sunset" in headers) == (client == IR)


def test_warn_headers_replace_and_merge_app_headers() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        headers = [
            (b"Cache-Control", b"max-age=60"),
            (b"link", b'</a>; rel="help"'),
            (b"link", b'</b>; rel="next"'),
            (b"set-cookie", b"a=1"),
            (b"set-cookie", b"b=2"),
        ]
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        await send({"type": "http.response.body", "body": b"made"})

    peer = Peer()
    run(GeofenceMiddleware(app, engine=ENGINE), http_scope(IR), peer)
    raw = peer.sent[0]["headers"]
    names = [k for k, _ in raw]
    assert names.count(b"set-cookie") == 2  # untouched headers keep their repeats and order
    assert names.count(b"link") == 1 and names.count(b"cache-control") == 1
    assert b"Cache-Control" not in names
    headers = start_headers(peer.sent[0])
    assert headers["cache-control"] == "private, max-age=60"
    assert headers["link"].startswith('</a>; rel="help", </b>; rel="next"')
    assert 'rel="sunset"' in headers["link"]
    assert headers["sunset"] == SUNSET
    assert peer.sent[0]["status"] == 201 and peer.sent[1]["body"] == b"made"


class HostileAnswer:
    """An answer whose warn headers include values that would split the response."""

    def __init__(self, answer: Answer) -> None:
        self.decision, self.response, self.amends = answer.decision, answer.response, True
        self._answer = answer

    def headers(self, get: Any) -> list[tuple[str, str]]:
        return [
            *self._answer.headers(get),
            ("X-Split", "a\r\nSet-Cookie: stolen=1"),
            ("X-Nul", "a\x00b"),
            ("X-Snow", "\u2603"),
            ("X-Fine", "caf\xe9"),
        ]


class HostileEngine(geofence.Engine):
    """An engine whose answers carry hostile warn headers."""

    def answer(self, request: geofence.RequestInfo, now: datetime | None = None) -> Any:
        return HostileAnswer(super().answer(request, now))


def test_header_values_are_validated_before_sending(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="geofence")
    engine = HostileEngine.from_config(BASE)
    peer = Peer()
    run(GeofenceMiddleware(raw_app(Seen()), engine=engine), http_scope(IR), peer)
    raw = dict(peer.sent[0]["headers"])
    assert b"x-split" not in raw and b"set-cookie" not in raw
    assert b"x-nul" not in raw and b"x-snow" not in raw
    assert raw[b"x-fine"] == b"caf\xe9"
    assert b"sunset" in raw  # the valid headers still go out
    logged = caplog.text
    assert "'X-Split'" in logged and "'X-Nul'" in logged and "'X-Snow'" in logged
    assert "stolen" not in logged


def test_encode_headers() -> None:
    assert encode_headers([("Content-Type", "text/html"), ("Bad\n", "x"), ("X", "\r")]) == [
        (b"content-type", b"text/html")
    ]


# -- websockets ---------------------------------------------------------------------------


def test_blocked_websocket_is_closed_before_accept() -> None:
    seen = Seen()
    peer = Peer([{"type": "websocket.connect"}])
    run(GeofenceMiddleware(raw_app(seen), engine=ENGINE), ws_scope(CN), peer)
    assert peer.sent == [{"type": "websocket.close", "code": 1008}]
    assert not seen.app_called and peer.receive_calls == 0


def test_blocked_websocket_gets_denial_response_with_extension() -> None:
    seen = Seen()
    peer = Peer([{"type": "websocket.connect"}])
    scope = ws_scope(RU, extensions={"websocket.http.response": {}})
    run(GeofenceMiddleware(raw_app(seen), engine=ENGINE), scope, peer)
    assert [m["type"] for m in peer.sent] == [
        "websocket.http.response.start",
        "websocket.http.response.body",
    ]
    assert peer.sent[0]["status"] == 403  # the ru-forbidden rule's status
    assert start_headers(peer.sent[0])["content-type"].startswith("application/json")
    assert json.loads(peer.sent[1]["body"])["error"]["type"] == "request_forbidden"
    assert not seen.app_called and peer.receive_calls == 0


def _starlette_ws_app(seen: list[Any]) -> Any:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    async def echo(websocket: WebSocket) -> None:
        seen.append(websocket.state.geofence)
        await websocket.accept(headers=[(b"x-app", b"1")])
        await websocket.send_text(await websocket.receive_text())
        await websocket.close()

    return Starlette(
        routes=[WebSocketRoute("/{p:path}", echo)],
        middleware=[Middleware(GeofenceMiddleware, engine=ENGINE)],
    )


@pytest.mark.parametrize(("client", "warned"), [(US, False), (IR, True)])
def test_starlette_websocket_allowed_or_warned(client: str, warned: bool) -> None:
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    seen: list[Any] = []
    with (
        TestClient(_starlette_ws_app(seen), client=(client, 1)) as http,
        http.websocket_connect("/v1/stream") as ws,
    ):
        ws.send_text("ping")
        assert ws.receive_text() == "ping"
        headers = dict(ws.extra_headers or [])
    assert seen[0].action == ("warn" if warned else "allow")
    assert headers[b"x-app"] == b"1"
    if warned:
        assert headers[b"sunset"] == SUNSET.encode()
        assert headers[b"deprecation"] == b"@1577836800"
    else:
        assert b"sunset" not in headers


def test_starlette_websocket_blocked_gets_denial_response() -> None:
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient, WebSocketDenialResponse

    seen: list[Any] = []
    with (
        TestClient(_starlette_ws_app(seen), client=(CN, 1)) as http,
        pytest.raises(WebSocketDenialResponse) as denied,
        http.websocket_connect("/v1/stream"),
    ):
        pass
    assert denied.value.status_code == 451
    assert denied.value.json()["error"]["code"] == "unsupported_country_region_territory"
    assert seen == []


# -- mounts -------------------------------------------------------------------------------


def test_starlette_mount_decides_on_the_routed_path() -> None:
    pytest.importorskip("starlette")
    from starlette.applications import Starlette
    from starlette.routing import Mount
    from starlette.testclient import TestClient

    seen = Seen()
    inner = GeofenceMiddleware(raw_app(seen), engine=ENGINE)
    app = Starlette(routes=[Mount("/api", app=inner)])
    with TestClient(app, client=(CN, 1)) as client:
        assert client.get("/api/v1/models").status_code == 451
        assert client.get("/api/healthz").status_code == 200
        assert client.get("/api/about").status_code == 200
    assert [d.reason for d in seen.decisions] == ["exempt_path", "default"]


def test_root_path_is_not_part_of_the_routed_path() -> None:
    httpx = pytest.importorskip("httpx")

    async def main() -> list[int]:
        app = GeofenceMiddleware(raw_app(Seen()), engine=ENGINE)
        transport = httpx.ASGITransport(app=app, root_path="/api", client=(CN, 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return [(await client.get(p)).status_code for p in ("/api/v1/models", "/api/healthz")]

    assert asyncio.run(main()) == [451, 200]


# New clients in the test database's US network (216.160.83.56/29), and in CN's.
NEW_US = [f"216.160.83.{n}" for n in range(57, 63)]
NEW_CN = ["175.16.199.2", "175.16.199.3"]


def test_new_allowed_clients_are_decided_without_their_request_facts() -> None:
    # Once the gate knows the app has no exempt route it asks Engine.quick, which (compiled)
    # decides a new allowed client with no RequestInfo and no answer(); a block is answer()'s.
    engine = CountingEngine.from_config(BASE)
    middleware = GeofenceMiddleware(raw_app(seen := Seen()), engine=engine)
    run(middleware, http_scope(US), Peer())  # the first request sets the clock's window
    engine.calls = 0
    for peer in [*NEW_US, *NEW_CN]:
        sent = Peer()
        run(middleware, http_scope(peer), sent)
        assert sent.sent[0]["status"] == (451 if peer in NEW_CN else 200)
    assert [d.client_ip for d in seen.decisions[1:]] == NEW_US
    assert engine.calls == len(NEW_CN) + (0 if NATIVE else len(NEW_US))

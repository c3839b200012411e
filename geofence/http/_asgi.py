"""ASGI, the protocol (not a framework): request facts, root paths, response messages, lifespan,
and routes that decide again with their account.

What the ASGI adapter needs to turn a scope into request facts and an :class:`Answer` into ASGI
messages. Nothing here imports a web framework: ASGI is a message protocol between a server and
an app, and these helpers follow its specification only.
"""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping, Sequence
from functools import partial
from types import CoroutineType, FrameType
from typing import TYPE_CHECKING, Any, Literal, overload

from geofence._model import Decision, RequestInfo
from geofence.hotpath import NATIVE
from geofence.hotpath._makers import maker, new_request_info
from geofence.http._answer import EXEMPT_VIEW, EXEMPT_VIEW_ANSWER, Answer
from geofence.http._exempt import (
    asgi_exempt_prefixes,
    asgi_routed_exempt,
    asgi_routes,
    cache_question,
)
from geofence.http._hooks import guard_async_hook
from geofence.http._responses import Response

if TYPE_CHECKING:
    from geofence._engine import Engine

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
RawHeaders = list[tuple[bytes, bytes]]

#: Key of the decision in ``scope["state"]`` (Starlette: ``request.state.geofence``).
STATE_KEY = "geofence"
# The engine that answered the request, in the scope (new for every request, unlike the state,
# which a server could share against the spec): a middleware further in with the same policy
# passes the request on (engine.decided), and a route deciding with its account
# (decide_in_route) asks the same engine.
ENGINE_KEY = "geofence.engine"
# (engine, answer) a route gave with the account it resolved; it replaces the middleware's.
ROUTE_ANSWER_KEY = "geofence.route_answer"
#: Whether a route of this process may decide again with its account (the ASGI adapter's
#: route helpers imported): then every gate passes responses through :func:`call_routed`.
ROUTES_DECIDE = False

# Messages that carry the response headers a warning amends.
_STARTS = frozenset({"http.response.start", "websocket.accept", "websocket.http.response.start"})
_DENIAL_EXTENSION = "websocket.http.response"
# Close codes (RFC 6455 7.4.1); servers answer a close before accept with 403.
_POLICY_VIOLATION = 1008
_INTERNAL_ERROR = 1011
_ASGI_CALL = frozenset({"scope", "receive", "send"})
_REFUSAL = Response(
    500,
    (
        ("content-type", "text/plain; charset=utf-8"),
        ("content-length", "21"),
        ("cache-control", "no-store"),
    ),
    b"Internal Server Error",
    html=False,
    context={},
)

logger = logging.getLogger("geofence")


class ASGIGate:
    """ASGI middleware that asks ``engine`` about every ``http`` and ``websocket`` request
    before ``app`` sees it, and passes every other scope type (``lifespan``) through.

    The decision goes in ``scope["state"][STATE_KEY]``. A denial is sent instead of calling
    the app (the body is never read), a warning amends the app's response start, anything
    else passes untouched. Installed twice with the same policy, the outer gate decides and
    the inner one passes the request on. ``account``: the app's hook ``fn(scope)``, sync,
    async or returning an awaitable (:func:`geofence.http._hooks.guard_async_hook`: what it
    raises is logged on ``logger`` and the request decided without an account).

    A request the app's router (Starlette's route protocol: Starlette, FastAPI) sends to an
    endpoint marked exempt (:func:`geofence.http._exempt.exempt`) is not decided: its
    decision is ``EXEMPT_VIEW``. The routes are read at the first request; only a request the
    engine has no cached answer for, under a marked route's literal prefix, is routed first.
    """

    def __init__(
        self,
        app: ASGIApp,
        engine: Engine,
        account: Callable[[Scope], Any] | None = None,
        *,
        logger: logging.Logger = logger,
    ) -> None:
        self.app = app
        self.engine = engine
        self.account = account
        self._account_of = None if account is None else guard_async_hook(account, logger)
        #: The routes of the app inside, and the literal prefixes of its exempt ones; None
        #: until the first request that is not answered from the cache.
        self.routes: list[Any] = []
        self.exempt_prefixes: tuple[str, ...] | None = None
        # Bound once: every request asks the cache. (needs_host is fixed for an engine, and
        # a property read per request is a call.)
        self._cached = engine.cached
        self._needs_host = engine.needs_host
        # Behind a trusted proxy: the forwarding header's name, whose value finds a repeated
        # client in the cache (its peer is the proxy's); None when no header counts.
        header = engine.client_header
        self._forwarded = None if header is None else header.encode("latin-1")
        # Whether __call__ may answer an http request from the cache at once.
        self._plain = self._account_of is None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Runs for every request: each line of the hot path (an http request answered from
        # the cache, no account hook, no route deciding again) is paid each time, so it only
        # reads the scope, asks the cache and stores the decision.
        kind = scope["type"]
        answer: Answer | Literal[False] | None
        if kind == "http" and self._plain and not ROUTES_DECIDE and ENGINE_KEY not in scope:
            try:
                # Keys every server sends (a scope without one takes the long way below),
                # read before the cache is asked: a hit is counted, so it is asked once.
                state = scope["state"]
                root = scope["root_path"]
                client = scope["client"]
                path = scope["path"]
                if root:
                    path = without_root(path, root)
                peer = client[0] if client else None
                method = scope["method"]
                answer = self._cached(peer, method, path)
            except Exception:  # a key missing, a peer that is no key: asked below
                answer = False
            if answer:
                scope[ENGINE_KEY] = self.engine
                if state is None:
                    state = scope["state"] = {}
                state[STATE_KEY] = answer.decision
                await self.app(scope, receive, send)
                return
        elif kind not in {"http", "websocket"}:
            # lifespan, and types this middleware does not know, are not requests.
            await self.app(scope, receive, send)
            return
        else:
            answer = False
        # Not answered yet. Everything below runs in this same coroutine: another one to
        # await would cost each new client more.
        engine = self.engine
        if answer is None:
            # The cache missed on the hot path: its facts stand (a peer that is no text is
            # no peer), and the cache is not asked again.
            if peer.__class__ is not str:
                peer = None
            if state is None:
                state = scope["state"] = {}
            if self._forwarded is not None and not ROUTES_DECIDE:
                # A proxied client: found by the proxy's address and the line it forwarded.
                forwarded = forwarded_line(scope.get("headers") or (), self._forwarded)
                if forwarded is not None:
                    answer = self._cached(peer, method, path, None, forwarded)
                    if answer is not None:
                        scope[ENGINE_KEY] = engine
                        state[STATE_KEY] = answer.decision
                        await self.app(scope, receive, send)
                        return
        else:
            if ENGINE_KEY in scope and engine.decided(scope[ENGINE_KEY].mark):
                await self.app(scope, receive, send)
                return
            state = scope.get("state")
            if state is None:
                state = scope["state"] = {}
            peer, method, path = scope_facts(scope, kind)
            if self._account_of is None:
                answer = engine.cached(peer, method, path)
            else:
                account = self._account_of(scope)
                if account.__class__ is CoroutineType:  # an async hook's, guarded too
                    account = await account
                answer = engine.cached(peer, method, path, account)
            if answer is not None and not ROUTES_DECIDE:
                # A repeated allowed request (with or without an account): no headers, no
                # RequestInfo, nothing to add.
                scope[ENGINE_KEY] = engine
                state[STATE_KEY] = answer.decision
                await self.app(scope, receive, send)
                return
        scope[ENGINE_KEY] = engine
        if answer is None:
            prefixes = self.exempt_prefixes
            if prefixes is None:
                prefixes = self.ready()
            if prefixes and path.startswith(prefixes) and asgi_routed_exempt(self.routes, scope):
                answer = EXEMPT_VIEW_ANSWER
            else:
                info = new_request_info(peer, new_headers(scope.get("headers") or ()), method, path)
                if self._needs_host:  # rules with `hosts`
                    info.host = scope_host(scope)
                if self._account_of is None:
                    answer = engine.answer(info)
                else:
                    answer = await engine.aanswer(info, None, account)
        state[STATE_KEY] = answer.decision
        if answer.response is not None:
            # The app is not called and receive() is never awaited: the body stays unread.
            await send_response(send, answer.response, scope)
        elif ROUTES_DECIDE:
            await call_routed(self.app, scope, receive, send, engine, answer)
        elif answer.amends:
            await self.app(scope, receive, amending(send, answer))
        else:
            await self.app(scope, receive, send)

    def ready(self) -> tuple[str, ...]:
        """At the first request not answered from the cache: the app's routes, and the
        literal prefixes of its exempt ones (:attr:`exempt_prefixes`)."""
        self.routes = asgi_routes(self.app)
        self.exempt_prefixes = asgi_exempt_prefixes(self.routes)
        self._cached = cache_question(self.engine, self.exempt_prefixes)
        return self.exempt_prefixes


def _forwarded_line(raw: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    """The value of header ``name`` (lower case) when the request has exactly one line of
    it, decoded as :class:`Headers` decodes it; else None. Never raises."""
    found: bytes | None = None
    try:
        for key, value in raw:
            if key.lower() == name:
                if found is not None:
                    return None
                found = value
        return None if found is None else found.decode("latin-1")
    except Exception:  # headers no server sends: the long way reads them
        return None


#: The value of header ``name`` (lower case) when the request has exactly one line of it,
#: decoded as :class:`Headers` decodes it; else None. Never raises. Read for every request
#: behind a trusted proxy (and every new client of an engine that trusts one): compiled, it
#: reads the headers a server sends in one C call instead of a Python step per header (1,100
#: instructions instead of 6,800 for seven headers); anything else goes to the Python function.
forwarded_line: Callable[[Iterable[tuple[bytes, bytes]], bytes], str | None] = (
    _forwarded_line if NATIVE is None else partial(NATIVE.header_line, _forwarded_line)
)


class Headers(Sequence[tuple[str, str]]):
    """ASGI's raw request headers as (name, value) text, decoded on first use.

    Most requests never need them: the engine reads forwarding headers only from a trusted
    proxy and Accept only to answer a block, and decoding every header would cost more than
    the rest of the adapter together.
    """

    __slots__ = ("_raw", "_text")

    def __init__(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        self._raw = raw
        self._text: list[tuple[str, str]] | None = None

    def _decoded(self) -> list[tuple[str, str]]:
        if self._text is None:
            self._text = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self._raw]
        return self._text

    @overload
    def __getitem__(self, index: int) -> tuple[str, str]: ...
    @overload
    def __getitem__(self, index: slice) -> list[tuple[str, str]]: ...
    def __getitem__(self, index: int | slice) -> tuple[str, str] | list[tuple[str, str]]:
        return self._decoded()[index]

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._decoded())

    def __len__(self) -> int:
        return len(self._decoded())

    def __repr__(self) -> str:
        return f"Headers({self._decoded()!r})"


#: ``Headers(raw)`` without the frame of its ``__init__`` (geofence/hotpath/_makers.py).
new_headers: Callable[[Iterable[tuple[bytes, bytes]]], Headers] = maker(
    Headers, ("_raw",), (), (("_text", None),)
)


def scope_facts(scope: Scope, kind: str) -> tuple[str | None, str, str]:
    """The socket peer, the method and the routed path of an ``http`` or ``websocket`` scope
    (its ``kind``); a websocket handshake is a GET."""
    client = scope.get("client")
    peer = client[0] if client else None
    if not isinstance(peer, str):
        peer = None  # the engine keys its cache on the peer: it must be text (or None)
    path = scope.get("path") or "/"
    root = scope.get("root_path")
    if root:
        path = without_root(path, root)
    return peer, scope.get("method", "GET") if kind == "http" else "GET", path


def request_facts(scope: Scope, kind: str) -> RequestInfo:
    """What the engine decides on, from an ``http`` or ``websocket`` scope (its ``kind``).

    ``host`` is left empty: finding it means a scan of the headers, and the engine needs it
    only for rules with ``hosts`` (:attr:`Engine.needs_host`; it then reads the ``Host``
    header itself). :func:`request_info` fills it in.
    """
    peer, method, path = scope_facts(scope, kind)
    # Positional: keyword arguments cost a dataclass __init__ about twice as much.
    return new_request_info(peer, new_headers(scope.get("headers") or ()), method, path)


def scope_host(scope: Scope) -> str:
    """The request's host: the ``host`` header, else the ``server`` the connection came to
    (an HTTP/1.0 request without ``Host``), for `hosts` rules."""
    for name, value in scope.get("headers") or ():
        if name == b"host":  # ASGI header names are lower-case
            return str(value.decode("latin-1"))
    server = scope.get("server")
    return str(server[0]) if server and server[0] else ""


def request_info(scope: Scope) -> RequestInfo:
    """The request facts of an ``http`` or ``websocket`` scope, ``Host`` included."""
    info = request_facts(scope, scope["type"])
    for name, value in scope.get("headers") or ():
        if name == b"host":  # ASGI header names are lower-case
            info.host = value.decode("latin-1")
            break
    return info


def routed_path(scope: Scope) -> str:
    """The path the app routes on: ``path`` without the ``root_path`` mount prefix.

    Servers (uvicorn >= 0.26) and Starlette's Mount put the full path in ``path`` and the prefix
    in ``root_path``; older servers left the prefix out of ``path``. Like Starlette's router,
    strip the prefix only where it ends at a segment boundary, and otherwise keep the path.
    """
    return without_root(scope.get("path") or "/", scope.get("root_path") or "")


def without_root(path: str, root: str) -> str:
    if root and path.startswith(root):
        rest = path[len(root) :]
        if not rest:
            return "/"
        if rest[0] == "/":
            return rest
    return path


def encode_headers(headers: Iterable[tuple[str, str]]) -> RawHeaders:
    """ASGI header pairs (lower-case names, latin-1); a header that could split the response
    (CR, LF or NUL) or cannot be encoded is dropped and logged, never sent."""
    encoded: RawHeaders = []
    for name, value in headers:
        text = name + value
        if "\r" in text or "\n" in text or "\0" in text:
            logger.error("dropped response header %r: CR, LF or NUL in it", name)
            continue
        try:
            encoded.append((name.lower().encode("latin-1"), value.encode("latin-1")))
        except UnicodeEncodeError:
            logger.error("dropped response header %r: not latin-1 text", name)
    return encoded


async def send_response(
    send: Send, response: Response, scope: Scope, close_code: int = _POLICY_VIOLATION
) -> None:
    """Answer an ``http`` or ``websocket`` scope with ``response`` instead of the app.

    A websocket handshake gets the response where the server offers the
    ``websocket.http.response`` extension, and otherwise a close before accept.
    """
    if scope["type"] == "http":
        prefix = "http.response"
    elif _DENIAL_EXTENSION in (scope.get("extensions") or {}):
        prefix = _DENIAL_EXTENSION
    else:
        await send({"type": "websocket.close", "code": close_code})
        return
    headers = encode_headers(response.headers)
    await send({"type": prefix + ".start", "status": response.status, "headers": headers})
    await send({"type": prefix + ".body", "body": response.body, "more_body": False})


def amending(send: Send, answer: Answer) -> Send:
    """``send``, with the answer's headers set on the response start message."""

    async def send_amended(message: Message) -> None:
        if message["type"] in _STARTS:
            message = amended(message, answer)
        await send(message)

    return send_amended


def amended(message: Message, answer: Answer) -> Message:
    """A copy of a response start message with the answer's headers set (same-named replaced)."""
    raw: RawHeaders = list(message.get("headers") or ())

    def get(name: str) -> str | None:
        key = name.lower().encode("latin-1")
        values = [v.decode("latin-1") for k, v in raw if k.lower() == key]
        return ", ".join(values) if values else None

    extra = encode_headers(answer.headers(get))
    if not extra:
        return message
    # The answer's values are final (already merged with the app's via get): replace, not add.
    replaced = {name for name, _ in extra}
    kept = [(k, v) for k, v in raw if k.lower() not in replaced]
    return {**message, "headers": kept + extra}


def inside_asgi_call() -> bool:
    """Whether this function's caller runs inside an ASGI app's call, after the server started.

    Starlette and FastAPI build their middleware on the app's first call (the ``lifespan``
    scope): an exception raised there looks to uvicorn and hypercorn like an app without
    lifespan support, and they start anyway. The call is found on the stack as the nearest
    coroutine, when it takes ``scope``, ``receive`` and ``send``; a module being imported
    (an app wrapped directly) or any other coroutine (a test, a lifespan handler) is not one.
    """
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if code.co_name == "<module>":
            return False
        if code.co_flags & inspect.CO_COROUTINE:
            return _ASGI_CALL.issubset(code.co_varnames[: code.co_argcount])
        frame = frame.f_back
    return False


async def refuse(
    error: Exception, app: ASGIApp, scope: Scope, receive: Receive, send: Send
) -> None:
    """Serve nothing, because of ``error`` (a policy that did not load in a running server).

    The ``lifespan`` startup fails with the error's text, so that the server stops; a server
    that runs without lifespan gets a 500 for every request, which never reaches the app.
    Scope types that are not requests go to ``app``.
    """
    kind = scope["type"]
    if kind == "lifespan":
        await receive()  # lifespan.startup
        await send({"type": "lifespan.startup.failed", "message": f"geofence: {error}"})
        raise error
    if kind in ("http", "websocket"):
        logger.error("request refused: the geofence policy did not load: %s", error)
        await send_response(send, _REFUSAL, scope, _INTERNAL_ERROR)
        return
    await app(scope, receive, send)


class RouteDenied(Exception):
    """A route's account decision denies (:func:`decide_in_route`): the middleware in front
    sends the denial (:func:`call_routed`)."""

    def __init__(self, answer: Answer) -> None:
        super().__init__("geofence: denied by the route's account decision")
        self.answer = answer


async def decide_in_route(scope: Scope, account: Any) -> Decision:
    """Decide the request of ``scope`` again, inside the app, for ``account`` (an Account or
    an id string; None: nothing to do), with the engine that answered it in front, and return
    the decision (also in the state). A denial raises :class:`RouteDenied`; whatever the
    answer, it is the one the middleware applies to the app's response (:func:`call_routed`).
    """
    engine: Engine | None = scope.get(ENGINE_KEY)
    if engine is None:
        raise RuntimeError(
            "geofence: decide_account() / geofence_account() need GeofenceMiddleware in front "
            "of the app (app.add_middleware(GeofenceMiddleware, config=...))"
        )
    state = scope["state"]
    if account is None or state[STATE_KEY] is EXEMPT_VIEW:  # an exempt route stays exempt
        decision: Decision = state[STATE_KEY]
        return decision
    info = request_facts(scope, scope["type"])
    if engine.needs_host:  # rules with `hosts`
        info.host = scope_host(scope)
    answer = await engine.aanswer(info, account=account)
    state[STATE_KEY] = answer.decision
    scope[ROUTE_ANSWER_KEY] = (engine, answer)
    if answer.response is not None:
        raise RouteDenied(answer)
    return answer.decision


async def call_routed(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, engine: Engine, answer: Answer
) -> None:
    """Call ``app`` where a route may decide again with its account (:func:`decide_in_route`):
    the response follows the answer known when it starts, the route's if it gave one (its
    denial replaces whatever the app sends, its warning amends the app's response), else
    ``answer``, the one ``engine`` gave in front."""
    started = 0  # 1: the app's response is going out; 2: a denial went out instead

    async def send_latest(message: Message) -> None:
        nonlocal started
        if started:
            if started == 1:
                await send(message)
            return
        routed = scope.get(ROUTE_ANSWER_KEY)
        now = routed[1] if routed is not None and routed[0] is engine else answer
        if now.response is not None:
            started = 2
            await send_response(send, now.response, scope)
        else:
            started = 1
            await (amending(send, now) if now.amends else send)(message)

    try:
        await app(scope, receive, send_latest)
    except RouteDenied as denied:
        # Not handled by the app (the usual case): nothing was sent yet.
        if started == 1:
            raise
        if not started:
            assert denied.answer.response is not None
            await send_response(send, denied.answer.response, scope)

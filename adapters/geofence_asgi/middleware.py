"""Pure ASGI middleware: ASGI scope in, :class:`geofence.RequestInfo` out, the answer back as ASGI.

No framework import and no policy here: the engine answers; this module only translates (the
protocol helpers are in :mod:`geofence.http._asgi`).
"""

from __future__ import annotations

import inspect
import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from geofence import Account, ConfigError, Engine, Event, Policy, RequestInfo
from geofence.http import Answer
from geofence.http._asgi import (
    ASGIApp,
    Headers,
    Message,
    Receive,
    Scope,
    Send,
    amending,
    encode_headers,
    inside_asgi_call,
    refuse,
    routed_path,
    send_response,
    without_root,
)

__all__ = ["STATE_KEY", "GeofenceMiddleware", "Headers", "encode_headers", "routed_path"]

#: Key of the decision in ``scope["state"]`` (Starlette: ``request.state.geofence``).
STATE_KEY = "geofence"
# The engine that answered the request, in the scope (new for every request, unlike the state,
# which a server could share against the spec): a middleware further in with the same policy
# passes the request on (engine.decided), and a route deciding with its account
# (geofence_asgi.routes) asks the same engine.
ENGINE_KEY = "geofence.engine"
# (engine, answer) a route gave with the account it resolved; it replaces the middleware's.
ROUTE_ANSWER_KEY = "geofence.route_answer"
# Whether some route of this process decides with an account (geofence_asgi.routes imported):
# then every response goes through the wrapper that applies the route's answer (_routed).
ROUTES_DECIDE = False
# What an account hook returns that is no awaitable.
_PLAIN = (Account, str, type(None))

logger = logging.getLogger("geofence.asgi")


class RouteDenied(Exception):
    """A route's account decision denies: the middleware sends the denial."""

    def __init__(self, answer: Answer) -> None:
        super().__init__("geofence: denied by the route's account decision")
        self.answer = answer


class GeofenceMiddleware:
    """Decide every ``http`` and ``websocket`` request; pass everything else through.

    ``config`` is what :meth:`geofence.Engine.from_config` takes (a dict, a ``.toml`` / ``.json``
    path or a Policy); alternatively pass a ready ``engine``. The engine is built here, so a bad
    configuration raises :class:`geofence.ConfigError` when the app is assembled.

    ``account``: ``fn(scope) -> Account | id string | None``, sync or async (or returning an
    awaitable), called before the app (it reads headers, an outer middleware's
    ``scope["user"]``). If it raises, that is logged with its traceback and the request is
    decided without an account: never a 500. Routes that authenticate themselves use
    :func:`geofence_asgi.geofence_account`. ``on_event``: called with every
    :class:`geofence.Event` (added to a ready ``engine``'s receivers); errors are logged.

    Starlette and FastAPI (``add_middleware``, ``middleware=[...]``) construct middleware inside
    the app's first call, once the server runs, where the server would take the exception for
    an app without lifespan support and serve anyway. There the ConfigError is kept instead:
    the middleware fails the ``lifespan`` startup with its text, so uvicorn and hypercorn stop,
    and answers any request with a 500 that never reaches the app (a server run without
    lifespan, or a mounted sub-app, which gets no lifespan).
    """

    def __init__(
        self,
        app: ASGIApp,
        config: Mapping[str, Any] | str | os.PathLike[str] | Policy | None = None,
        *,
        engine: Engine | None = None,
        account: Callable[[Scope], Any] | None = None,
        on_event: Callable[[Event], object] | None = None,
    ) -> None:
        self.app = app
        self.account = account
        if engine is None:
            if config is None:
                raise TypeError("GeofenceMiddleware needs config= (or a ready engine=)")
            try:
                engine = Engine.from_config(config, on_event=on_event)
            except ConfigError as error:
                if not inside_asgi_call():
                    raise
                self.__class__, self.error = _Refusing, error
                return
        elif config is not None:
            raise TypeError("GeofenceMiddleware takes config= or engine=, not both")
        elif on_event is not None:
            engine.events.add(on_event)
        self.engine = engine

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Runs for every request: each line of the allow path below is paid each time, so it
        # only reads the scope and asks the engine.
        kind = scope["type"]
        if kind not in {"http", "websocket"}:
            # lifespan, and types this middleware does not know, are not requests.
            await self.app(scope, receive, send)
            return
        engine = self.engine
        if ENGINE_KEY in scope and engine.decided(scope[ENGINE_KEY].mark):
            await self.app(scope, receive, send)
            return
        scope[ENGINE_KEY] = engine
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        peer, method, path = _facts(scope, kind)
        if self.account is None:
            answer = engine.cached(peer, method, path)
            if answer is not None and not ROUTES_DECIDE:
                # A repeated allowed request: no headers, no RequestInfo, nothing to add.
                state[STATE_KEY] = answer.decision
                await self.app(scope, receive, send)
                return
            if answer is None:
                info = RequestInfo(peer, Headers(scope.get("headers") or ()), method, path)
                answer = engine.answer(info)
        else:
            try:
                account = self.account(scope)
                # Whether it is a coroutine function (an async __call__ too) is no matter: an
                # awaitable result is awaited, and telling one from an account costs less.
                if not isinstance(account, _PLAIN) and inspect.isawaitable(account):
                    account = await account
            except Exception:
                logger.exception("the account hook failed; deciding without an account")
                account = None
            # (Engine.cached takes an Account only; answer() also takes an id string.)
            if account is None or isinstance(account, Account):
                answer = engine.cached(peer, method, path, account)
            else:
                answer = None
            if answer is None:
                info = RequestInfo(peer, Headers(scope.get("headers") or ()), method, path)
                answer = await engine.aanswer(info, account=account)
        state[STATE_KEY] = answer.decision
        if answer.response is not None:
            # The app is not called and receive() is never awaited: the body stays unread.
            await send_response(send, answer.response, scope)
        elif ROUTES_DECIDE:
            await self._routed(scope, receive, send, answer)
        elif answer.amends:
            await self.app(scope, receive, amending(send, answer))
        else:
            await self.app(scope, receive, send)

    async def _routed(self, scope: Scope, receive: Receive, send: Send, answer: Answer) -> None:
        """Call the app where a route may decide again with its account: the response then
        follows the route's answer (its denial replaces whatever the app sends, its warning
        amends the app's response), else this middleware's ``answer``."""
        engine = self.engine
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
            await self.app(scope, receive, send_latest)
        except RouteDenied as denied:
            # Not handled by the app (the usual case): nothing was sent yet.
            if started == 1:
                raise
            if not started:
                assert denied.answer.response is not None
                await send_response(send, denied.answer.response, scope)


class _Refusing(GeofenceMiddleware):
    """A middleware whose policy did not load inside a running server: it serves nothing."""

    error: ConfigError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await refuse(self.error, self.app, scope, receive, send)


def request_facts(scope: Scope, kind: str) -> RequestInfo:
    """What the engine decides on, from an ``http`` or ``websocket`` scope (its ``kind``).

    ``host`` is left empty: the engine never reads it, and finding it means a scan of the
    headers on every request. :func:`request_info` fills it in.
    """
    peer, method, path = _facts(scope, kind)
    # Positional: keyword arguments cost a dataclass __init__ about twice as much.
    return RequestInfo(peer, Headers(scope.get("headers") or ()), method, path)


def _facts(scope: Scope, kind: str) -> tuple[str | None, str, str]:
    """The socket peer, the method and the routed path of a request scope."""
    client = scope.get("client")
    peer = client[0] if client else None
    if not isinstance(peer, str):
        peer = None  # the engine keys its cache on the peer: it must be text (or None)
    path = scope.get("path") or "/"
    root = scope.get("root_path")
    if root:
        path = without_root(path, root)
    return peer, scope.get("method", "GET") if kind == "http" else "GET", path


def request_info(scope: Scope) -> RequestInfo:
    """The request facts of an ``http`` or ``websocket`` scope, ``Host`` included."""
    info = request_facts(scope, scope["type"])
    for name, value in scope.get("headers") or ():
        if name == b"host":  # ASGI header names are lower-case
            info.host = value.decode("latin-1")
            break
    return info

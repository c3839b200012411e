"""Pure ASGI middleware: ASGI scope in, :class:`geofence.RequestInfo` out, the answer back as ASGI.

No framework import and no policy here: the engine answers; this module only translates (the
protocol helpers are in :mod:`geofence.http._asgi`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from geofence import ConfigError, Engine, Policy, RequestInfo
from geofence.http._asgi import (
    ASGIApp,
    Headers,
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
# "Already answered" is marked in the scope, which is new for every request, and not in the
# state, which a server could (against the spec) share between requests; engine.decided()
# says what the mark means (installed twice: same policy once, different policies both).
_MARK_KEY = "geofence.policy"


class GeofenceMiddleware:
    """Decide every ``http`` and ``websocket`` request; pass everything else through.

    ``config`` is what :meth:`geofence.Engine.from_config` takes (a dict, a ``.toml`` / ``.json``
    path or a Policy); alternatively pass a ready ``engine``. The engine is built here, so a bad
    configuration raises :class:`geofence.ConfigError` when the app is assembled.

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
    ) -> None:
        self.app = app
        if engine is None:
            if config is None:
                raise TypeError("GeofenceMiddleware needs config= (or a ready engine=)")
            try:
                engine = Engine.from_config(config)
            except ConfigError as error:
                if not inside_asgi_call():
                    raise
                self.__class__, self.error = _Refusing, error
                return
        elif config is not None:
            raise TypeError("GeofenceMiddleware takes config= or engine=, not both")
        self.engine = engine
        self._mark = engine.mark

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Runs for every request: each line of the allow path below is paid each time, so it
        # only reads the scope and asks the engine.
        kind = scope["type"]
        if kind not in {"http", "websocket"}:
            # lifespan, and types this middleware does not know, are not requests.
            await self.app(scope, receive, send)
            return
        engine = self.engine
        if _MARK_KEY in scope and engine.decided(scope[_MARK_KEY]):
            await self.app(scope, receive, send)
            return
        scope[_MARK_KEY] = self._mark
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        peer, method, path = _facts(scope, kind)
        # A repeated allowed request needs no headers and no RequestInfo.
        answer = engine.cached(peer, method, path)
        if answer is not None:
            state[STATE_KEY] = answer.decision
            await self.app(scope, receive, send)
            return
        answer = engine.answer(RequestInfo(peer, Headers(scope.get("headers") or ()), method, path))
        state[STATE_KEY] = answer.decision
        if answer.response is not None:
            # The app is not called and receive() is never awaited: the body stays unread.
            await send_response(send, answer.response, scope)
        elif answer.amends:
            await self.app(scope, receive, amending(send, answer))
        else:
            await self.app(scope, receive, send)


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

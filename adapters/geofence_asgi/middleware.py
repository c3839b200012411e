"""Pure ASGI middleware: ASGI scope in, :class:`geofence.RequestInfo` out, the answer back as ASGI.

No framework import and no policy here: the engine answers, and the protocol's request flow is
the core's :class:`geofence.http._asgi.ASGIGate`; this module builds one from a policy and keeps
a policy that fails inside a running server from serving (:func:`geofence.http._asgi.refuse`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from geofence import ConfigError, Engine, Event, Policy
from geofence.http._asgi import (
    STATE_KEY,
    ASGIApp,
    ASGIGate,
    Headers,
    Receive,
    Scope,
    Send,
    encode_headers,
    inside_asgi_call,
    refuse,
    request_facts,
    request_info,
    routed_path,
)

__all__ = [
    "STATE_KEY",
    "GeofenceMiddleware",
    "Headers",
    "encode_headers",
    "request_facts",
    "request_info",
    "routed_path",
]

logger = logging.getLogger("geofence.asgi")


class GeofenceMiddleware(ASGIGate):
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
        if engine is None:
            if config is None:
                raise TypeError("GeofenceMiddleware needs config= (or a ready engine=)")
            try:
                engine = Engine.from_config(config, on_event=on_event)
            except ConfigError as error:
                if not inside_asgi_call():
                    raise
                self.app, self.__class__, self.error = app, _Refusing, error
                return
        elif config is not None:
            raise TypeError("GeofenceMiddleware takes config= or engine=, not both")
        elif on_event is not None:
            engine.events.add(on_event)
        super().__init__(app, engine, account, logger=logger)


class _Refusing(GeofenceMiddleware):
    """A middleware whose policy did not load inside a running server: it serves nothing."""

    error: ConfigError

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await refuse(self.error, self.app, scope, receive, send)

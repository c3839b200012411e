"""ASGI, the protocol (not a framework): request headers, root paths, response messages, lifespan.

What the ASGI adapter needs to turn a scope into request facts and an :class:`Answer` into ASGI
messages. Nothing here imports a web framework: ASGI is a message protocol between a server and
an app, and these helpers follow its specification only.
"""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator, MutableMapping, Sequence
from types import FrameType
from typing import Any, overload

from geofence.http._answer import Answer
from geofence.http._responses import Response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
RawHeaders = list[tuple[bytes, bytes]]

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

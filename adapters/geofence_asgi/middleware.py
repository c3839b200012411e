"""Pure ASGI middleware: ASGI scope in, :class:`geofence.RequestInfo` out, answers back as ASGI.

No framework import and no policy here: the engine decides, builds the denial response and the
warn headers; this module only translates between ASGI messages and those objects.
"""

from __future__ import annotations

import logging
import os
from collections.abc import (
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
    Sequence,
)
from typing import Any, overload

from geofence import Decision, Engine, Policy, RequestInfo, Response

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
RawHeaders = list[tuple[bytes, bytes]]

#: Key of the decision in ``scope["state"]`` (Starlette: ``request.state.geofence``).
STATE_KEY = "geofence"
# "Already decided" is marked in the scope, which is new for every request, and not in the
# state, which a server could (against the spec) share between requests. The mark is the policy
# that decided, so that a nested middleware with another policy still decides.
_POLICY_KEY = "geofence.policy"
# Messages that carry the response headers the warn headers are merged into.
_STARTS = frozenset({"http.response.start", "websocket.accept", "websocket.http.response.start"})
_DENIAL_EXTENSION = "websocket.http.response"
# Close code "policy violation" (RFC 6455 7.4.1); servers answer a pre-accept close with 403.
_POLICY_VIOLATION = 1008

logger = logging.getLogger("geofence")


class GeofenceMiddleware:
    """Decide every ``http`` and ``websocket`` request; pass everything else through.

    ``config`` is what :meth:`geofence.Engine.from_config` takes (a dict, a ``.toml`` / ``.json``
    path or a Policy); alternatively pass a ready ``engine``. The engine is built here, so a bad
    configuration raises :class:`geofence.ConfigError` when the app is assembled, not on the
    first request.
    """

    def __init__(
        self,
        app: ASGIApp,
        config: Mapping[str, Any] | str | os.PathLike[str] | Policy | None = None,
        *,
        engine: Engine | None = None,
    ) -> None:
        if engine is None:
            if config is None:
                raise TypeError("GeofenceMiddleware needs config= (or a ready engine=)")
            engine = Engine.from_config(config)
        elif config is not None:
            raise TypeError("GeofenceMiddleware takes config= or engine=, not both")
        self.app = app
        self.engine = engine
        self._policy = engine.policy
        # Mode "off": the decision is the same for every request, so compute it once.
        self._off_decision = None if self.engine.active else self.engine.decide(RequestInfo(None))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Runs for every request: each line of the allow path below is paid each time, so it
        # only reads the scope, builds the request facts and asks the engine.
        kind = scope["type"]
        if kind not in {"http", "websocket"}:
            # lifespan, and types this middleware does not know, are not requests.
            await self.app(scope, receive, send)
            return
        if _POLICY_KEY in scope and self._decided_before(scope[_POLICY_KEY]):
            await self.app(scope, receive, send)
            return
        scope[_POLICY_KEY] = self._policy
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        decision = self._off_decision
        if decision is not None:
            state[STATE_KEY] = decision
            await self.app(scope, receive, send)
            return
        peer, method, path = _facts(scope, kind)
        # A repeated allowed request needs no headers and no RequestInfo.
        cached = self.engine.cached(peer, method, path)
        if cached is not None:
            state[STATE_KEY] = cached.decision
            await self.app(scope, receive, send)
            return
        info = RequestInfo(peer, Headers(scope.get("headers") or ()), method, path)
        decision = self.engine.decide(info)
        state[STATE_KEY] = decision
        if decision.action == "allow":
            await self.app(scope, receive, send)
        else:
            await self._answer(scope, receive, send, kind, info, decision)

    def _decided_before(self, decided_by: object) -> bool:
        """Whether a middleware with this same policy has decided the scope already.

        Installed twice (app and router, or two wrappers), the outer one decides. A nested
        middleware with *another* policy decides again: both policies apply.
        """
        return decided_by is self._policy or decided_by == self._policy

    async def _answer(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        kind: str,
        info: RequestInfo,
        decision: Decision,
    ) -> None:
        """A warned request goes on with the warn headers; a blocked one is answered here."""
        denial = self.engine.denial(decision, info)
        if denial is None:
            await self.app(scope, receive, self._with_headers(send, decision))
        elif kind == "http":
            # The app is not called and receive() is never awaited: the body stays unread.
            await _send_response(send, denial, "http.response")
        elif _DENIAL_EXTENSION in (scope.get("extensions") or {}):
            await _send_response(send, denial, "websocket.http.response")
        else:
            await send({"type": "websocket.close", "code": _POLICY_VIOLATION})

    def _with_headers(self, send: Send, decision: Decision) -> Send:
        """``send``, with the engine's response headers merged into the response start."""
        engine = self.engine

        async def send_with_headers(message: Message) -> None:
            if message["type"] in _STARTS:
                message = _merge_headers(message, engine, decision)
            await send(message)

        return send_with_headers


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
        path = _without_root(path, root)
    return peer, scope.get("method", "GET") if kind == "http" else "GET", path


def request_info(scope: Scope) -> RequestInfo:
    """The request facts of an ``http`` or ``websocket`` scope, ``Host`` included."""
    info = request_facts(scope, scope["type"])
    for name, value in scope.get("headers") or ():
        if name == b"host":  # ASGI header names are lower-case
            info.host = value.decode("latin-1")
            break
    return info


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
    return _without_root(scope.get("path") or "/", scope.get("root_path") or "")


def _without_root(path: str, root: str) -> str:
    if root and path.startswith(root):
        rest = path[len(root) :]
        if not rest:
            return "/"
        if rest[0] == "/":
            return rest
    return path


async def _send_response(send: Send, response: Response, prefix: str) -> None:
    await send(
        {
            "type": prefix + ".start",
            "status": response.status,
            "headers": encode_headers(response.headers),
        }
    )
    await send({"type": prefix + ".body", "body": response.body, "more_body": False})


def _merge_headers(message: Message, engine: Engine, decision: Decision) -> Message:
    raw: RawHeaders = list(message.get("headers") or ())

    def get(name: str) -> str | None:
        key = name.lower().encode("latin-1")
        values = [v.decode("latin-1") for k, v in raw if k.lower() == key]
        return ", ".join(values) if values else None

    extra = encode_headers(engine.response_headers(decision, get))
    if not extra:
        return message
    # The engine returns final values (already merged with the app's via get): replace, not add.
    replaced = {name for name, _ in extra}
    kept = [(k, v) for k, v in raw if k.lower() not in replaced]
    return {**message, "headers": kept + extra}


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

"""WSGI (PEP 3333) translation for adapters that sit in a WSGI layer: the routed path from
PATH_INFO, the core's response sent as a WSGI response, a warning's headers set on the app's
response through ``start_response``, and :class:`WSGIGate`, the layer itself (which also
applies an answer decided inside the app when its response starts). No web framework is
imported here."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from contextlib import suppress
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from geofence._cache import BoundedCache
from geofence.hotpath._makers import new_request_info
from geofence.http._answer import EXEMPT_VIEW, EXEMPT_VIEW_ANSWER, Answer
from geofence.http._environ import environ_host, environ_info, environ_key, new_environ_headers
from geofence.http._exempt import cache_question
from geofence.http._hooks import guard_hook
from geofence.http._responses import CACHE_OVERRIDE_HEADERS, Response

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from geofence._engine import Engine

# The decision of the request, in its environ (for the app: Flask's g.geofence).
DECISION_KEY = "geofence.decision"
# The mark of the engine that answered the request, for a layer further in (Engine.decided).
MARK_KEY = "geofence.mark"
# Where werkzeug's ProxyFix, a WSGI middleware any WSGI app may sit behind, keeps the environ
# values it rewrote from forwarding headers (REMOTE_ADDR among them).
PROXY_FIX_KEY = "werkzeug.proxy_fix.orig"
# (peer, method, path) of a request whose answer waits for the account hook.
Facts = tuple["str | None", str, str]

logger = logging.getLogger("geofence")


def routed_path(raw: str) -> str:
    """The path a WSGI framework routes for PATH_INFO ``raw`` (Werkzeug's ``request.path``):
    decoded the WSGI way (Latin-1 bytes read as UTF-8, undecodable bytes replaced), with
    exactly one leading slash. Never raises."""
    path = raw
    if not path.isascii():
        # A string that does not encode is no valid WSGI string: frameworks refuse it too, and
        # geofence decides on it as it came.
        with suppress(UnicodeError):
            path = path.encode("latin-1").decode(errors="replace")
    return "/" + path.lstrip("/")


class RoutedPaths(BoundedCache[str, str]):
    """``paths[raw]`` is ``routed_path(raw)``, remembered: computing it costs more than the
    dictionary lookup of a hit, and an app sees few distinct paths."""

    __slots__ = ()
    #: Longer PATH_INFO values are computed every time, never pinned in memory.
    LONGEST: ClassVar[int] = 1024

    def __missing__(self, raw: str) -> str:
        path = routed_path(raw)
        if len(raw) <= self.LONGEST:
            self.put(raw, path)
        return path


#: PATH_INFO -> the routed path, for every WSGI adapter.
WSGI_ROUTED_PATHS = RoutedPaths(4096)


def wsgi_send(
    response: Response, start_response: StartResponse, kept: Iterable[tuple[str, str]] = ()
) -> list[bytes]:
    """Send the core's ``response``. ``kept``: headers the app's own processing put on it
    (CORS headers from a hook), kept unless the response sets that name itself or they would
    let a cache store it."""
    replaced = {name.lower() for name, _ in response.headers}.union(CACHE_OVERRIDE_HEADERS)
    headers = [(name, value) for name, value in kept if name.lower() not in replaced]
    # Last, so that a HEAD answer keeps the GET Content-Length the core gave it.
    headers.extend(response.headers)
    start_response(f"{response.status} {HTTPStatus(response.status).phrase}", headers)
    return [response.body]


def wsgi_amend(answer: Answer, start_response: StartResponse) -> StartResponse:
    """``start_response`` that sets ``answer.headers(get)`` on whatever response leaves the
    app (error pages included), replacing the app's headers of the same names."""

    def start(
        status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None, /
    ) -> Callable[[bytes], object]:
        def get(name: str) -> str | None:
            key = name.lower()
            return ", ".join(v for k, v in headers if k.lower() == key) or None

        added = answer.headers(get)
        replaced = {name.lower() for name, _ in added}
        kept = [(k, v) for k, v in headers if k.lower() not in replaced]
        return start_response(status, kept + added, exc_info)

    return start


def _discard(*data: bytes) -> None:
    """The ``write`` (and the ``close``) of an app response replaced by a denial."""


class WSGIGate:
    """A WSGI layer in front of ``inner`` (an app, or what its framework calls): :meth:`wsgi`
    asks ``engine`` about each request before ``inner`` sees it. A repeated allowed request
    costs one cache probe. The decision goes in ``environ[DECISION_KEY]``; a denial is sent
    instead of calling ``inner`` (:meth:`deny`), a warning amends its response. Installed
    twice with the same policy, the outer layer decides and the inner one passes the request on.

    ``account``: the app's hook, called with no arguments inside the framework's request,
    where the framework knows who calls: the framework calls :meth:`decide_pending` there, and
    the answer is applied when the response starts (:meth:`_respond_later`). Guarded
    (:func:`geofence.http._hooks.guard_hook`): what it raises is logged on ``logger``.

    The socket peer is the original ``REMOTE_ADDR`` when werkzeug's ProxyFix in front rewrote
    it: geofence trusts forwarding headers only as the policy says (:meth:`check_proxy_fix`).
    A framework subclasses the gate for what only it knows: :meth:`ready` (its views exempt
    from the policy, at the first request), :meth:`routed_view` and :meth:`deny`. A request
    that reaches an exempt view is never decided; its decision is ``EXEMPT_VIEW``.
    """

    def __init__(
        self,
        engine: Engine,
        inner: WSGIApplication,
        account: Callable[[], Any] | None = None,
        *,
        logger: logging.Logger = logger,
    ) -> None:
        self.engine = engine
        self.inner = inner
        self.account = account
        self.logger = logger
        self._account_of = None if account is None else guard_hook(account, logger)
        self._proxy_fix_checked = False
        # The environ key of this layer's pending request facts, then of its answer.
        self._pending = f"geofence.pending.{id(self):x}"
        self._mark = engine.mark
        #: The views exempt from the policy (by the framework's name for a view), and the paths
        #: under which a request may reach one (only those are routed before deciding); the
        #: prefixes are None until :meth:`ready` ran, at the first request.
        self.exempt_views: frozenset[str] = frozenset()
        self.exempt_prefixes: tuple[str, ...] | None = None
        # Bound once: every request asks the cache. (needs_host is fixed for an engine, and
        # a property read per request is a call.)
        self._cached = engine.cached
        self._needs_host = engine.needs_host
        # Behind a trusted proxy: the environ key of the forwarding header, whose value finds
        # a repeated client in the cache (its peer is the proxy's); None when no header counts.
        self._forwarded = environ_key(engine.client_header)
        # Whether wsgi() may answer from the cache at once: set once ready() ran (at the first
        # request), for a layer without an account hook.
        self._plain = False

    def wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        # Every line down to `inner` is paid by every request: a repeated allowed request is
        # three reads of the environ, one probe of the engine's cache and two stores. (A
        # request a layer further out marked is _serve's: this one may have nothing to do.)
        if self._plain and PROXY_FIX_KEY not in environ and MARK_KEY not in environ:
            answer: Answer | Literal[False] | None
            try:
                answer = self._cached(
                    environ.get("REMOTE_ADDR") or None,
                    environ["REQUEST_METHOD"],  # required (PEP 3333): no default to test for
                    WSGI_ROUTED_PATHS[environ.get("PATH_INFO") or ""],
                )
            except Exception:  # an environ no server sends: _serve asks
                answer = False
            if answer:
                environ[DECISION_KEY] = answer.decision
                environ[MARK_KEY] = self._mark
                return self.inner(environ, start_response)
            return self._serve(environ, start_response, answer is False)
        return self._serve(environ, start_response, True)

    def _serve(
        self, environ: WSGIEnvironment, start_response: StartResponse, ask_cache: bool
    ) -> Iterable[bytes]:
        """:meth:`wsgi` for every request it does not answer from the cache itself;
        ``ask_cache``: whether the cache is still to be asked."""
        if self.exempt_prefixes is None:
            self.ready()
            self._plain = self.account is None
            self._cached = cache_question(self.engine, self.exempt_prefixes)
        path = WSGI_ROUTED_PATHS[environ.get("PATH_INFO") or ""]
        peer = environ.get("REMOTE_ADDR") or None
        original = environ.get(PROXY_FIX_KEY)
        if original is not None:
            peer = original.get("REMOTE_ADDR") or None
            self.check_proxy_fix()
        method: str = environ.get("REQUEST_METHOD") or "GET"
        mark = environ.get(MARK_KEY)
        if mark is not None and self.engine.decided(mark):
            # A layer further out with this same policy answered (an app mounted in another)
            # and left its decision in the environ.
            return self.inner(environ, start_response)
        # With an account hook, the answer waits for the app to say who is calling.
        answer = None
        if ask_cache and self.account is None:
            answer = self._cached(peer, method, path)
        if answer is None and self._forwarded is not None and self.account is None:
            # A proxied client: found by the proxy's address and the line it forwarded.
            forwarded = environ.get(self._forwarded)
            if forwarded is not None:
                answer = self._cached(peer, method, path, None, forwarded)
        if answer is None:
            if self.account is not None:
                facts = (peer, method.upper(), path)
                return self._respond_later(environ, start_response, facts)
            prefixes = self.exempt_prefixes
            if (
                prefixes
                and path.startswith(prefixes)
                and self.routed_view(environ) in self.exempt_views
            ):
                environ[DECISION_KEY] = EXEMPT_VIEW
                return self.inner(environ, start_response)
            environ[MARK_KEY] = self._mark
            info = new_request_info(peer, new_environ_headers(environ), method.upper(), path)
            if self._needs_host:  # rules with `hosts`
                info.host = environ_host(environ)
            answer = self.engine.answer(info)
            if answer.response is not None:
                environ[DECISION_KEY] = answer.decision
                return self.deny(environ, start_response, answer.response)
            if answer.amends:
                start_response = wsgi_amend(answer, start_response)
        environ[DECISION_KEY] = answer.decision
        environ[MARK_KEY] = self._mark
        return self.inner(environ, start_response)

    def ready(self) -> None:
        """Once, at the first request, when the app is set up: sets :attr:`exempt_prefixes`
        (and :attr:`exempt_views`)."""
        self.exempt_prefixes = ()

    def routed_view(self, environ: WSGIEnvironment) -> str | None:
        """The view this request (under one of :attr:`exempt_prefixes`) is routed to, if any."""
        return None

    def deny(
        self, environ: WSGIEnvironment, start_response: StartResponse, denial: Response
    ) -> Iterable[bytes]:
        """Send ``denial`` instead of calling ``inner``."""
        return wsgi_send(denial, start_response)

    def check_proxy_fix(self) -> None:
        """ProxyFix in front rewrote ``REMOTE_ADDR`` from X-Forwarded-For: say once that the
        policy trusts no proxy, if it does not (every client then looks like the proxy)."""
        trust = self.engine.policy.client_ip
        if not self._proxy_fix_checked and not trust.trusted_proxies and trust.hops is None:
            self.logger.warning(
                "ProxyFix is in front of this app, but geofence uses the socket peer (the "
                "proxy) because GEOFENCE has no client_ip.trusted_proxies or client_ip.hops; "
                "set one of them so that geofence sees the real client"
            )
        self._proxy_fix_checked = True

    def _respond_later(
        self, environ: WSGIEnvironment, start_response: StartResponse, facts: Facts
    ) -> Iterable[bytes]:
        """Call ``inner`` for a request whose answer waits for :meth:`decide_pending`, inside
        the framework; when the response starts, apply that answer, or, if the framework
        answered before it asked (an app hook that answers first), the one without an
        account. A denial replaces the app's response, whose body is closed unread (the
        headers the app put on it are kept as :func:`wsgi_send` keeps them), a warning
        amends it. ``inner`` starts its response before it returns the body, as Flask
        (werkzeug) does."""
        pending = self._pending
        environ[MARK_KEY], environ[pending] = self._mark, facts
        denied: list[Response] = []

        def start(
            status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None, /
        ) -> Callable[[bytes], object]:
            answer = environ[pending]
            if answer is facts:
                answer = environ[pending] = self.engine.answer(environ_info(environ, facts))
                environ[DECISION_KEY] = answer.decision
            if answer.response is not None:
                denied.append(answer.response)
                wsgi_send(answer.response, start_response, headers)
                return _discard
            amend = wsgi_amend(answer, start_response) if answer.amends else start_response
            return amend(status, headers, exc_info)

        body = self.inner(environ, start)
        if not denied:
            return body
        getattr(body, "close", _discard)()
        return [denied[-1].body]

    def decide_pending(self, environ: WSGIEnvironment, view: str | None) -> Response | None:
        """Inside the framework's request, routed to ``view``, where the app knows who calls:
        decide a request whose answer waits (an account hook) with the account the hook
        returns (unless ``view`` is exempt); the response to send instead of the view's (a
        denial), or None. None too for a request that is not waiting here (decided further
        out, or already)."""
        facts = environ.get(self._pending)
        if facts.__class__ is not tuple:
            return None
        answer = EXEMPT_VIEW_ANSWER
        if view not in self.exempt_views:
            assert self._account_of is not None
            account = self._account_of()
            peer, method, path = facts
            answer = self.engine.cached(peer, method, path, account) or self.engine.answer(
                environ_info(environ, facts), account=account
            )
        environ[self._pending], environ[DECISION_KEY] = answer, answer.decision
        return answer.response

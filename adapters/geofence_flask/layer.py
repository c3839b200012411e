"""The per-app WSGI layer around ``app.wsgi_app``: it decides each request before Flask sees
it, so that an allowed request costs one decision (a cache hit for a repeated client) and no
Flask hook at all. Every decision is the core engine's."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from contextlib import suppress
from typing import TYPE_CHECKING

from flask import Flask, Response
from werkzeug.routing import Rule

from geofence import Decision, Engine, RequestInfo
from geofence import Response as Denial
from geofence.http._environ import EnvironHeaders
from geofence.http._responses import CACHE_OVERRIDE_HEADERS

from .globals_class import DECISION_KEY, with_decision

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

logger = logging.getLogger("geofence.flask")

EXEMPT_ATTR = "geofence_exempt"

#: ``g.geofence`` in a view marked with ``@geofence.exempt``: the engine was not consulted.
EXEMPT_DECISION = Decision(action="allow", enforced=True, reason="exempt_view")

# PATH_INFO -> routed path (see routed_path). A pure function of the string, remembered because
# computing it costs more than a dictionary lookup, and an app sees few distinct paths.
_routed_paths: dict[str, str] = {}
REMEMBERED_PATHS = 4096
MAX_REMEMBERED_PATH = 1024


def routed_path(raw: str) -> str:
    """``request.path`` as Flask will compute it from PATH_INFO ``raw``: decoded the WSGI way
    (Latin-1 bytes read as UTF-8), with exactly one leading slash. Never raises."""
    path = raw
    if not path.isascii():
        # A string that does not encode is no valid WSGI string: Flask refuses it too, and
        # geofence decides on it as it came.
        with suppress(UnicodeError):
            path = path.encode("latin-1").decode(errors="replace")
    path = "/" + path.lstrip("/")
    if len(raw) <= MAX_REMEMBERED_PATH:
        # Bounded: a flood of distinct paths empties it, it never grows.
        if len(_routed_paths) >= REMEMBERED_PATHS:
            _routed_paths.clear()
        _routed_paths[raw] = path
    return path


def apply_denial(response: Response, denial: Denial) -> Response:
    """Make ``response`` exactly the denial: status, body and the denial's own headers."""
    response.set_data(denial.body)
    response.status_code = denial.status
    headers = response.headers
    for name in CACHE_OVERRIDE_HEADERS:
        headers.remove(name)
    for name, _ in denial.headers:
        headers.remove(name)
    # Last, so that a HEAD answer keeps the GET Content-Length that set_data(b"") replaced.
    headers.extend(denial.headers)
    return response


class GeofenceState:
    """One app's engine and WSGI layer, stored in ``app.extensions["geofence"]``. Its
    :meth:`wsgi` is installed as ``app.wsgi_app`` and calls what ``app.wsgi_app`` was."""

    def __init__(self, app: Flask, engine: Engine, inner: WSGIApplication) -> None:
        self.app = app
        self.engine = engine
        self.inner = inner
        # Mode "off": the engine's constant answer, shown to views without deciding anything.
        self.off_decision = None if engine.active else engine.decide(RequestInfo(peer=None))
        self._globals_class: type[object] = self._install_globals_class()
        # Set at the first request, when the app's setup is over (see _first_request).
        self._exempt_prefixes: tuple[str, ...] | None = None
        self._exempt_endpoints: frozenset[str] = frozenset()
        self._proxy_fix_checked = False

    def wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        """The layer. An allowed request costs the facts from the environ, one decision and
        one environ key; ``g.geofence`` is read from that key only if the app asks for it."""
        prefixes = self._exempt_prefixes
        if prefixes is None:
            prefixes = self._first_request()
        if self.off_decision is not None:
            environ[DECISION_KEY] = self.off_decision
            return self.inner(environ, start_response)
        raw_path: str = environ.get("PATH_INFO") or ""
        path = _routed_paths.get(raw_path) or routed_path(raw_path)
        if prefixes and path.startswith(prefixes) and self._routes_to_exempt_view(environ):
            environ[DECISION_KEY] = EXEMPT_DECISION
            return self.inner(environ, start_response)
        peer = environ.get("REMOTE_ADDR")
        original = environ.get("werkzeug.proxy_fix.orig")
        if original is not None:
            # ProxyFix (outside this layer) rewrote REMOTE_ADDR from X-Forwarded-For; geofence
            # trusts forwarding headers only as its own client_ip settings say, so it starts
            # from the socket peer.
            peer = original.get("REMOTE_ADDR")
            self.check_proxy_fix()
        method: str = environ.get("REQUEST_METHOD", "GET")
        info = RequestInfo(peer or None, EnvironHeaders(environ), method.upper(), path)
        decision = self.engine.decide(info)
        environ[DECISION_KEY] = decision
        if decision.action == "allow":
            return self.inner(environ, start_response)
        denial = self.engine.denial(decision, info)
        if denial is not None:
            return self._deny(environ, start_response, denial)
        if decision.action == "warn":
            start_response = self._warning(start_response, decision)
        return self.inner(environ, start_response)

    def _first_request(self) -> tuple[str, ...]:
        """What can only be known once the app is set up (Flask refuses setup changes after
        its first request): its g class, and where its ``@exempt`` views are."""
        if self.app.app_ctx_globals_class is not self._globals_class:
            # The app set its own g class after installing geofence: extend that one.
            self._globals_class = self._install_globals_class()
        return self._find_exempt_views()

    # -- answers -----------------------------------------------------------------------------

    def _deny(
        self, environ: WSGIEnvironment, start_response: StartResponse, denial: Denial
    ) -> Iterable[bytes]:
        try:
            response = self._through_after_request_hooks(environ, denial)
        except Exception:
            # A failing hook cannot turn the denial into an error page, nor into anything else.
            logger.exception("geofence: an app hook failed on a denial; sending the denial alone")
            response = self.app.response_class()
        # Again, last: other after_request hooks may have touched the denial (e.g. made it
        # cacheable); put back what the core decided, keeping what they added (CORS headers).
        return apply_denial(response, denial)(environ, start_response)

    def _through_after_request_hooks(self, environ: WSGIEnvironment, denial: Denial) -> Response:
        """The denial as the app's own answer would leave it: in the request's context, through
        the app's after_request hooks, session saving and teardown, as Flask does for a
        before_request hook's answer. The view and the before_request hooks never run, and the
        request body is never read."""
        app = self.app
        context = app.request_context(environ)
        error: BaseException | None = None
        try:
            context.push()
            return app.process_response(apply_denial(app.response_class(), denial))
        except BaseException as exc:
            error = exc
            raise
        finally:
            context.pop(error)

    def _warning(self, start_response: StartResponse, decision: Decision) -> StartResponse:
        """``start_response`` adding the warn headers to whatever response leaves the app (error
        pages included), merged with the app's own Cache-Control and Link."""
        headers_for = self.engine.response_headers

        def start(
            status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None, /
        ) -> Callable[[bytes], object]:
            def get(name: str) -> str | None:
                key = name.lower()
                return ", ".join(v for k, v in headers if k.lower() == key) or None

            added = headers_for(decision, get)
            replaced = {name.lower() for name, _ in added}
            kept = [(k, v) for k, v in headers if k.lower() not in replaced]
            return start_response(status, kept + added, exc_info)

        return start

    # -- exempt views ------------------------------------------------------------------------

    def _find_exempt_views(self) -> tuple[str, ...]:
        """Path prefixes of the routes to ``@exempt`` views: only a request under one of them
        can reach one, so only those are routed before deciding."""
        app = self.app
        endpoints = frozenset(
            endpoint
            for endpoint, view in app.view_functions.items()
            if getattr(view, EXEMPT_ATTR, False)
        )
        self._exempt_endpoints = endpoints
        # A rule matches only paths that begin with its text up to the first variable part.
        rules = app.url_map.iter_rules()
        prefixes = tuple({r.rule.split("<", 1)[0] for r in rules if r.endpoint in endpoints})
        self._exempt_prefixes = prefixes
        return prefixes

    def _routes_to_exempt_view(self, environ: WSGIEnvironment) -> bool:
        """Whether Flask will route this request to an ``@exempt`` view: the endpoint matched,
        never the URL text, so a URL that only redirects to an exempt view is decided."""
        app = self.app
        try:
            adapter = app.create_url_adapter(app.request_class(environ))
            if adapter is None:
                return False
            rule, _ = adapter.match(return_rule=True)
        except Exception:  # no route, a redirect, a refused Host: not an exempt view
            return False
        return isinstance(rule, Rule) and rule.endpoint in self._exempt_endpoints

    # -- setup checks ------------------------------------------------------------------------

    def _install_globals_class(self) -> type[object]:
        app = self.app
        app.app_ctx_globals_class = with_decision(app.app_ctx_globals_class)
        return app.app_ctx_globals_class

    def check_proxy_fix(self) -> None:
        if self._proxy_fix_checked:
            return
        self._proxy_fix_checked = True
        trust = self.engine.policy.client_ip
        if not trust.trusted_proxies and trust.hops is None:
            logger.warning(
                "ProxyFix is in front of this app, but geofence uses the socket peer (the "
                "proxy) because GEOFENCE has no client_ip.trusted_proxies or client_ip.hops; "
                "set one of them so that geofence sees the real client"
            )

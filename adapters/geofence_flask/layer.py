"""The WSGI layer around ``app.wsgi_app``: it asks the engine about each request before Flask
sees it, so that a repeated allowed request costs one cache probe and no Flask hook at all.
``g.geofence`` is read from the request's environ when asked, never written per request.
With an account hook, the answer waits for the hook, in a before_request hook (see
:meth:`GeofenceState.decide_in_request`)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from functools import cache
from typing import TYPE_CHECKING, Any, cast

from blinker import Namespace
from flask import Flask, has_request_context, request
from werkzeug.routing import Rule

from geofence import Account, Decision, Engine, Event, RequestInfo
from geofence.http import WSGI_ROUTED_PATHS, Answer, EnvironHeaders, Response, wsgi_amend, wsgi_send

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

logger = logging.getLogger("geofence.flask")

EXEMPT_ATTR = "geofence_exempt"
#: ``g.geofence`` in a view marked with ``@geofence.exempt``: the engine was not consulted.
EXEMPT_DECISION = Decision(action="allow", enforced=True, reason="exempt_view")
EXEMPT_ANSWER = Answer(EXEMPT_DECISION)
# (peer, method, path) of a request whose answer waits for the account hook.
Facts = tuple[str | None, str, str]
#: Every :class:`geofence.Event` of an app's engine, sent with the app as sender and
#: ``event=``. Receivers run on the request's thread; one that raises is logged, and the
#: request and the other receivers go on.
geofence_event = Namespace().signal("geofence-event")
# The mark of the engine that answered the request, for a layer further in (Engine.decided).
MARK_KEY = "geofence.mark"
# In the request's environ, not in ``g``: Flask shares ``g`` between requests when an app
# context is already pushed (tests, CLI, nested apps).
DECISION_KEY = "geofence.decision"


def current_decision() -> Decision | None:
    return cast(
        "Decision | None", request.environ.get(DECISION_KEY) if has_request_context() else None
    )


class DecisionAttribute:
    """Put in front of an app's ``g`` class (``app.app_ctx_globals_class``). A value the app
    assigns to ``g.geofence`` wins: ``__getattr__`` only runs for names the object lacks."""

    def __getattr__(self, name: str) -> Any:
        decision = current_decision() if name == "geofence" else None
        if decision is None:
            return super().__getattr__(name)  # type: ignore[misc]
        return decision

    def get(self, name: str, default: Any = None) -> Any:
        if name == "geofence":
            return getattr(self, name, default)
        return super().get(name, default)  # type: ignore[misc]

    def __contains__(self, item: str) -> bool:
        found: bool = super().__contains__(item)  # type: ignore[misc]
        return found or (item == "geofence" and current_decision() is not None)


@cache
def with_decision(cls: type[Any]) -> type[Any]:
    """``cls`` (an app's ``g`` class) with ``g.geofence``; one class per ``cls``."""
    extended = issubclass(cls, DecisionAttribute)
    return cls if extended else type(cls.__name__, (DecisionAttribute, cls), {})


def send_event(app: Flask, event: Event) -> None:
    """``on_event`` of an app's engine: :data:`geofence_event`, each receiver guarded."""
    for receiver in geofence_event.receivers_for(app):
        try:
            receiver(app, event=event)
        except Exception:
            logger.exception(
                "geofence_event receiver %r failed on a %s event", receiver, event.kind
            )


def _info(environ: WSGIEnvironment, facts: Facts) -> RequestInfo:
    return RequestInfo(facts[0], EnvironHeaders(environ), facts[1], facts[2])


def _discard(*data: bytes) -> None:
    """The ``write`` (and the ``close``) of an app response replaced by a denial."""


class GeofenceState:
    """One policy's WSGI layer on one app: :meth:`wsgi` calls ``inner``, what ``app.wsgi_app``
    was. ``outer``: the state of another policy installed on the app after this one, if any.
    ``account``: the app's account hook, or None."""

    def __init__(
        self,
        app: Flask,
        engine: Engine,
        inner: WSGIApplication,
        account: Callable[[], Any] | None = None,
    ) -> None:
        self.app = app
        self.engine = engine
        self.inner = inner
        self.account = account
        # The environ key of this layer's pending request facts, then of its answer.
        self._pending = f"geofence.pending.{id(self):x}"
        self._mark = engine.mark
        self.outer: GeofenceState | None = None
        app.app_ctx_globals_class = with_decision(app.app_ctx_globals_class)
        # Known at the first request, when the app's setup is over (see _first_request).
        self._exempt_prefixes: tuple[str, ...] | None = None
        self._exempt_endpoints: frozenset[str] = frozenset()
        self._proxy_fix_checked = False

    def wsgi(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self._exempt_prefixes is None:
            self._first_request()
        path = WSGI_ROUTED_PATHS[environ.get("PATH_INFO") or ""]
        peer = environ.get("REMOTE_ADDR") or None
        original = environ.get("werkzeug.proxy_fix.orig")
        if original is not None:
            # ProxyFix (outside this layer) rewrote REMOTE_ADDR from X-Forwarded-For; geofence
            # trusts forwarding headers only as its own client_ip settings say, so it starts
            # from the socket peer.
            peer = original.get("REMOTE_ADDR") or None
            self.check_proxy_fix()
        method: str = environ.get("REQUEST_METHOD") or "GET"
        # With an account hook, the answer waits for the app to say who is calling.
        answer = self.engine.cached(peer, method, path) if self.account is None else None
        if answer is None:
            mark = environ.get(MARK_KEY)
            if mark is not None and self.engine.decided(mark):
                # A layer further out with this same policy answered (a geofenced app mounted
                # in another) and left its decision for g.geofence.
                return self.inner(environ, start_response)
            if self.account is not None:
                facts = (peer, method.upper(), path)
                return self._with_account(environ, start_response, facts)
            prefixes = self._exempt_prefixes
            if prefixes and path.startswith(prefixes) and self._routes_to_exempt_view(environ):
                environ[DECISION_KEY] = EXEMPT_DECISION
                return self.inner(environ, start_response)
            environ[MARK_KEY] = self.engine.mark
            info = RequestInfo(peer, EnvironHeaders(environ), method.upper(), path)
            answer = self.engine.answer(info)
            if answer.response is not None:
                environ[DECISION_KEY] = answer.decision
                return self._deny(environ, start_response, answer.response)
            if answer.amends:
                start_response = wsgi_amend(answer, start_response)
        environ[DECISION_KEY] = answer.decision
        return self.inner(environ, start_response)

    def _first_request(self) -> None:
        # What can only be known once the app is set up (Flask refuses setup changes after its
        # first request): its g class, and where its @exempt views are.
        app = self.app
        # Again: the app may have set its own g class after installing geofence.
        app.app_ctx_globals_class = with_decision(app.app_ctx_globals_class)
        views = app.view_functions.items()
        self._exempt_endpoints = frozenset(e for e, v in views if getattr(v, EXEMPT_ATTR, False))
        # Only a request under one of these can reach an exempt view, so only those are routed
        # before deciding: a rule matches only paths that begin with its text up to the first
        # variable part.
        rules = (r for r in app.url_map.iter_rules() if r.endpoint in self._exempt_endpoints)
        self._exempt_prefixes = tuple({r.rule.split("<", 1)[0] for r in rules})
        if self.account is not None:  # after the app's own before_request hooks: they log in
            hooks = app.before_request_funcs.setdefault(None, [])
            hooks[:] = [h for h in hooks if h != self.decide_in_request] + [self.decide_in_request]

    def _with_account(
        self, environ: WSGIEnvironment, start_response: StartResponse, facts: Facts
    ) -> Iterable[bytes]:
        """Flask runs; :meth:`decide_in_request` decides with the account. The response is what
        the answer says: a denial replaces it (keeping what hooks add, as in :meth:`_deny`),
        a warning amends it. If an app hook answered first, decide without an account."""
        environ[MARK_KEY], environ[self._pending] = self._mark, facts

        def start(
            status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None, /
        ) -> Callable[[bytes], object]:
            answer = environ[self._pending]
            if answer is facts:
                answer = environ[self._pending] = self.engine.answer(_info(environ, facts))
                environ[DECISION_KEY] = answer.decision
            if answer.response is not None:
                wsgi_send(answer.response, start_response, headers)
                return _discard
            amend = wsgi_amend(answer, start_response) if answer.amends else start_response
            return amend(status, headers, exc_info)

        body = self.inner(environ, start)
        denial = getattr(environ[self._pending], "response", None)
        if denial is None:
            return body
        getattr(body, "close", _discard)()
        return [denial.body]

    def decide_in_request(self) -> Any:
        """before_request, after the app's own: decide with the account hook's answer. A hook
        that raises is logged (with its traceback); the request is decided without one."""
        environ = request.environ
        facts = environ.get(self._pending)
        if facts.__class__ is not tuple:
            return None  # not pending here: decided further out, or already
        answer = EXEMPT_ANSWER
        if not self._exempt_endpoints or request.endpoint not in self._exempt_endpoints:
            try:
                account = self.account()  # type: ignore[misc]
            except Exception:
                logger.exception("the account hook failed; deciding without an account")
                account = None
            # (Engine.cached takes an Account only; answer() also takes an id string.)
            known = account is None or isinstance(account, Account)
            peer, method, path = facts
            cached = self.engine.cached(peer, method, path, account) if known else None
            answer = cached or self.engine.answer(_info(environ, facts), account=account)
        environ[self._pending], environ[DECISION_KEY] = answer, answer.decision
        sent = answer.response
        return sent and self.app.response_class(sent.body, sent.status, sent.headers)

    def _routes_to_exempt_view(self, environ: WSGIEnvironment) -> bool:
        """Whether Flask will route this request to an ``@exempt`` view: the endpoint matched,
        never the URL text, so a URL that only redirects to an exempt view is decided."""
        app = self.app
        try:
            adapter = app.create_url_adapter(app.request_class(environ))
            rule, _ = adapter.match(return_rule=True)  # type: ignore[union-attr]
        except Exception:  # no route, a redirect, a refused Host: not an exempt view
            return False
        return isinstance(rule, Rule) and rule.endpoint in self._exempt_endpoints

    def _deny(
        self, environ: WSGIEnvironment, start_response: StartResponse, denial: Response
    ) -> Iterable[bytes]:
        """The denial, sent as Flask sends a before_request hook's answer: through after_request
        hooks, session saving and teardown. What hooks add stays (CORS); what they change not."""
        app = self.app
        try:
            with app.request_context(environ):  # teardown sees a hook's exception
                response = app.response_class(denial.body, denial.status, list(denial.headers))
                kept = app.process_response(response).headers.to_wsgi_list()
        except Exception:
            # A failing hook cannot turn the denial into an error page, nor into anything else.
            logger.exception("an app hook failed on a denial; sending the denial alone")
            kept = []
        return wsgi_send(denial, start_response, kept)

    def check_proxy_fix(self) -> None:
        trust = self.engine.policy.client_ip
        if not self._proxy_fix_checked and not trust.trusted_proxies and trust.hops is None:
            logger.warning(
                "ProxyFix is in front of this app, but geofence uses the socket peer (the "
                "proxy) because GEOFENCE has no client_ip.trusted_proxies or client_ip.hops; "
                "set one of them so that geofence sees the real client"
            )
        self._proxy_fix_checked = True

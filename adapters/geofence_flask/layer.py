"""The WSGI layer around ``app.wsgi_app``: the core's :class:`geofence.http._wsgi.WSGIGate` (it
decides each request before Flask sees it: a repeated allowed request runs no Flask hook at
all), with what only Flask knows: ``@exempt`` views, ``after_request`` hooks on a denial,
``g.geofence`` (read from the environ when asked), the account hook in a before_request hook."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from functools import cache
from typing import TYPE_CHECKING, Any, cast

from blinker import Namespace
from flask import Flask, has_request_context, request
from werkzeug.routing import Rule

from geofence import Decision, Engine, Event
from geofence.http import Response, wsgi_send
from geofence.http._answer import EXEMPT_VIEW
from geofence.http._exempt import is_exempt, literal_prefixes
from geofence.http._hooks import send_guarded
from geofence.http._wsgi import DECISION_KEY, WSGIGate

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

logger = logging.getLogger("geofence.flask")

#: ``g.geofence`` in a view marked with ``@geofence.exempt``: the engine was not consulted.
EXEMPT_DECISION: Decision = EXEMPT_VIEW
#: Every :class:`geofence.Event` of an app's engine, sent with the app as sender and
#: ``event=``. Receivers run on the request's thread; one that raises is logged, and the
#: request and the other receivers go on.
geofence_event = Namespace().signal("geofence-event")


def current_decision() -> Decision | None:
    # In the request's environ, not in ``g``: Flask shares ``g`` between requests when an app
    # context is already pushed (tests, CLI, nested apps).
    environ = request.environ if has_request_context() else {}
    return cast("Decision | None", environ.get(DECISION_KEY))


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
    send_guarded(geofence_event.receivers_for(app), event, logger, app)


class GeofenceState(WSGIGate):
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
        super().__init__(engine, inner, account, logger=logger)
        self.app = app
        self.outer: GeofenceState | None = None
        app.app_ctx_globals_class = with_decision(app.app_ctx_globals_class)

    def ready(self) -> None:
        # What can only be known once the app is set up (Flask refuses setup changes after its
        # first request): its g class, and where its @exempt views are.
        app = self.app
        # Again: the app may have set its own g class after installing geofence.
        app.app_ctx_globals_class = with_decision(app.app_ctx_globals_class)
        self.exempt_views = frozenset(e for e, v in app.view_functions.items() if is_exempt(v))
        # Only a request under one of these can reach an exempt view, so only those are routed
        # before deciding: a rule matches only paths that begin with its text up to the first
        # variable part.
        marked = (r.rule for r in app.url_map.iter_rules() if r.endpoint in self.exempt_views)
        self.exempt_prefixes = literal_prefixes(marked, "<")
        if self.account is not None:  # after the app's own before_request hooks: they log in
            hooks = app.before_request_funcs.setdefault(None, [])
            hooks[:] = [h for h in hooks if h != self.decide_in_request] + [self.decide_in_request]

    def decide_in_request(self) -> Any:
        """before_request, after the app's own: :meth:`decide_pending` with the account hook;
        its denial is this hook's answer, so after_request hooks see it (as in :meth:`deny`)."""
        # (request.endpoint is a lookup through a context proxy: only when it can matter.)
        sent = self.decide_pending(request.environ, request.endpoint if self.exempt_views else None)
        return sent and self.app.response_class(sent.body, sent.status, sent.headers)

    def routed_view(self, environ: WSGIEnvironment) -> str | None:
        """The endpoint Flask will route this request to, never the URL text: a URL that only
        redirects to an ``@exempt`` view is decided."""
        app = self.app
        try:
            adapter = app.create_url_adapter(app.request_class(environ))
            rule, _ = adapter.match(return_rule=True)  # type: ignore[union-attr]
        except Exception:  # no route, a redirect, a refused Host: not an exempt view
            return None
        return rule.endpoint if isinstance(rule, Rule) else None

    def deny(
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

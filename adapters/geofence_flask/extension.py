"""The Flask extension: translates a Flask request into :class:`geofence.RequestInfo` and the
engine's answer back into a Flask response. Every decision is the core engine's."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from flask import Flask, Request, Response, g, request

from geofence import ConfigError, Decision, Engine, Policy, RequestInfo, load_policy
from geofence import Response as Denial
from geofence.responses import CACHE_OVERRIDE_HEADERS
from geofence.wsgi import EnvironHeaders

Config = Mapping[str, Any] | str | os.PathLike[str] | Policy
View = TypeVar("View", bound=Callable[..., Any])

logger = logging.getLogger("geofence.flask")

# Per-request data lives in the WSGI environ, not in ``g``: ``g`` belongs to the app context,
# which Flask reuses across requests when one is already pushed (tests, CLI, nested apps).
DECISION_KEY = "geofence.decision"
DENIAL_KEY = "geofence.denial"
EXEMPT_ATTR = "geofence_exempt"

#: ``g.geofence`` in a view marked with ``@geofence.exempt``: the engine was not consulted.
EXEMPT_DECISION = Decision(action="allow", enforced=True, reason="exempt_view")


def _apply(response: Response, denial: Denial) -> Response:
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
    """One app's engine and request hooks, stored in ``app.extensions["geofence"]``."""

    def __init__(self, app: Flask, engine: Engine) -> None:
        self.app = app
        self.engine = engine
        # Mode "off": the engine's constant answer, shown to views without deciding anything.
        self.off_decision = None if engine.active else engine.decide(RequestInfo(peer=None))
        self._proxy_fix_checked = False

    def before_request(self) -> Response | None:
        if self.off_decision is not None:
            g.geofence = self.off_decision
            return None
        # One context lookup instead of one per attribute: this runs on every request.
        req: Request = request._get_current_object()  # type: ignore[attr-defined]
        endpoint = req.endpoint
        if endpoint is not None:
            # The matched endpoint, never the path: a URL spelled differently cannot reach or
            # dodge an exempt view.
            view = self.app.view_functions.get(endpoint)
            if getattr(view, EXEMPT_ATTR, False):
                g.geofence = EXEMPT_DECISION
                return None
        environ = req.environ
        peer = environ.get("REMOTE_ADDR")
        host = environ.get("HTTP_HOST", "")
        original = environ.get("werkzeug.proxy_fix.orig")
        if original is not None:
            # ProxyFix rewrote REMOTE_ADDR from X-Forwarded-For; geofence trusts forwarding
            # headers only as its own client_ip settings say, so it starts from the socket peer.
            peer = original.get("REMOTE_ADDR")
            host = original.get("HTTP_HOST") or ""
            self._check_proxy_fix()
        info = RequestInfo(
            peer=peer or None,
            headers=EnvironHeaders(environ),
            method=req.method,
            path=req.path,
            host=host,
        )
        decision = self.engine.decide(info)
        # Through the real object: each write via the `g` proxy costs a context lookup.
        g._get_current_object().geofence = decision
        environ[DECISION_KEY] = decision
        denial = self.engine.denial(decision, info)
        if denial is None:
            return None
        environ[DENIAL_KEY] = denial
        return _apply(self.app.response_class(), denial)

    def after_request(self, response: Response) -> Response:
        environ = request.environ
        denial: Denial | None = environ.get(DENIAL_KEY)
        if denial is not None:
            # Other after_request hooks ran before this one and may have touched the denial
            # (e.g. made it cacheable); put back what the core decided.
            return _apply(response, denial)
        decision: Decision | None = environ.get(DECISION_KEY)
        if decision is not None and decision.action == "warn":  # only warnings add headers
            headers = response.headers
            for name, value in self.engine.response_headers(
                decision, lambda key: ", ".join(headers.getlist(key)) or None
            ):
                headers[name] = value
        return response

    def _check_proxy_fix(self) -> None:
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


class Geofence:
    """Flask extension: ``Geofence(app)``, or ``geofence = Geofence()`` then
    ``geofence.init_app(app)`` in an application factory (one object can serve several apps).

    The policy is ``config`` when given, else ``app.config["GEOFENCE"]`` (a dict, or the path
    of a ``.toml`` / ``.json`` file). A bad policy raises :class:`geofence.ConfigError` from
    ``init_app``.
    """

    def __init__(self, app: Flask | None = None, *, config: Config | None = None) -> None:
        self.config = config
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        config = self.config if self.config is not None else app.config.get("GEOFENCE")
        if config is None:
            raise ConfigError(
                "GEOFENCE",
                "no geofence configuration: set app.config['GEOFENCE'] to a dict or to the "
                "path of a .toml or .json file, or pass Geofence(app, config=...)",
            )
        policy = config if isinstance(config, Policy) else load_policy(config)
        existing: GeofenceState | None = app.extensions.get("geofence")
        if existing is not None:
            if existing.engine.policy == policy:
                return  # Installed twice with one policy: keep one set of hooks, decide once.
            raise ConfigError(
                "GEOFENCE",
                "geofence is already installed on this app with a different policy; install "
                "it once (Geofence(app) or Geofence().init_app(app), not both)",
            )
        state = GeofenceState(app, Engine.from_config(policy))
        # Registered through the public decorators (which refuse an app that already served a
        # request), then moved to the front: geofence runs before every other before_request
        # hook (a blocked request never reaches a hook that reads the body, e.g. a CSRF check),
        # and its after_request hook runs last (hooks run in reverse order), so it sees the
        # response that actually leaves the app.
        app.before_request(state.before_request)
        before = app.before_request_funcs[None]
        before.insert(0, before.pop())
        app.after_request(state.after_request)
        after = app.after_request_funcs[None]
        after.insert(0, after.pop())
        # Only once the hooks are in: a half-installed extension must not look installed.
        app.extensions["geofence"] = state

    def exempt(self, view: View) -> View:
        """Mark a view (app or blueprint) as outside the policy: no decision is made for it and
        ``g.geofence`` is :data:`EXEMPT_DECISION`. Put it below or above ``@app.route``."""
        view.geofence_exempt = True  # type: ignore[attr-defined]
        return view

"""The Flask extension: it installs the WSGI layer of ``layer.py`` around ``app.wsgi_app``."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, TypeVar

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from geofence import ConfigError, Engine, Policy, load_policy
from geofence.http._exempt import exempt
from geofence.http._hooks import SignalSender

from .layer import GeofenceState, geofence_event, send_event

Config = Mapping[str, Any] | str | os.PathLike[str] | Policy
View = TypeVar("View", bound=Callable[..., Any])


class Geofence:
    """``Geofence(app)``, or ``Geofence().init_app(app)`` (one object can serve several apps).
    The policy is ``config``, else ``app.config["GEOFENCE"]``; a bad one raises ConfigError.
    Installed again with the same policy, nothing changes; with another, both apply.

    ``account``: ``fn() -> Account | None`` (an id string is taken as ``Account(id)``), called
    for each request inside its request context, in a before_request hook that runs after the
    app's own (app-level) ones, so it can read ``flask.g`` or flask-login's ``current_user``.
    When it raises, the error is logged with its traceback and the request is decided without
    an account (never a 500 for it). Engine events are the signal
    :data:`geofence_flask.geofence_event`."""

    def __init__(
        self,
        app: Flask | None = None,
        *,
        config: Config | None = None,
        account: Callable[[], Any] | None = None,
    ) -> None:
        self.config = config
        self.account = account
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask, *, account: Callable[[], Any] | None = None) -> None:
        account = account if account is not None else self.account
        config = self.config if self.config is not None else app.config.get("GEOFENCE")
        if config is None:
            raise ConfigError(
                "GEOFENCE",
                "no geofence configuration: set app.config['GEOFENCE'] to a dict or to the path "
                "of a .toml or .json file, or pass Geofence(app, config=...)",
            )
        policy = config if isinstance(config, Policy) else load_policy(config)
        last = state = app.extensions.get("geofence")
        while state is not None:
            if state.engine.policy == policy:  # the rule of Engine.decided
                if account is not None and account is not state.account:
                    raise ConfigError("account", "geofence is already installed on this app")
                return
            last, state = state, state.outer
        if app._got_first_request:
            # Like Flask's own setup methods: installed now, it would apply to some requests
            # (threads already serving) and not others.
            raise AssertionError(
                "geofence cannot be installed on an app that has already handled a request; "
                "install it while setting the app up, where before_request hooks are registered"
            )
        behind_proxy_fix = _check_wrapped(app)
        events = SignalSender(
            partial(send_event, app), partial(geofence_event.has_receivers_for, app)
        )
        engine = Engine.from_config(policy, on_event=events)
        state = GeofenceState(app, engine, app.wsgi_app, account)
        if behind_proxy_fix:
            state.check_proxy_fix()
        # Only once the engine is built: a half-installed extension must not look installed.
        app.wsgi_app = state.wsgi  # type: ignore[method-assign]
        if last is not None:  # another policy: it applies too, and decides first
            last.outer = state
        app.extensions.setdefault("geofence", state)

    def exempt(self, view: View) -> View:
        """Mark a view (app or blueprint) as outside the policy: no decision is made for it and
        ``g.geofence`` is :data:`EXEMPT_DECISION`. Put it below or above ``@app.route``."""
        return exempt(view)


def _check_wrapped(app: Flask) -> bool:
    """Whether ProxyFix wraps ``app.wsgi_app``. Other middleware is refused: it would run after
    the decision and may change the request Flask routes (a mount moves the path to SCRIPT_NAME);
    ProxyFix changes only the client address (geofence reads the peer), host and SCRIPT_NAME."""
    inner: Any = app.wsgi_app
    proxy_fix = False
    while (owner := getattr(inner, "__self__", None)) is not app:
        if isinstance(inner, ProxyFix):
            inner, proxy_fix = inner.app, True
        elif isinstance(owner, GeofenceState) and owner.app is app:
            inner = owner.inner
        else:
            raise ConfigError(
                "app.wsgi_app",
                f"already wrapped by {type(inner).__name__}; install geofence first "
                "(Geofence(app) or init_app(app) before wrapping app.wsgi_app), so that it "
                "decides on the request as Flask routes it",
            )
    return proxy_fix

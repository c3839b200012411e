"""System checks: ``manage.py check`` reports what would stop the server from starting."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Info, Warning
from django.template import TemplateDoesNotExist
from django.template.loader import get_template

from .conf import (
    ACCOUNT_SETTING,
    AccountHookError,
    PolicyError,
    SettingError,
    account_hook,
    get_engine,
)
from .responses import SHIPPED_TEMPLATE, TEMPLATE

MIDDLEWARE = "geofence_django.middleware.GeofenceMiddleware"
AUTHENTICATION = "django.contrib.auth.middleware.AuthenticationMiddleware"


def check_geofence(
    app_configs: Sequence[AppConfig] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    try:
        get_engine()
    except SettingError as error:
        messages.append(Error(str(error), id="geofence_django.E001"))
    except PolicyError as error:
        messages.append(
            Error(
                str(error.config_error),
                hint="Fix this key in settings.GEOFENCE (or in the policy file it names); "
                "the server refuses to start until then. `geofence check IP --config FILE` "
                "tries a policy file from the command line.",
                id="geofence_django.E002",
            )
        )
    messages.extend(_check_account_hook())
    if MIDDLEWARE not in getattr(settings, "MIDDLEWARE", ()):
        messages.append(
            Warning(
                "geofence_django is installed but its middleware is not in MIDDLEWARE, so no "
                "request is checked.",
                hint=f'Add "{MIDDLEWARE}" to MIDDLEWARE, right after SecurityMiddleware.',
                id="geofence_django.W001",
            )
        )
    try:
        template = get_template(TEMPLATE)
    except TemplateDoesNotExist:
        pass  # the middleware then sends the core's default page
    except Exception as error:
        messages.append(
            Warning(
                f"The block page template {TEMPLATE!r} cannot be loaded: {error}",
                hint="Blocked browsers get the default page until the template is fixed.",
                id="geofence_django.W002",
            )
        )
    else:
        messages.extend(_check_page_template(getattr(template, "origin", None)))
    return messages


def _check_page_template(origin: object) -> list[CheckMessage]:
    """I001: both a project's own geofence/blocked.html and ``[page] template``: say which one
    blocked browsers see, since only one can be the page."""
    name = getattr(origin, "name", None)
    try:
        page_template = get_engine().policy.page.template_path
    except (SettingError, PolicyError):
        return []  # reported above
    if page_template is None or name is None or name == SHIPPED_TEMPLATE:
        return []
    return [
        Info(
            f"Blocked browsers get the project's {TEMPLATE!r} ({name}), not the [page] "
            f"template {page_template!r} of settings.GEOFENCE.",
            hint="The project template gets that page as {{ default_page }}; print it there, "
            f"or remove the project's {TEMPLATE!r} to serve the [page] template as it is.",
            id="geofence_django.I001",
        )
    ]


def _check_account_hook() -> list[CheckMessage]:
    """E003 / E004: GEOFENCE_ACCOUNT does not import / is not callable (the server refuses to
    start). W003: the middleware runs before AuthenticationMiddleware, so a hook that reads
    ``request.user`` fails on every request (logged, and the request is decided without its
    account). A warning, not an error: a hook that reads an API key from a header needs no
    ``request.user``; silence it then with SILENCED_SYSTEM_CHECKS."""
    try:
        if account_hook() is None:
            return []
    except AccountHookError as error:
        hint = f"Set {ACCOUNT_SETTING} to the dotted path of a function request -> Account | None."
        return [Error(str(error), hint=hint, id=error.check_id)]
    middleware = list(getattr(settings, "MIDDLEWARE", ()))
    if (
        MIDDLEWARE in middleware
        and AUTHENTICATION in middleware
        and middleware.index(MIDDLEWARE) < middleware.index(AUTHENTICATION)
    ):
        return [
            Warning(
                f"{MIDDLEWARE} comes before {AUTHENTICATION} in MIDDLEWARE, but "
                f"{ACCOUNT_SETTING} is set: request.user does not exist yet when the account "
                "hook runs.",
                hint=f"Move {MIDDLEWARE} after {AUTHENTICATION} (requests from blocked regions "
                "then still never reach a view). If the hook does not read request.user, add "
                '"geofence_django.W003" to SILENCED_SYSTEM_CHECKS.',
                id="geofence_django.W003",
            )
        ]
    return []

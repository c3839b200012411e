"""System checks: ``manage.py check`` reports what would stop the server from starting."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning
from django.template import TemplateDoesNotExist
from django.template.loader import get_template

from .conf import PolicyError, SettingError, get_engine

MIDDLEWARE = "geofence_django.middleware.GeofenceMiddleware"
TEMPLATE = "geofence/blocked.html"


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
        get_template(TEMPLATE)
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
    return messages

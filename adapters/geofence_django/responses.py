"""The core's response as Django's: :func:`django_response`, the one Django-specific step of
a denial. A block page comes from the overridable template ``geofence/blocked.html`` (a
project's own, or the shipped one, which prints the core's page).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from django.http import HttpResponse
from django.template import TemplateDoesNotExist
from django.template.loader import get_template
from django.utils.safestring import SafeString

from geofence.http import TEMPLATE_CSP, Answer

TEMPLATE = "geofence/blocked.html"
SHIPPED_TEMPLATE = str(Path(__file__).with_name("templates") / "geofence" / "blocked.html")

logger = logging.getLogger("geofence.django")


def django_response(answer: Answer) -> HttpResponse:
    """The engine's response as Django's; an HTML page comes from the template."""
    sent = answer.response
    assert sent is not None
    response = HttpResponse(sent.body, status=sent.status)
    for name, value in sent.headers:
        response[name] = value
    if sent.html:
        # HEAD: no body, but the headers (Content-Length included) of the GET answer.
        default = sent.page
        page = _page(sent.context, default)
        if sent.body:
            response.content = page
        response["Content-Length"] = str(len(page))
        if page != default:
            # The core's CSP allows only its own page's style sheet (by hash).
            response["Content-Security-Policy"] = TEMPLATE_CSP
    return response


def _page(context: Mapping[str, object], default: bytes) -> bytes:
    """The block page from the overridable template, or the core's page if it fails.

    Which page: a project's own ``geofence/blocked.html`` (context: status, code, message,
    info_url, ref, lang, dir, heading, ... and ``default_page``), else the shipped one,
    which is the core's page: ``[page] template`` when set, else the built-in page."""
    try:
        template = get_template(TEMPLATE)
        # Every backend's template has an origin (a backend outside Django may not).
        origin = getattr(template, "origin", None)
        if getattr(origin, "name", None) == SHIPPED_TEMPLATE:
            return default  # it prints default_page: nothing to render per request
        values = {**context, "default_page": SafeString(default.decode())}
        return template.render(values).encode()
    except TemplateDoesNotExist:
        return default  # geofence_django not in INSTALLED_APPS: the default page
    except Exception:
        # A broken override (system check W002): still block, with the core's page,
        # rather than fail the request.
        logger.exception("cannot render %s; sending the default block page", TEMPLATE)
        return default

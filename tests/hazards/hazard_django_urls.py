"""URLconf of the hazard drivers' Django app: one catch-all view answering APP_*."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import re_path
from hazard_drivers import APP_BODY, APP_HEADERS

# request.geofence as each call of the view saw it (the driver clears it per request).
SEEN: list[object] = []


def catch_all(request: HttpRequest, path: str = "") -> HttpResponse:
    SEEN.append(getattr(request, "geofence", None))
    response = HttpResponse(b"" if request.method == "HEAD" else APP_BODY, status=200)
    for name, value in APP_HEADERS:
        response[name] = value
    return response


# [\s\S]: hostile paths contain CR and LF, which "." would not match.
urlpatterns = [re_path(r"^(?P<path>[\s\S]*)$", catch_all)]

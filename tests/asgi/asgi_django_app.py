"""Django's own ASGI handler wrapped in the ASGI middleware, for test_asgi_server.py.

(Django projects normally use geofence_django; this shows the ASGI adapter also fronts Django,
e.g. around a Channels router.) The policy comes from GEOFENCE_TEST_CONFIG (JSON).
"""

from __future__ import annotations

import json
import os

from django.conf import settings
from django.core.asgi import get_asgi_application
from django.http import HttpRequest, JsonResponse
from django.urls import re_path

from geofence_asgi import GeofenceMiddleware

settings.configure(
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    SECRET_KEY="only-for-tests",
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
)


def view(request: HttpRequest) -> JsonResponse:
    decision = request.scope["state"]["geofence"]  # type: ignore[attr-defined]
    document = {
        "path_info": request.path_info,
        "reason": decision.reason,
        "country": decision.country,
    }
    return JsonResponse(document)


urlpatterns = [re_path(r"", view)]

# get_asgi_application() runs django.setup().
application = GeofenceMiddleware(
    get_asgi_application(), config=json.loads(os.environ["GEOFENCE_TEST_CONFIG"])
)

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse


def models(request: HttpRequest) -> JsonResponse:
    """An API endpoint: blocked clients get a JSON error instead."""
    decision = request.geofence  # type: ignore[attr-defined]
    return JsonResponse({"models": ["small", "large"], "geofence": decision.action})


def home(request: HttpRequest) -> HttpResponse:
    """A web page: blocked browsers get the block page instead."""
    return HttpResponse("<!doctype html><title>Home</title><h1>Welcome</h1>")


def healthz(request: HttpRequest) -> HttpResponse:
    return HttpResponse("ok", content_type="text/plain")

"""Views marked with ``geofence_django.exempt`` next to views that are not (test_django_exempt)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import include, path, re_path
from django.utils.decorators import method_decorator
from django.views import View

from geofence_django import exempt


def _seen(request: HttpRequest) -> HttpResponse:
    decision = getattr(request, "geofence", None)
    return HttpResponse(decision.reason if decision is not None else "-")


@exempt
def health(request: HttpRequest) -> HttpResponse:
    return _seen(request)


@exempt
async def async_health(request: HttpRequest) -> HttpResponse:
    return _seen(request)


def status(request: HttpRequest, n: int) -> HttpResponse:
    return _seen(request)


def neighbour(request: HttpRequest, **kwargs: object) -> HttpResponse:
    return _seen(request)


def ping(request: HttpRequest) -> HttpResponse:
    return _seen(request)


def legacy(request: HttpRequest, n: str) -> HttpResponse:
    return _seen(request)


async def async_neighbour(request: HttpRequest) -> HttpResponse:
    return _seen(request)


@method_decorator(exempt, name="dispatch")
class DispatchExempt(View):
    def get(self, request: HttpRequest) -> HttpResponse:
        return _seen(request)


@exempt
class ClassExempt(View):
    def get(self, request: HttpRequest) -> HttpResponse:
        return _seen(request)


class Plain(View):
    def get(self, request: HttpRequest) -> HttpResponse:
        return _seen(request)


# (exempt() marks the function itself: wherever else it is routed, it is exempt too.)
urlpatterns = [
    path("health/", health),
    path("ahealth/", async_health),
    path("v1/status/<int:n>/", exempt(status)),
    path("v1/models", neighbour),
    path("v1/amodels", async_neighbour),
    path("cbv/dispatch/", DispatchExempt.as_view()),
    path("cbv/class/", ClassExempt.as_view()),
    path("cbv/urlconf/", exempt(Plain.as_view())),
    path("cbv/plain/", Plain.as_view()),
    path("api/", include([path("ping", exempt(ping)), path("pong", neighbour)])),
    re_path(r"^legacy/(?P<n>[0-9]+)$", exempt(legacy)),
]

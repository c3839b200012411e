from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("v1/models", views.models),
    path("web/home", views.home),
    path("healthz", views.healthz),
]

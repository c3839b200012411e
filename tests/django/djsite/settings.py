"""A minimal Django project for the adapter tests, in process and behind real servers.

The policy comes from the DJSITE_GEOFENCE environment variable (path to a .json / .toml
file) for the servers; in-process tests set GEOFENCE with override_settings.
"""

from __future__ import annotations

import os

SECRET_KEY = "geofence-tests-only"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
INSTALLED_APPS = ["geofence_django"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "geofence_django.middleware.GeofenceMiddleware",
]
# DJSITE_ASYNC=1 serves the async view, so Django's ASGI handler runs an all-async chain.
ROOT_URLCONF = "djsite.urls_async" if os.environ.get("DJSITE_ASYNC") else "djsite.urls"
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
DATABASES: dict[str, object] = {}
if "DJSITE_GEOFENCE" in os.environ:
    GEOFENCE = os.environ["DJSITE_GEOFENCE"]

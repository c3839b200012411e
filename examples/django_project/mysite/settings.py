"""Settings of the example project: only what geofence needs, plus Django's minimum."""

from __future__ import annotations

from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = "example-only-not-secret"
DEBUG = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "geofence_django",  # system checks (manage.py check) and the geofence/blocked.html template
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Early: before anything that reads the body, the session or the user.
    "geofence_django.middleware.GeofenceMiddleware",
    "django.middleware.common.CommonMiddleware",
]

ROOT_URLCONF = "mysite.urls"
WSGI_APPLICATION = "mysite.wsgi.application"
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
DATABASES: dict[str, dict[str, str]] = {}
USE_TZ = True

# The policy: a dict, or the path of a .toml / .json file.
GEOFENCE = str(BASE_DIR / "geofence.toml")

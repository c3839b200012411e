"""Django for the adapter tests: the djsite project, without pytest-django."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

pytest.importorskip("django")

import django
from django.conf import settings
from django.test.utils import override_settings

# djsite is imported by name (DJANGO_SETTINGS_MODULE, ROOT_URLCONF): tests/django is on pytest's
# pythonpath (pyproject.toml).
if not settings.configured:
    os.environ["DJANGO_SETTINGS_MODULE"] = "djsite.settings"
    django.setup()

from djsite import settings as site_settings
from djsite import views

# Re-applied around every test in case another suite in this process configured Django first.
SITE = {
    name: getattr(site_settings, name)
    for name in ("INSTALLED_APPS", "MIDDLEWARE", "ROOT_URLCONF", "TEMPLATES", "ALLOWED_HOSTS")
}


@pytest.fixture(autouse=True)
def djsite() -> Iterator[None]:
    views.SEEN.clear()
    differing = {k: v for k, v in SITE.items() if getattr(settings, k, None) != v}
    with override_settings(**differing):
        yield

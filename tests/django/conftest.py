"""Django for the adapter tests: the djsite project, without pytest-django."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("django.conf")  # not "django": tests/django shadows a missing one

import django
from django.conf import settings
from django.test.utils import override_settings

HERE = Path(__file__).parent
# djsite is imported by name (settings, ROOT_URLCONF), whatever pytest's import mode.
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

if not settings.configured:
    os.environ["DJANGO_SETTINGS_MODULE"] = "djsite.settings"
    django.setup()

from djsite import settings as site_settings  # noqa: E402
from djsite import views  # noqa: E402

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

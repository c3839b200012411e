"""The testing kit: geofence.testing.Kit without pytest, and the pytest plugin run by pytester
on generated user projects (Flask, Django, Starlette) in subprocesses, as a user runs them."""

from __future__ import annotations

import textwrap
from datetime import datetime, timezone
from typing import Any

import pytest

import geofence
from geofence import RequestInfo
from geofence.testing import Kit

POLICY = {"rules": [{"name": "unsupported-regions", "action": "block", "regions": ["CN", "RU"]}]}


def test_pretend_reaches_engines_built_before_and_during() -> None:
    before = geofence.Engine.from_config(POLICY)
    assert before.decide(RequestInfo(peer="127.0.0.1")).reason == "private"
    with Kit() as kit:
        kit.pretend(country="CN")
        during = geofence.Engine.from_config(POLICY)
        for engine in (before, during):
            for peer in ("127.0.0.1", "testclient", "8.8.8.8"):
                decision = engine.decide(RequestInfo(peer=peer))
                assert (decision.action, decision.country) == ("block", "CN"), peer
        assert len(kit.decisions) == 6
        kit.pretend(country="GB")
        assert before.decide(RequestInfo(peer="8.8.8.8")).action == "allow"
    # Nothing stays: the real answers again, and no more recording.
    assert before.decide(RequestInfo(peer="127.0.0.1")).reason == "private"
    assert before.decide(RequestInfo(peer="175.16.199.1")).action == "block"
    assert len(kit.decisions) == 7


def test_table_places_only_its_networks() -> None:
    engine = geofence.Engine.from_config(POLICY)
    with Kit() as kit:
        kit.table({"203.0.113.0/24": "CN", "2001:db8::/32": ("RU", ["RU-MOW"], ["vpn"])})
        assert engine.decide(RequestInfo(peer="203.0.113.9")).country == "CN"
        moscow = engine.decide(RequestInfo(peer="2001:db8::1"))
        assert (moscow.country, moscow.subdivisions, moscow.anonymizers) == (
            "RU",
            ("RU-MOW",),
            ("vpn",),
        )
        assert engine.decide(RequestInfo(peer="8.8.8.8")).action == "allow"  # looked up
        assert engine.decide(RequestInfo(peer="10.0.0.1")).reason == "private"


def test_exemptions_still_apply_and_cache_is_bypassed() -> None:
    engine = geofence.Engine.from_config({**POLICY, "exempt": {"paths": ["/healthz"]}})
    with Kit() as kit:
        kit.pretend(country="CN")
        assert engine.decide(RequestInfo(peer="1.1.1.1", path="/healthz")).reason == "exempt_path"
        assert engine.cached("1.1.1.1", "GET", "/healthz") is None
        for _ in range(3):
            engine.answer(RequestInfo(peer="1.1.1.1"))
        assert [d.action for d in kit.decisions] == ["allow", "block", "block", "block"]


def test_one_kit_at_a_time() -> None:
    with Kit(), pytest.raises(RuntimeError), Kit():
        pass


def _travel(library: str, when: str) -> Any:
    """The clock library's way to stand at ``when`` (midnight UTC)."""
    moment = datetime.fromisoformat(when).replace(tzinfo=timezone.utc)
    if library == "time_machine":
        return pytest.importorskip("time_machine").travel(moment, tick=False)
    return pytest.importorskip("freezegun").freeze_time(moment)


@pytest.mark.parametrize("library", ["time_machine", "freezegun"])
def test_the_engine_follows_the_clock_libraries_across_a_rules_dates(library: str) -> None:
    engine = geofence.Engine.from_config(
        {
            "rules": [
                {
                    "name": "later",
                    "action": "block",
                    "regions": ["CN"],
                    "warn_from": "2026-06-25T00:00:00Z",
                    "enforce_from": "2026-07-09T00:00:00Z",
                }
            ]
        }
    )
    with Kit() as kit:
        kit.pretend(country="CN")
        for when, action in (
            ("2026-06-01", "allow"),
            ("2026-06-30", "warn"),
            ("2026-07-09", "block"),
            ("2026-06-30", "warn"),
        ):
            with _travel(library, when):
                assert engine.decide(RequestInfo(peer="1.1.1.1")).action == action, when


FLASK_APP = """
from flask import Flask
from geofence_flask import Geofence

app = Flask(__name__)
app.config["GEOFENCE"] = {
    "rules": [{"name": "unsupported-regions", "action": "block", "regions": ["CN", "RU"]},
              {"name": "vpn", "action": "warn", "anonymizers": ["vpn"]}],
    "geoip": {"anonymous_db": ANON},
}
Geofence(app)

@app.get("/v1/models")
def models():
    return {"data": []}
"""

FLASK_TESTS = """
import pytest
from app import app

@pytest.fixture
def client():
    return app.test_client()

def test_blocked_from_cn(client, geofence):
    geofence.pretend(country="CN")
    geofence.assert_blocked(client.get("/v1/models"))
    assert geofence.decisions[-1].rule == "unsupported-regions"

def test_allowed_from_gb(client, geofence):
    geofence.pretend(country="GB")
    geofence.assert_allowed(client.get("/v1/models"))

@pytest.mark.geofence(country="US", anonymizers=["vpn"])
def test_marker_vpn_warned(client, geofence):
    geofence.assert_warned(client.get("/v1/models"))

def test_proxy_chain(client, geofence):
    geofence.table({"175.16.199.0/24": "CN"})
    response = client.get("/v1/models", environ_base={"REMOTE_ADDR": "175.16.199.7"})
    geofence.assert_blocked(response)

def test_nothing_leaks_from_the_previous_test(client):
    assert client.get("/v1/models").status_code == 200   # 127.0.0.1: private again
"""


def _write_flask(pytester: pytest.Pytester) -> None:
    from tests_support import ANON_DB

    pytester.makepyfile(app=FLASK_APP.replace("ANON", repr(ANON_DB)))
    pytester.makepyfile(test_app=FLASK_TESTS)


def test_plugin_in_a_flask_project(pytester: pytest.Pytester) -> None:
    _write_flask(pytester)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=5)


def test_plugin_turned_off(pytester: pytest.Pytester) -> None:
    _write_flask(pytester)
    result = pytester.runpytest_subprocess("-q", "-p", "no:geofence", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["*fixture 'geofence' not found*"])


STARLETTE_PROJECT = """
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from geofence_asgi import GeofenceMiddleware

async def models(request):
    return JSONResponse({"data": [], "country": request.state.geofence.country})

app = GeofenceMiddleware(
    Starlette(routes=[Route("/v1/models", models)]),
    config={"rules": [{"name": "unsupported-regions", "action": "block", "regions": ["CN"]}]},
)

def test_blocked(geofence):
    geofence.pretend(country="CN")
    response = TestClient(app).get("/v1/models")
    geofence.assert_blocked(response)
    assert response.json()["error"]["code"] == "unsupported_country_region_territory"

def test_allowed_sees_the_country(geofence):
    geofence.pretend(country="SE")
    response = TestClient(app).get("/v1/models")
    geofence.assert_allowed(response)
    assert response.json()["country"] == "SE"
"""


def test_plugin_in_a_starlette_project(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_asgi=STARLETTE_PROJECT)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider", "-W", "ignore")
    result.assert_outcomes(passed=2)


DJANGO_PROJECT = {
    "settings": """
SECRET_KEY = "test"
ROOT_URLCONF = "urls"
ALLOWED_HOSTS = ["*"]
MIDDLEWARE = ["geofence_django.middleware.GeofenceMiddleware"]
INSTALLED_APPS = ["geofence_django"]
GEOFENCE = {"rules": [{"name": "unsupported-regions", "action": "block", "regions": ["RU"]}]}
DATABASES = {}
""",
    "urls": """
from django.http import JsonResponse
from django.urls import path

def models(request):
    return JsonResponse({"reason": request.geofence.reason})

urlpatterns = [path("v1/models", models)]
""",
    "conftest": """
import django, os
os.environ["DJANGO_SETTINGS_MODULE"] = "settings"
django.setup()
""",
    "test_django_app": """
import pytest
from django.test import Client

@pytest.mark.geofence(country="RU")
def test_blocked_from_ru(geofence):
    geofence.assert_blocked(Client().get("/v1/models"))

def test_allowed(geofence):
    geofence.pretend(country="FR")
    response = Client().get("/v1/models")
    geofence.assert_allowed(response)
    assert response.json() == {"reason": "default"}
""",
}


def test_plugin_in_a_django_project(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(**{name: textwrap.dedent(code) for name, code in DJANGO_PROJECT.items()})
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)


DATED_PROJECT = """
from datetime import datetime, timezone

import time_machine
from flask import Flask
from geofence_flask import Geofence

app = Flask(__name__)
Geofence(app, config={"rules": [{
    "name": "unsupported-regions", "action": "block", "regions": ["CN"],
    "warn_from": "2026-06-25T00:00:00Z", "enforce_from": "2026-07-09T00:00:00Z"}]})

@app.get("/v1/models")
def models():
    return {"data": []}

def test_grace_period(geofence):
    client = app.test_client()
    geofence.pretend(country="CN")
    with time_machine.travel(datetime(2026, 6, 1, tzinfo=timezone.utc), tick=False):
        geofence.assert_allowed(client.get("/v1/models"))
    with time_machine.travel(datetime(2026, 6, 30, tzinfo=timezone.utc), tick=False):
        warned = client.get("/v1/models")
        geofence.assert_warned(warned)
        assert warned.headers["Sunset"] == "Thu, 09 Jul 2026 00:00:00 GMT"
    with time_machine.travel(datetime(2026, 7, 9, tzinfo=timezone.utc), tick=False):
        geofence.assert_blocked(client.get("/v1/models"))
"""


def test_plugin_across_a_rules_dates_with_time_machine(pytester: pytest.Pytester) -> None:
    pytest.importorskip("time_machine")
    pytester.makepyfile(test_dated=DATED_PROJECT)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)

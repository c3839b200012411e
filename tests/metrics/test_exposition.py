"""/metrics in each framework, as the README shows it: prometheus_client's make_wsgi_app
(Flask), make_asgi_app (Starlette), a Django view; the decisions of the adapter's requests
appear in the scrape, and the scrape itself is no decision."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import make_asgi_app, make_wsgi_app
from prometheus_client.parser import text_string_to_metric_families

PROJECT = Path(__file__).resolve().parent.parent.parent
CN, US = "114.114.114.114", "8.8.8.8"  # in the embedded database


def policy(rule: str) -> dict[str, Any]:
    return {
        "rules": [{"name": rule, "action": "block", "regions": ["CN"]}],
        "metrics": {"prometheus": True},
    }


def ours(text: str, rule: str) -> dict[tuple[str, str], float]:
    """(action, country) -> count among the scrape's decisions of ``rule`` (or allowed ones)."""
    found: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "geofence_decisions_total" and sample.labels["rule"] == rule:
                found[sample.labels["action"], sample.labels["country"]] = sample.value
    return found


def test_flask_metrics_endpoint(unique: str) -> None:
    pytest.importorskip("flask")
    from flask import Flask
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    from geofence_flask import Geofence

    app = Flask(__name__)
    Geofence(app, config=policy(unique))

    @app.get("/v1/models")
    def models() -> str:
        return "ok"

    # After Geofence(app): /metrics is served beside the app, never decided.
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/metrics": make_wsgi_app()})  # type: ignore[method-assign]
    client = app.test_client()
    assert client.get("/v1/models", environ_base={"REMOTE_ADDR": CN}).status_code == 451
    assert client.get("/v1/models", environ_base={"REMOTE_ADDR": CN}).status_code == 451
    scrape = client.get("/metrics", environ_base={"REMOTE_ADDR": CN})
    assert scrape.status_code == 200
    assert scrape.content_type.startswith("text/plain")
    assert ours(scrape.get_data(as_text=True), unique) == {("block", "CN"): 2.0}


def test_starlette_metrics_endpoint(unique: str) -> None:
    pytest.importorskip("starlette")
    pytest.importorskip("httpx")
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route
    from starlette.testclient import TestClient

    from geofence_asgi import GeofenceMiddleware

    async def models(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/v1/models", models), Mount("/metrics", make_asgi_app())])
    config = {**policy(unique), "exempt": {"paths": ["/metrics", "/metrics/*"]}}
    fenced = GeofenceMiddleware(app, config=config)
    with TestClient(fenced, client=(CN, 40000)) as blocked:
        assert blocked.get("/v1/models").status_code == 451
        scrape = blocked.get("/metrics/")  # exempt: served to any client
    assert scrape.status_code == 200
    assert ours(scrape.text, unique) == {("block", "CN"): 1.0}


DJANGO = textwrap.dedent(
    """
    import json, sys
    import django
    from django.conf import settings
    from django.http import HttpResponse
    from django.urls import path
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    def models(request):
        return HttpResponse("ok")

    def metrics(request):
        return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)

    urlpatterns = [path("v1/models", models), path("metrics", metrics)]
    settings.configure(
        DEBUG=False, SECRET_KEY="test", ALLOWED_HOSTS=["*"], ROOT_URLCONF=__name__,
        INSTALLED_APPS=["geofence_django"],
        MIDDLEWARE=["geofence_django.middleware.GeofenceMiddleware"],
        GEOFENCE=json.loads(sys.argv[1]),
    )
    django.setup()
    from django.test import Client
    client = Client(REMOTE_ADDR=sys.argv[2])
    statuses = [client.get("/v1/models").status_code for _ in range(3)]
    scrape = client.get("/metrics")
    print(json.dumps({"statuses": statuses, "scrape": scrape.status_code,
                      "type": scrape["Content-Type"], "text": scrape.content.decode()}))
    """
)


def test_django_metrics_view(unique: str) -> None:
    pytest.importorskip("django")
    # Django's settings are once per process: its own, with the view the README shows.
    config = {**policy(unique), "exempt": {"paths": ["/metrics"]}}
    done = subprocess.run(
        [sys.executable, "-c", DJANGO, json.dumps(config), CN],
        cwd=PROJECT,
        env={"PYTHONPATH": f"{PROJECT}:{PROJECT / 'adapters'}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["statuses"] == [451, 451, 451]
    assert got["scrape"] == 200
    assert got["type"].startswith("text/plain")
    assert ours(got["text"], unique) == {("block", "CN"): 3.0}

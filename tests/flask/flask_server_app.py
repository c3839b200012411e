"""The Flask app served by gunicorn in test_flask_server.py (config: a file named by an env var)."""

from __future__ import annotations

import os

from flask import Flask, g

from geofence_flask import Geofence

app = Flask(__name__)
app.config["GEOFENCE"] = os.environ["GEOFENCE_TEST_CONFIG"]
geofence = Geofence(app)


@app.route("/", defaults={"p": ""}, methods=["GET", "POST"])
@app.route("/<path:p>", methods=["GET", "POST"])
def catch_all(p: str) -> tuple[bytes, int, dict[str, str]]:
    decision = g.geofence
    headers = {
        "Content-Type": "text/plain; charset=utf-8",
        "Cache-Control": "max-age=60",
        "X-Decision": f"{decision.action} {decision.reason} {decision.country}",
    }
    return b"hello from the app", 200, headers


@app.get("/open")
@geofence.exempt
def open_view() -> str:
    return "open to all"

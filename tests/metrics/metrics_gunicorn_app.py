"""The Flask app gunicorn serves in test_multiprocess.py: geofence with [metrics] prometheus,
and /metrics from every worker's files (prometheus_client's multiprocess mode).

Config: the JSON file named by GEOFENCE_TEST_CONFIG; PROMETHEUS_MULTIPROC_DIR is set by the test.
"""

from __future__ import annotations

import os

from flask import Flask
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.multiprocess import MultiProcessCollector
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from geofence_flask import Geofence

app = Flask(__name__)
app.config["GEOFENCE"] = os.environ["GEOFENCE_TEST_CONFIG"]
Geofence(app)


@app.route("/<path:p>")
def hello(p: str) -> tuple[str, int, dict[str, str]]:
    return "hello", 200, {"X-Worker": str(os.getpid())}


# A scrape reads every worker's files, whichever worker answers it; mounted outside geofence.
registry = CollectorRegistry()
MultiProcessCollector(registry)
app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {"/metrics": make_wsgi_app(registry)})  # type: ignore[method-assign]

"""Resident memory that geofence adds to a process, the way a user sees it (issue 15, item 6).

Each row is a fresh interpreter: VmRSS (/proc/self/status) is read before the first geofence
import and again after the row's work; the table shows the median of ``--runs`` processes (and
their spread), plus which heavy modules the work imported. Every process of a row shares one
bytecode cache (PYTHONPYCACHEPREFIX in a temporary folder, filled by a first, unmeasured run):
an installed package has its .pyc files, and compiling a module costs far more memory than
loading it, so a run without them would measure the compiler.

    python bench/import_cost.py [--runs 5] [--json]

Rows whose framework is not installed say so. Linux only (elsewhere there is no VmRSS).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAXMIND = ROOT / "tests" / "data" / "maxmind" / "test-data"
COUNTRY_DB = MAXMIND / "GeoIP2-Country-Test.mmdb"
CITY_DB = MAXMIND / "GeoIP2-City-Test.mmdb"
# Modules a default engine should not load; the table says which ones a row did load.
WATCHED = (
    "maxminddb",
    "pycountry",
    "redis",
    "prometheus_client",
    "opentelemetry",
    "pyarrow",
    "hashlib",
    "json",
    "urllib.parse",
    "pathlib",
    "gettext",
    "difflib",
    "unicodedata",
    "tomllib",
    "socket",
    "http",
    "importlib.metadata",
)

# The child: ``setup`` runs before the first reading (a framework the app imports anyway),
# ``work`` between the two readings.
CHILD = r"""
import sys

def rss():
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None

exec(sys.argv[1])
before_modules = set(sys.modules)
before = rss()
exec(sys.argv[2])
after = rss()
loaded = [m for m in sys.modules if m not in before_modules]
import json  # only now: json loads re and enum, which geofence's own cost must include
print(json.dumps({"before": before, "after": after, "loaded": loaded}))
"""

ENGINE = (
    "import geofence\n"
    "engine = geofence.Engine.from_config({})\n"
    "assert engine.decide(geofence.RequestInfo(peer='8.8.8.8')).action == 'allow'\n"
)

ROWS: list[tuple[str, str, str]] = [
    ("import geofence", "", "import geofence\n"),
    ("engine, embedded default, one decide()", "", ENGINE),
    (
        "engine, MaxMind Country file, one decide()",
        "",
        "import geofence\n"
        "engine = geofence.Engine.from_config({'geoip': {'country_db': "
        f"{str(COUNTRY_DB)!r}}}}})\n"
        "engine.decide(geofence.RequestInfo(peer='81.2.69.160'))\n",
    ),
    (
        "engine, MaxMind City file, a subdivision rule (pycountry)",
        "",
        "import geofence\n"
        "engine = geofence.Engine.from_config({'geoip': {'country_db': "
        f"{str(CITY_DB)!r}}}, 'rules': [{{'action': 'block', 'regions': ['GB-ENG']}}]}})\n"
        "engine.decide(geofence.RequestInfo(peer='8.8.8.8'))\n",
    ),
    (
        "ASGI middleware + one request (asyncio loaded before)",
        "import asyncio\n",
        "import asyncio\n"
        "from geofence_asgi import GeofenceMiddleware\n"
        "async def app(scope, receive, send):\n"
        "    await send({'type': 'http.response.start', 'status': 200, 'headers': []})\n"
        "    await send({'type': 'http.response.body', 'body': b'ok'})\n"
        "guarded = GeofenceMiddleware(app, config={})\n"
        "sent = []\n"
        "async def receive():\n"
        "    return {'type': 'http.request', 'body': b'', 'more_body': False}\n"
        "async def send(message):\n"
        "    sent.append(message)\n"
        "scope = {'type': 'http', 'asgi': {'version': '3.0'}, 'http_version': '1.1',\n"
        "         'method': 'GET', 'scheme': 'http', 'path': '/', 'raw_path': b'/',\n"
        "         'query_string': b'', 'root_path': '', 'headers': [(b'host', b'x')],\n"
        "         'client': ('8.8.8.8', 1234), 'server': ('127.0.0.1', 80)}\n"
        "asyncio.run(guarded(scope, receive, send))\n"
        "assert sent[0]['status'] == 200, sent\n",
    ),
    (
        "Flask extension + one request (Flask loaded before)",
        "import flask, flask.testing\n",
        "from flask import Flask\n"
        "from geofence_flask import Geofence\n"
        "app = Flask('bench')\n"
        "app.add_url_rule('/', 'index', lambda: 'ok')\n"
        "Geofence(app, config={})\n"
        "reply = app.test_client().get('/', environ_base={'REMOTE_ADDR': '8.8.8.8'})\n"
        "assert reply.status_code == 200, reply.status_code\n",
    ),
    (
        "Django middleware + one request (Django set up before)",
        "import django\n"
        "from django.conf import settings\n"
        "settings.configure(DEBUG=False, ALLOWED_HOSTS=['*'], ROOT_URLCONF=__name__,\n"
        "                   SECRET_KEY='bench', GEOFENCE={})\n"
        "django.setup()\n"
        "from django.http import HttpResponse\n"
        "from django.test import RequestFactory\n"
        "urlpatterns = []\n",
        "from geofence_django.middleware import GeofenceMiddleware\n"
        "guarded = GeofenceMiddleware(lambda request: HttpResponse('ok'))\n"
        "reply = guarded(RequestFactory().get('/', REMOTE_ADDR='8.8.8.8'))\n"
        "assert reply.status_code == 200, reply.status_code\n",
    ),
]


def measure(setup: str, work: str, runs: int, cache: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = cache
    command = [sys.executable, "-c", CHILD, setup, work]
    samples: list[dict[str, object]] = []
    for index in range(runs + 1):  # the first run fills the bytecode cache; not counted
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["failed"])[-1]
            return {"error": last}
        if index:
            samples.append(json.loads(done.stdout))
    if any(s["before"] is None or s["after"] is None for s in samples):
        return {"error": "no VmRSS in /proc/self/status here"}
    added = sorted(int(str(s["after"])) - int(str(s["before"])) for s in samples)
    return {
        "added_kb": statistics.median(added),
        "min_kb": added[0],
        "max_kb": added[-1],
        "loaded": [m for m in WATCHED if m in samples[-1]["loaded"]],  # type: ignore[operator]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="processes per row (median)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="geofence-pyc-") as cache:
        for name, setup, work in ROWS:
            results[name] = measure(setup, work, args.runs, cache)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(f"RSS added (median of {args.runs} fresh processes; {sys.version.split()[0]})")
    print(f"| {'what':<55} | {'added':>9} | {'range':>15} | heavy modules loaded")
    print(f"|{'-' * 57}|{'-' * 10}:|{'-' * 16}:|---")
    for name, row in results.items():
        if "error" in row:
            print(f"| {name:<55} | {'n/a':>9} | {'':>15} | {row['error']}")
            continue
        added = f"{float(str(row['added_kb'])) / 1024:.1f} MB"
        spread = f"{int(str(row['min_kb'])) / 1024:.1f}-{int(str(row['max_kb'])) / 1024:.1f} MB"
        loaded = ", ".join(row["loaded"]) or "-"  # type: ignore[arg-type]
        print(f"| {name:<55} | {added:>9} | {spread:>15} | {loaded}")


if __name__ == "__main__":
    main()

"""A minimal Flask app protected by geofence (application-factory style).

    pip install "geofence-middleware[flask]"
    flask --app examples/flask_app.py run
    curl -i -H "X-Forwarded-For: 175.16.199.1" http://127.0.0.1:5000/v1/models   # 451, JSON
    curl -i -H "X-Forwarded-For: 216.160.83.56" http://127.0.0.1:5000/v1/models  # 200

Without ``geoip.country_db`` the embedded country data is used; in production point it at a
MaxMind GeoIP2/GeoLite2 database kept fresh by geoipupdate.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, g

from geofence_flask import Geofence

GEOFENCE: dict[str, Any] = {
    "info_url": "https://example.com/supported-countries",
    # Only for this local example: believe X-Forwarded-For when the request comes from this
    # machine. Behind a real proxy, list the proxy's addresses here instead (and not ProxyFix:
    # geofence reads the socket peer and trusts only what this setting says).
    "client_ip": {"trusted_proxies": ["127.0.0.0/8", "::1/128"]},
    "rules": [
        {
            "name": "unsupported",
            "action": "block",
            "regions": ["CN", "RU", "KP"],
            "paths": ["/v1/*", "/web/*"],
        },
        {
            "name": "leaving-soon",
            "action": "block",
            "regions": ["BY"],
            "paths": ["/v1/*"],
            "warn_from": "2025-01-01T00:00:00Z",
            "enforce_from": "2030-01-01T00:00:00Z",
        },
    ],
    "exempt": {"paths": ["/static/*"]},
}

geofence = Geofence()


def create_app() -> Flask:
    app = Flask(__name__)
    app.config["GEOFENCE"] = GEOFENCE  # or the path of a .toml / .json file
    geofence.init_app(app)  # a bad policy raises geofence.ConfigError here, at startup

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        decision = g.geofence  # what geofence decided for this request
        return {"models": ["small", "large"], "country": decision.country}

    @app.get("/healthz")
    @geofence.exempt  # load balancers probe from anywhere
    def healthz() -> str:
        return "ok"

    return app


app = create_app()

if __name__ == "__main__":
    app.run()

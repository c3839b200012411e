"""A minimal FastAPI app protected by geofence (the same code works for Starlette).

    pip install "geofence-middleware" fastapi "uvicorn[standard]"   # from a checkout: "."
    uvicorn --app-dir examples fastapi_app:app --no-proxy-headers
    curl -i -H "X-Forwarded-For: 175.16.199.1" http://127.0.0.1:8000/v1/models   # 451, JSON
    curl -i -H "X-Forwarded-For: 178.120.0.1" http://127.0.0.1:8000/v1/models    # 200 + Sunset
    curl -i -H "X-Forwarded-For: 8.8.8.8" http://127.0.0.1:8000/v1/models        # 200

``uvicorn[standard]`` brings a websocket library (``websockets``); under plain ``uvicorn`` the
websocket route ``/v1/stream`` answers 404. ``--no-proxy-headers`` leaves the client address
alone so that geofence resolves it itself, from the socket peer and ``client_ip`` below.
Without ``geoip.country_db`` the embedded country data is used; in production point it at a
MaxMind GeoIP2/GeoLite2 database kept fresh by geoipupdate. examples/README.md has more.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, WebSocket

from geofence_asgi import GeofenceMiddleware

GEOFENCE: dict[str, Any] = {
    "info_url": "https://example.com/supported-countries",
    # Only for this local example: believe X-Forwarded-For when the request comes from this
    # machine. Behind a real proxy, list the proxy's addresses here instead.
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
    "exempt": {"paths": ["/healthz"]},
}

app = FastAPI()
# Added last, so it runs first: before any other middleware reads the body, the session or
# the user. The policy is loaded when FastAPI builds its middleware stack at startup, so a bad
# one stops the server with geofence.ConfigError before it serves anything.
app.add_middleware(GeofenceMiddleware, config=GEOFENCE)  # or a path: "geofence.toml"


@app.get("/v1/models")
async def models(request: Request) -> dict[str, Any]:
    decision = request.state.geofence  # what geofence decided for this request
    return {"models": ["small", "large"], "country": decision.country}


@app.websocket("/v1/stream")
async def stream(websocket: WebSocket) -> None:
    # Websocket handshakes are decided like requests: a blocked one never gets here.
    await websocket.accept()
    async for text in websocket.iter_text():
        await websocket.send_text(text)


@app.get("/healthz")
async def healthz() -> str:
    return "ok"

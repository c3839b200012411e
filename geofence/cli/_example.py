"""The example policy behind ``geofence demo`` and ``geofence check`` without ``--config``.

Modelled on a real announcement: "API traffic from unsupported countries and territories is
blocked; from a later date we also stop serving two more countries, and warn their users
until then". The grace period is placed around the current date so that the demo always shows
one rule warning and one enforcing.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

INFO_URL = "https://example.com/supported-countries"


def example_policy(now: datetime | None = None) -> dict[str, Any]:
    today = (now or datetime.now(timezone.utc)).replace(hour=0, minute=0, second=0, microsecond=0)
    return {
        "mode": "enforce",
        "default": "allow",
        "info_url": INFO_URL,
        # The demo runs on your machine: believe X-Forwarded-For from loopback only, so that
        # `curl -H "X-Forwarded-For: 175.16.199.1" http://127.0.0.1:8000/v1/models` shows a block.
        "client_ip": {"trusted_proxies": ["127.0.0.0/8", "::1/128"]},
        "regions": {"sanctioned": ["CU", "IR", "KP", "SY"]},
        "rules": [
            {
                "name": "unsupported-regions",
                "action": "block",
                "regions": ["CN", "RU", "@sanctioned"],
                "paths": ["/v1/*", "/web/*"],
                "enforce_from": "2024-07-09T00:00:00Z",
            },
            {
                "name": "new-restrictions",
                "action": "block",
                "regions": ["BY", "VE"],
                "paths": ["/v1/*", "/web/*"],
                "warn_from": (today - timedelta(days=30)).isoformat(),
                "enforce_from": (today + timedelta(days=60)).isoformat(),
            },
        ],
        "exempt": {"paths": ["/healthz"]},
    }

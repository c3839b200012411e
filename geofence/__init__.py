"""geofence: one region policy for every Python web app.

>>> import geofence
>>> engine = geofence.Engine.from_config({"rules": [{"action": "block", "regions": ["CN"]}]})
>>> engine.decide(geofence.RequestInfo(peer="175.16.199.1")).action
'block'

This module is the public surface; adapter authors also use :mod:`geofence.http` (``Answer``,
``Response``, header views).
"""

from __future__ import annotations

from geofence._engine import Engine
from geofence._errors import ConfigError
from geofence._events import Event
from geofence._model import Decision, RequestInfo
from geofence.accounts._account import Account
from geofence.config._loader import load_policy
from geofence.config._policy import Policy

__version__ = "0.1.0"

__all__ = [
    "Account",
    "ConfigError",
    "Decision",
    "Engine",
    "Event",
    "Policy",
    "RequestInfo",
    "__version__",
    "load_policy",
]

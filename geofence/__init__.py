"""geofence: one region policy for every Python web app.

>>> import geofence
>>> engine = geofence.Engine.from_config({"rules": [{"action": "block", "regions": ["CN"]}]})
>>> engine.decide(geofence.RequestInfo(peer="175.16.199.1")).action
'block'
"""

from __future__ import annotations

from .config import load_policy
from .engine import Engine
from .errors import ConfigError
from .model import Decision, RequestInfo
from .policy import Policy
from .responses import Response

__version__ = "0.1.0"

__all__ = [
    "ConfigError",
    "Decision",
    "Engine",
    "Policy",
    "RequestInfo",
    "Response",
    "__version__",
    "load_policy",
]

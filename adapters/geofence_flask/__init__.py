"""geofence for Flask: ``Geofence(app)``; the request's decision is ``flask.g.geofence``."""

from __future__ import annotations

from .extension import Geofence
from .layer import EXEMPT_DECISION, GeofenceState, geofence_event

__all__ = ["EXEMPT_DECISION", "Geofence", "GeofenceState", "geofence_event"]

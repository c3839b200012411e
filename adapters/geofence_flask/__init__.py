"""geofence for Flask: ``Geofence(app)`` or ``Geofence().init_app(app)``.

The decision for the current request is ``flask.g.geofence`` (a :class:`geofence.Decision`).
"""

from __future__ import annotations

from .extension import EXEMPT_DECISION, Geofence, GeofenceState

__all__ = ["EXEMPT_DECISION", "Geofence", "GeofenceState"]

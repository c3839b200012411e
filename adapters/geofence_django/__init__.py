"""geofence for django."""

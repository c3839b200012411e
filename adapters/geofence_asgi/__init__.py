"""geofence for asgi."""

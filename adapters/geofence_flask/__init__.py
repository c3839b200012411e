"""geofence for flask."""

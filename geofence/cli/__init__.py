"""The `geofence` command."""

from geofence.cli._main import main

__all__ = ["main"]

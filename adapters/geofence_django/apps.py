"""The Django app: registers the geofence system checks."""

from __future__ import annotations

from django.apps import AppConfig
from django.core import checks


class GeofenceConfig(AppConfig):
    name = "geofence_django"
    verbose_name = "geofence"

    def ready(self) -> None:
        from .checks import check_geofence

        checks.register(check_geofence, "geofence")

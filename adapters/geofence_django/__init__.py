"""geofence for Django: the region policy of ``settings.GEOFENCE`` applied by a middleware.

Add ``"geofence_django"`` to ``INSTALLED_APPS`` (system checks, the ``geofence/blocked.html``
template) and ``"geofence_django.middleware.GeofenceMiddleware"`` to ``MIDDLEWARE``, early.
"""

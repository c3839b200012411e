"""geofence for Django: the region policy of ``settings.GEOFENCE`` applied by a middleware.

Add ``"geofence_django"`` to ``INSTALLED_APPS`` (system checks, the ``geofence/blocked.html``
template) and ``"geofence_django.middleware.GeofenceMiddleware"`` to ``MIDDLEWARE``, early.

``@geofence_django.exempt`` puts a view outside the policy: a request Django routes to it is
never decided and its ``request.geofence`` has reason ``exempt_view`` (see :mod:`.routing`).
It marks a function view (sync or async), a class-based view (the class itself, or
``method_decorator(exempt, name="dispatch")``: either way subclasses are exempt too), or the
view in the URLconf: ``path("health/", exempt(HealthView.as_view()))``.
"""

from geofence.http._exempt import exempt

__all__ = ["exempt"]

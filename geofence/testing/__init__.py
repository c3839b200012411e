"""Testing an app protected by geofence: the pytest fixture ``geofence`` (registered by the
installed package; ``-p no:geofence`` turns it off) and, without pytest, :class:`Kit`::

    with geofence.testing.Kit() as kit:
        kit.pretend(country="CN")
        kit.assert_blocked(client.get("/v1/models"))

See the README, "Testing your app".
"""

from geofence.testing._kit import Kit

__all__ = ["Kit"]

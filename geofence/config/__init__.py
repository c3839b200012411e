"""Configuration: a mapping or a ``.toml`` / ``.json`` file in, a validated :class:`Policy` out.

:func:`load_policy` is the only maker of a :class:`Policy` (constructing one directly raises
``TypeError``), so every Policy an engine sees has passed validation. Its parts
(:class:`ClientIPPolicy`, :class:`GeoIPPolicy`, :class:`RulePolicy`) are plain frozen
dataclasses, read by ``geofence.clientip``, ``geofence.geoip`` and ``geofence.rules``.
"""

# The policy types first: geofence.rules (which the loader imports) imports them from here.
from geofence.config._policy import (
    ANONYMIZERS,
    DEFAULT_MESSAGE,
    READERS,
    AccountsPolicy,
    ClientIPPolicy,
    GeoIPPolicy,
    Message,
    MetricsPolicy,
    Network,
    PagePolicy,
    Policy,
    RulePolicy,
    StrikesPolicy,
)

# isort: split
from geofence.config._loader import load_policy

__all__ = [
    "ANONYMIZERS",
    "DEFAULT_MESSAGE",
    "READERS",
    "AccountsPolicy",
    "ClientIPPolicy",
    "GeoIPPolicy",
    "Message",
    "MetricsPolicy",
    "Network",
    "PagePolicy",
    "Policy",
    "RulePolicy",
    "StrikesPolicy",
    "load_policy",
]

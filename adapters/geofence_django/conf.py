"""The one engine per process, built from ``settings.GEOFENCE`` and shared by the middleware
and the system checks."""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed

from geofence import ConfigError, Engine, Policy

SETTING = "GEOFENCE"
ConfigValue = Mapping[str, Any] | str | os.PathLike[str] | Policy

_lock = threading.Lock()
# (a private copy of the setting's value, the engine built from it)
_cached: tuple[object, Engine] | None = None


class SettingError(ImproperlyConfigured):
    """GEOFENCE is missing or of the wrong type (system check geofence_django.E001)."""


class PolicyError(ImproperlyConfigured):
    """GEOFENCE was read but the core rejected it (system check geofence_django.E002)."""

    def __init__(self, error: ConfigError) -> None:
        super().__init__(f"settings.{SETTING} is invalid: {error}")
        self.config_error = error


def config_value() -> ConfigValue:
    """``settings.GEOFENCE``, or :class:`SettingError` saying what to put there."""
    if not hasattr(settings, SETTING):
        raise SettingError(
            f"settings.{SETTING} is missing: set it to the policy (a dict) or to the path of a "
            '.toml / .json policy file; GEOFENCE = {"mode": "off"} disables geofence'
        )
    value = getattr(settings, SETTING)
    if not isinstance(value, (Mapping, str, os.PathLike, Policy)):
        raise SettingError(
            f"settings.{SETTING} must be a dict or the path of a .toml / .json policy file, "
            f"not {type(value).__name__}"
        )
    return value


def get_engine() -> Engine:
    """The process's engine, built on first use and again only when GEOFENCE changes.

    Raises :class:`SettingError` or :class:`PolicyError` (both ImproperlyConfigured), so a bad
    policy stops the server at startup instead of letting requests through unchecked.
    """
    global _cached  # noqa: PLW0603 - one engine per process is the point
    value = config_value()
    with _lock:
        if _cached is None or _cached[0] != value:
            try:
                engine = Engine.from_config(value)
            except ConfigError as error:
                raise PolicyError(error) from error
            _cached = (_snapshot(value), engine)
        return _cached[1]


def _snapshot(value: ConfigValue) -> object:
    # A copy, so that a dict changed in place later is seen as a new value.
    try:
        return copy.deepcopy(value)
    except Exception:  # an exotic mapping that cannot be copied: compare it as it is
        return value


def _reset(*, setting: str, **kwargs: object) -> None:
    global _cached  # noqa: PLW0603
    if setting == SETTING:
        with _lock:
            _cached = None


# override_settings(GEOFENCE=...) in tests: the next middleware built sees the new policy.
setting_changed.connect(_reset, dispatch_uid="geofence_django.conf.reset")

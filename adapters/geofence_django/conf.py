"""The one engine per process, built from ``settings.GEOFENCE`` and shared by the middleware
and the system checks; and the account hook of ``settings.GEOFENCE_ACCOUNT``."""

from __future__ import annotations

import copy
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.http import HttpRequest
from django.utils.module_loading import import_string

from geofence import ConfigError, Engine, Policy
from geofence.http._hooks import guard_async_hook, guard_hook, is_async

from .signals import send_event

SETTING = "GEOFENCE"
ACCOUNT_SETTING = "GEOFENCE_ACCOUNT"
SyncHook = Callable[[HttpRequest], Any]
# The result of the async path's hook is the account, or a coroutine that gives it.
AsyncHook = Callable[[HttpRequest], Any]

logger = logging.getLogger("geofence.django")
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


class AccountHookError(ImproperlyConfigured):
    """GEOFENCE_ACCOUNT does not import (system check geofence_django.E003) or is not
    callable (geofence_django.E004)."""

    def __init__(self, message: str, check_id: str) -> None:
        super().__init__(message)
        self.check_id = check_id


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
                # Every engine event is also the signal geofence_django.signals.geofence_event.
                engine = Engine.from_config(value, on_event=send_event)
            except ConfigError as error:
                raise PolicyError(error) from error
            _cached = (_snapshot(value), engine)
        return _cached[1]


def account_hook() -> Callable[..., Any] | None:
    """The callable ``settings.GEOFENCE_ACCOUNT`` names (a dotted path; a callable is taken as
    it is), or None when the setting is absent or None. It is called with each request and
    returns a :class:`geofence.Account`, an account id string, or None (anonymous).

    Raises :class:`AccountHookError` (ImproperlyConfigured): a hook that does not import stops
    the server at startup, as a bad policy does, rather than deciding without accounts.
    """
    value = getattr(settings, ACCOUNT_SETTING, None)
    if isinstance(value, str):
        try:
            value = import_string(value)
        except Exception as error:  # ImportError, or whatever the module raised on import
            raise AccountHookError(
                f"settings.{ACCOUNT_SETTING} = {getattr(settings, ACCOUNT_SETTING)!r} cannot be "
                f"imported: {type(error).__name__}: {error}",
                "geofence_django.E003",
            ) from error
    if value is not None and not callable(value):
        raise AccountHookError(
            f"settings.{ACCOUNT_SETTING} must be the dotted path of a callable "
            f"(request -> geofence.Account | None), not {type(value).__name__} {value!r}",
            "geofence_django.E004",
        )
    return value


def account_hooks() -> tuple[SyncHook, AsyncHook] | None:
    """GEOFENCE_ACCOUNT for the middleware's sync and async paths, or None without one.

    The hook may be a function or a coroutine function: under ASGI a sync hook runs through
    ``sync_to_async`` (it may touch the database, as ``request.user`` does), under WSGI an
    async one through ``async_to_sync``. Both give the hook's account (the async one as a
    coroutine to await), or None when it raises: that is logged with its traceback and the
    request is decided without an account, never a 500 because of the hook.
    """
    hook = account_hook()
    if hook is None:
        return None
    if is_async(hook):
        sync_hook, async_hook = async_to_sync(hook), hook
    else:
        sync_hook, async_hook = hook, sync_to_async(hook)
    name = f"{ACCOUNT_SETTING} hook"
    return guard_hook(sync_hook, logger, name), guard_async_hook(async_hook, logger, name)


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

"""An app's own code called on a request, guarded so that it never fails the request: the
account hook (who sends this request) and the receivers of a framework's event signal.

Every adapter takes an account hook (Django ``GEOFENCE_ACCOUNT``, Flask ``account=``, ASGI
``account=``) and treats it alike: it may return a :class:`geofence.Account`, an account id
string or None (anything else the engine logs and ignores); if it raises, the error is logged
with its traceback on the adapter's logger and the request is decided without an account,
never answered with a 500. Django and Flask send the engine's events as a signal; a receiver
that raises is logged the same way, and the request and the other receivers go on.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from geofence._events import Event
from geofence.accounts._account import Account

#: What an account hook returns that is no awaitable (telling these apart costs less than
#: asking whether the value is awaitable).
_PLAIN = (Account, str, type(None))
_FAILED = "%s failed; deciding without an account"
# A hook called without an argument (Flask's reads its request context). Not *args: calling
# through *args costs several times a plain call, and a hook runs on every request.
_NO_ARGUMENT: Any = object()


def is_async(hook: Callable[..., Any]) -> bool:
    """Whether calling ``hook`` gives a coroutine: an ``async def``, or an object whose
    ``__call__`` is one."""
    call = getattr(hook, "__call__", None)  # noqa: B004 - the method, not callable()
    return inspect.iscoroutinefunction(hook) or inspect.iscoroutinefunction(call)


def guard_hook(
    hook: Callable[..., Any], logger: logging.Logger, name: str = "the account hook"
) -> Callable[..., Any]:
    """``hook``, never raising, called with the argument it is given (the request), or with
    none: what it returned, or None when it raised (logged on ``logger`` as ``name``, with
    the traceback)."""

    def account_of(request: Any = _NO_ARGUMENT) -> Any:
        try:
            return hook() if request is _NO_ARGUMENT else hook(request)
        except Exception:
            logger.exception(_FAILED, name)
            return None

    return account_of


def guard_async_hook(
    hook: Callable[..., Any], logger: logging.Logger, name: str = "the account hook"
) -> Callable[..., Any]:
    """:func:`guard_hook` for async apps, where ``hook`` may be sync, async (a coroutine
    function, an async ``__call__``) or return an awaitable. The guarded hook is a plain
    function, so that a sync hook costs no coroutine: it returns the account as
    :func:`guard_hook` does or, when ``hook`` gave an awaitable, a coroutine that awaits it
    and never raises (what it raises is logged, and gives None). So::

        account = guarded(request)
        if account.__class__ is CoroutineType:
            account = await account
    """

    def account_of(request: Any = _NO_ARGUMENT) -> Any:
        try:
            account = hook() if request is _NO_ARGUMENT else hook(request)
        except Exception:
            logger.exception(_FAILED, name)
            return None
        if isinstance(account, _PLAIN) or not inspect.isawaitable(account):
            return account
        return _awaited(account, logger, name)

    return account_of


async def _awaited(account: Awaitable[Any], logger: logging.Logger, name: str) -> Any:
    try:
        return await account
    except Exception:
        logger.exception(_FAILED, name)
        return None


def receiver_failed(
    logger: logging.Logger, receiver: object, event: Event, error: BaseException
) -> None:
    """Log that a receiver of ``event`` raised ``error`` (with its traceback)."""
    logger.error(
        "geofence_event receiver %r failed on a %s event", receiver, event.kind, exc_info=error
    )


class SignalSender:
    """An adapter's signal as an engine's ``on_event``: ``send(event)`` sends it, and
    ``geofence_listening`` (read by geofence._events.Emitter) is ``listening``, which says
    whether anyone receives it now: without a receiver, blocks and warns build no Event."""

    __slots__ = ("_send", "geofence_listening")

    def __init__(self, send: Callable[[Event], object], listening: Callable[[], bool]) -> None:
        self._send = send
        self.geofence_listening = listening

    def __call__(self, event: Event) -> None:
        self._send(event)


def send_guarded(
    receivers: Iterable[Callable[..., object]], event: Event, logger: logging.Logger, *args: Any
) -> None:
    """Call ``receiver(*args, event=event)`` for each receiver; one that raises is logged on
    ``logger`` (:func:`receiver_failed`), and the others still run."""
    for receiver in receivers:
        try:
            receiver(*args, event=event)
        except Exception as error:
            receiver_failed(logger, receiver, event, error)

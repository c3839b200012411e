"""The app's hooks as every adapter calls them (geofence.http._hooks): the account hook,
guarded, in its sync and async forms, and the receivers of an event signal."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timezone
from types import CoroutineType
from typing import Any

import pytest

import geofence
from geofence.http._hooks import (
    guard_async_hook,
    guard_hook,
    is_async,
    receiver_failed,
    send_guarded,
)

ACCOUNT = geofence.Account("acct-1", home_country="DE")
LOGGER = logging.getLogger("geofence.tests.hooks")
EVENT = geofence.Event(
    kind="account_strike",
    at=datetime(2024, 1, 1, tzinfo=timezone.utc),
    decision=None,
    account="acct-1",
)


def broken(*args: Any) -> Any:
    raise RuntimeError("the app's hook is broken")


async def async_broken(*args: Any) -> Any:
    raise RuntimeError("the app's hook is broken")


def failures(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER.name]


def resolved(hook: Any, *args: Any) -> Any:
    """The account the guarded async hook gives, awaited as the ASGI gate awaits it."""
    account = guard_async_hook(hook, LOGGER)(*args)
    if account.__class__ is CoroutineType:
        account = asyncio.run(account)
    return account


def test_a_sync_hook_gives_what_it_returns_with_the_arguments_it_was_given() -> None:
    calls: list[tuple[Any, ...]] = []

    def hook(*args: Any) -> Any:
        calls.append(args)
        return ACCOUNT

    assert guard_hook(hook, LOGGER)("request") is ACCOUNT
    assert guard_hook(lambda: "acct-by-id", LOGGER)() == "acct-by-id"
    assert calls == [("request",)]


def test_a_sync_hook_that_raises_gives_none_and_is_logged_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert guard_hook(broken, LOGGER, "GEOFENCE_ACCOUNT hook")("request") is None
    (record,) = failures(caplog)
    assert record.levelno == logging.ERROR
    assert record.getMessage() == "GEOFENCE_ACCOUNT hook failed; deciding without an account"
    assert record.exc_info is not None and "the app's hook is broken" in caplog.text


class AsyncCall:
    async def __call__(self, scope: Any) -> Any:
        return ACCOUNT


async def async_hook(scope: Any) -> Any:
    return ACCOUNT


def returns_awaitable(scope: Any) -> Any:
    return async_hook(scope)


class Awaitable:
    """Not a coroutine, but awaitable."""

    def __await__(self) -> Any:
        yield from asyncio.sleep(0).__await__()
        return ACCOUNT


@pytest.mark.parametrize(
    "hook",
    [lambda scope: ACCOUNT, async_hook, AsyncCall(), returns_awaitable, lambda scope: Awaitable()],
    ids=["sync", "async", "async-call", "sync-returning-coroutine", "sync-returning-awaitable"],
)
def test_an_async_hook_of_every_kind_gives_the_account(hook: Any) -> None:
    assert resolved(hook, "scope") is ACCOUNT


@pytest.mark.parametrize("value", [None, "acct-by-id", ACCOUNT, object()])
def test_what_is_no_awaitable_comes_back_as_it_is_without_a_coroutine(value: Any) -> None:
    """Even a wrong type: the engine logs it and decides without an account."""
    assert guard_async_hook(lambda scope: value, LOGGER)("scope") is value


def _returns_failing(scope: Any) -> Any:
    return async_broken(scope)


@pytest.mark.parametrize("hook", [broken, async_broken, _returns_failing])
def test_an_async_hook_that_raises_called_or_awaited_gives_none_and_is_logged(
    hook: Any, caplog: pytest.LogCaptureFixture
) -> None:
    assert resolved(hook, "scope") is None
    (record,) = failures(caplog)
    assert record.getMessage() == "the account hook failed; deciding without an account"
    assert record.exc_info is not None and "the app's hook is broken" in caplog.text


def test_is_async_knows_coroutine_functions_and_async_call() -> None:
    assert is_async(async_hook) and is_async(AsyncCall())
    assert not is_async(returns_awaitable)
    assert not is_async(lambda: None)


def test_every_receiver_runs_and_one_that_raises_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    got: list[tuple[Any, ...]] = []

    def failing(sender: Any, event: geofence.Event) -> None:
        raise RuntimeError("receiver bug")

    def receiver(sender: Any, event: geofence.Event) -> None:
        got.append((sender, event))

    send_guarded([failing, receiver], EVENT, LOGGER, "the app")
    assert got == [("the app", EVENT)]
    (record,) = failures(caplog)
    assert record.getMessage() == (
        f"geofence_event receiver {failing!r} failed on a account_strike event"
    )
    assert record.exc_info is not None and "receiver bug" in caplog.text


def test_a_receiver_failure_reported_by_the_framework_is_logged_alike(
    caplog: pytest.LogCaptureFixture,
) -> None:
    error = ValueError("from send_robust")
    receiver_failed(LOGGER, "receiver", EVENT, error)
    (record,) = failures(caplog)
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert record.exc_info[1] is error

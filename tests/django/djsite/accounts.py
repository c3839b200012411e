"""Account hooks for the Django tests, named by GEOFENCE_ACCOUNT (see also views.account_of)."""

from __future__ import annotations

import asyncio
from typing import Any

from asgiref.sync import sync_to_async
from django.http import HttpRequest

from geofence import Account

# Where each call of on_loop_check ran: True on a running event loop's thread.
ON_LOOP: list[bool] = []
NOT_CALLABLE = 42


def failing(request: HttpRequest) -> Any:
    raise RuntimeError("the app's hook is broken")


async def async_failing(request: HttpRequest) -> Any:
    raise RuntimeError("the app's hook is broken")


class DjangoUser:
    """Not an account: what a hook returns when it forgets to make one."""


def wrong_type(request: HttpRequest) -> Any:
    return DjangoUser()


def on_loop_check(request: HttpRequest) -> Any:
    """A sync hook that may touch the database: it must not run on the event loop."""
    try:
        asyncio.get_running_loop()
        ON_LOOP.append(True)
    except RuntimeError:
        ON_LOOP.append(False)
    return Account("acct-thread", home_country="RU")


def from_user(request: HttpRequest) -> Any:
    """What a real project writes: the logged-in user (AuthenticationMiddleware) -> Account."""
    user = request.user
    if not user.is_authenticated:
        return Account("anonymous-session", home_country="RU")
    return Account(f"user-{user.pk}")


async def async_from_user(request: HttpRequest) -> Any:
    auser = getattr(request, "auser", None)  # Django >= 5.0
    if auser is None:
        user = await sync_to_async(lambda: request.user)()
        await sync_to_async(lambda: user.is_authenticated)()
    else:
        user = await auser()
    if not user.is_authenticated:
        return Account("anonymous-session-async", home_country="RU")
    return Account(f"user-{user.pk}")

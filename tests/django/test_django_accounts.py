"""GEOFENCE_ACCOUNT through the Django middleware (sync and async paths), its system checks,
failing hooks, and the geofence_event signal. The shared table runs the hook too
(test_django_scenarios.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from django.conf import settings
from django.core.checks import run_checks
from django.core.checks.registry import registry
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.test import Client, override_settings
from django_support import PeerAsyncClient
from djsite import accounts as hooks
from djsite import views
from scenarios.table import ACCOUNT_HEADER, ACCOUNTS, CN, US, account_header

import geofence
from geofence import Account
from geofence._events import REQUEST_KINDS
from geofence_django import middleware
from geofence_django.middleware import GeofenceMiddleware
from geofence_django.signals import geofence_event

OURS = "geofence_django.middleware.GeofenceMiddleware"
SECURITY = "django.middleware.security.SecurityMiddleware"
SESSIONS = "django.contrib.sessions.middleware.SessionMiddleware"
AUTH = "django.contrib.auth.middleware.AuthenticationMiddleware"
HOME_RU = Account("acct-home-ru", home_country="RU")  # blocked by rule home-ru, from anywhere
HEADER_HOOK = "djsite.views.account_of"  # reads x-test-account
ASYNC_HEADER_HOOK = "djsite.views.async_account_of"


def ids(messages: list[Any]) -> list[str]:
    return [m.id for m in messages if m.id.startswith("geofence_django.")]


def ok(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"ok")


def send(
    peers: list[str], *, asgi: bool, account: Account | None = None, path: str = "/v1/models"
) -> list[HttpResponseBase]:
    """GET ``path`` from each peer in turn, through the WSGI or the ASGI handler."""
    headers = {} if account is None else {ACCOUNT_HEADER: account_header(account)}
    if not asgi:
        return [Client(REMOTE_ADDR=peer).get(path, headers=headers) for peer in peers]

    async def main() -> list[HttpResponseBase]:
        return [await PeerAsyncClient(peer).get(path, headers=headers) for peer in peers]

    with override_settings(ROOT_URLCONF="djsite.urls_async"):
        return asyncio.run(main())


PATHS = pytest.mark.parametrize("asgi", [False, True], ids=["wsgi", "asgi"])


# -- the hook in both paths ----------------------------------------------------------------


@PATHS
@pytest.mark.parametrize("hook", [HEADER_HOOK, ASYNC_HEADER_HOOK], ids=["sync-hook", "async-hook"])
def test_every_hook_in_every_path_decides_for_the_account(asgi: bool, hook: str) -> None:
    with override_settings(GEOFENCE=ACCOUNTS, GEOFENCE_ACCOUNT=hook):
        allowed = send([US], asgi=asgi)
        blocked, suspended = send([US, US], asgi=asgi, account=HOME_RU)
    assert allowed[0].status_code == 200
    assert [(d.reason, d.account) for d in views.SEEN] == [("default", None)]  # type: ignore[attr-defined]
    assert blocked.status_code == 451  # home_regions blocks an allowed country
    assert suspended.status_code == 403  # two strikes
    assert b'"account_suspended"' in suspended.content  # type: ignore[attr-defined]


@PATHS
def test_a_sync_hook_never_runs_on_the_event_loop(asgi: bool) -> None:
    """Under ASGI a sync hook goes through sync_to_async: it may touch the database."""
    hooks.ON_LOOP.clear()
    with override_settings(GEOFENCE=ACCOUNTS, GEOFENCE_ACCOUNT="djsite.accounts.on_loop_check"):
        (response,) = send([US], asgi=asgi)
    assert response.status_code == 451
    assert hooks.ON_LOOP == [False]


@PATHS
def test_a_repeated_allowed_request_of_an_account_builds_no_request_info(
    asgi: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[HttpRequest] = []
    translate = middleware.request_info

    def spy(request: HttpRequest) -> geofence.RequestInfo:
        built.append(request)
        return translate(request)

    monkeypatch.setattr(middleware, "request_info", spy)
    with override_settings(GEOFENCE=ACCOUNTS, GEOFENCE_ACCOUNT=HEADER_HOOK):
        responses = send([US, US, US], asgi=asgi, account=Account("acct-repeat"))
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert len(built) == 1  # then the account's memo in the engine
    assert [d.account for d in views.SEEN] == ["acct-repeat"] * 3  # type: ignore[attr-defined]


@PATHS
@pytest.mark.parametrize("hook", ["djsite.accounts.failing", "djsite.accounts.async_failing"])
@pytest.mark.parametrize(("peer", "status"), [(US, 200), (CN, 451)])
def test_a_failing_hook_is_logged_and_the_request_decided_without_an_account(
    asgi: bool, hook: str, peer: str, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    with override_settings(GEOFENCE=ACCOUNTS, GEOFENCE_ACCOUNT=hook):
        (response,) = send([peer], asgi=asgi)
    assert response.status_code == status  # what it is without an account: never a 500
    if status == 200:
        assert [d.account for d in views.SEEN] == [None]  # type: ignore[attr-defined]
    (record,) = [r for r in caplog.records if r.name == "geofence.django"]
    assert record.levelno == logging.ERROR and "GEOFENCE_ACCOUNT" in record.getMessage()
    assert record.exc_info is not None and "the app's hook is broken" in caplog.text


def test_a_hook_that_returns_no_account_is_logged_and_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with override_settings(GEOFENCE=ACCOUNTS, GEOFENCE_ACCOUNT="djsite.accounts.wrong_type"):
        (response,) = send([US], asgi=False)
    assert response.status_code == 200
    # (the engine logs each wrong type once per process)
    assert "returned a DjangoUser, not a geofence.Account" in caplog.text


@pytest.fixture
def checks_restored() -> Iterator[None]:
    """Installing django.contrib.auth registers its system checks for good: undo that."""
    saved = set(registry.registered_checks), set(registry.deployment_checks)
    yield
    registry.registered_checks, registry.deployment_checks = saved


@pytest.mark.usefixtures("checks_restored")
def test_the_hook_reads_request_user_after_authentication_middleware() -> None:
    """A real project: sessions and auth before geofence; the hook reads request.user (sync,
    under WSGI) or awaits request.auser() (async, under ASGI)."""
    site = {
        "INSTALLED_APPS": [
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.sessions",
            "geofence_django",
        ],
        "MIDDLEWARE": [SECURITY, SESSIONS, AUTH, OURS],
        "SESSION_ENGINE": "django.contrib.sessions.backends.signed_cookies",
        "GEOFENCE": ACCOUNTS,
    }
    with override_settings(**site, GEOFENCE_ACCOUNT="djsite.accounts.from_user"):
        assert ids(run_checks()) == []
        (sync,) = send([US], asgi=False)
    with override_settings(**site, GEOFENCE_ACCOUNT="djsite.accounts.async_from_user"):
        (async_,) = send([US], asgi=True)
    # The anonymous session's account has home country RU: rule home-ru.
    assert sync.status_code == async_.status_code == 451


# -- settings and system checks ------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["djsite.nowhere.account_of", "djsite.accounts.missing", "not_a_dotted_path"],
)
def test_a_hook_that_does_not_import_stops_startup_and_is_e003(value: str) -> None:
    with override_settings(GEOFENCE=ACCOUNTS, GEOFENCE_ACCOUNT=value):
        with pytest.raises(ImproperlyConfigured, match="cannot be imported"):
            GeofenceMiddleware(ok)
        assert ids(run_checks()) == ["geofence_django.E003"]
        with pytest.raises(SystemCheckError, match=r"geofence_django\.E003"):
            call_command("check")


@pytest.mark.parametrize("value", ["djsite.accounts.NOT_CALLABLE", 42])
def test_a_hook_that_is_not_callable_is_e004(value: object) -> None:
    with override_settings(GEOFENCE=ACCOUNTS, GEOFENCE_ACCOUNT=value):
        with pytest.raises(ImproperlyConfigured, match="must be the dotted path of a callable"):
            GeofenceMiddleware(ok)
        assert ids(run_checks()) == ["geofence_django.E004"]


@pytest.mark.parametrize(
    ("order", "hook", "expected"),
    [
        ([SECURITY, SESSIONS, OURS, AUTH], HEADER_HOOK, ["geofence_django.W003"]),
        ([SECURITY, SESSIONS, AUTH, OURS], HEADER_HOOK, []),
        ([SECURITY, SESSIONS, OURS, AUTH], None, []),  # no hook: the order is free
        ([SECURITY, OURS], HEADER_HOOK, []),  # no AuthenticationMiddleware: another login
    ],
    ids=["before-auth", "after-auth", "no-hook", "no-auth-middleware"],
)
def test_w003_when_the_middleware_runs_before_authentication(
    order: list[str], hook: str | None, expected: list[str]
) -> None:
    with override_settings(GEOFENCE=ACCOUNTS, GEOFENCE_ACCOUNT=hook, MIDDLEWARE=order):
        assert ids(run_checks()) == expected
        call_command("check")  # a warning never stops the server


def test_w003_can_be_silenced() -> None:
    with override_settings(
        GEOFENCE=ACCOUNTS,
        GEOFENCE_ACCOUNT=HEADER_HOOK,
        MIDDLEWARE=[SECURITY, SESSIONS, OURS, AUTH],
        SILENCED_SYSTEM_CHECKS=["geofence_django.W003"],
    ):
        assert [m for m in run_checks() if not m.is_silenced()] == []


def test_no_setting_means_no_hook() -> None:
    with override_settings(GEOFENCE=ACCOUNTS):
        del settings.GEOFENCE_ACCOUNT
        assert GeofenceMiddleware(ok).account_of is None


# -- the geofence_event signal -------------------------------------------------------------


@pytest.fixture
def received() -> Iterator[list[tuple[Any, geofence.Event]]]:
    got: list[tuple[Any, geofence.Event]] = []

    def receiver(sender: Any, event: geofence.Event, **kwargs: Any) -> None:
        got.append((sender, event))

    geofence_event.connect(receiver, dispatch_uid="test-received")
    yield got
    geofence_event.disconnect(dispatch_uid="test-received")


@PATHS
def test_every_engine_event_is_the_signal(
    asgi: bool, received: list[tuple[Any, geofence.Event]]
) -> None:
    with override_settings(GEOFENCE=ACCOUNTS, GEOFENCE_ACCOUNT=HEADER_HOOK):
        send([US, US], asgi=asgi, account=HOME_RU)
    transitions = [(s, e) for s, e in received if e.kind not in REQUEST_KINDS]
    assert [(sender, e.kind, e.account) for sender, e in transitions] == [
        (geofence.Engine, "account_strike", HOME_RU.id),
        (geofence.Engine, "account_strike", HOME_RU.id),
        (geofence.Engine, "account_suspended", HOME_RU.id),
    ]
    assert transitions[-1][1].decision.reason == "account_suspended"  # type: ignore[union-attr]


def test_a_failing_receiver_is_logged_and_the_others_still_run(
    received: list[tuple[Any, geofence.Event]], caplog: pytest.LogCaptureFixture
) -> None:
    def broken(sender: Any, event: geofence.Event, **kwargs: Any) -> None:
        raise RuntimeError("receiver bug")

    geofence_event.connect(broken, dispatch_uid="test-broken")
    try:
        with override_settings(GEOFENCE=ACCOUNTS, GEOFENCE_ACCOUNT=HEADER_HOOK):
            responses = send([US, US], asgi=False, account=HOME_RU)
    finally:
        geofence_event.disconnect(dispatch_uid="test-broken")
    assert [r.status_code for r in responses] == [451, 403]
    assert len(received) == 5  # 3 transitions, 2 blocks
    failures = [r for r in caplog.records if r.name == "geofence.django"]
    assert len(failures) == 5 and all(r.exc_info is not None for r in failures)
    assert "receiver bug" in caplog.text

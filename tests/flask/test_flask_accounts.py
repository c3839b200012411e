"""``Geofence(app, account=fn)`` and the ``geofence_flask.geofence_event`` signal. The shared
table runs the hook too (test_flask_scenarios.py)."""

from __future__ import annotations

import logging
from email.utils import format_datetime
from typing import Any

import pytest

pytest.importorskip("flask")

from flask import Flask, Response, g, request
from scenarios.table import ACCOUNTS, CN, IR, US, WARN_HEADERS

import geofence
from geofence import Account, ConfigError
from geofence._events import REQUEST_KINDS
from geofence_flask import EXEMPT_DECISION, Geofence, geofence_event

HOME_RU = Account("acct-home-ru", home_country="RU")  # blocked by rule home-ru, from anywhere
HOME_IR = Account("acct-home-ir", home_country="IR")  # account grace by rule home-ir-grace
KEYS = {"key-ru": HOME_RU, "key-ir": HOME_IR, "key-exempt": Account("acct-exempt")}


def api_app(seen: list[Any]) -> Flask:
    """An API app that logs its callers in with an API key, in its own before_request hook
    (registered after geofence is installed), and keeps the account in ``g``."""
    app = Flask(__name__)
    app.config["GEOFENCE"] = ACCOUNTS

    @app.route("/v1/<path:p>")
    def v1(p: str) -> Response:
        seen.append(g.geofence)
        return Response("hello", headers={"Cache-Control": "max-age=60"})

    return app


def log_in(app: Flask) -> None:
    @app.before_request
    def authenticate() -> None:
        g.account = KEYS.get(request.headers.get("x-api-key", ""))


def from_g() -> Any:
    return g.get("account")


def get(app: Flask, peer: str, key: str | None = None, path: str = "/v1/models") -> Any:
    headers = {} if key is None else {"x-api-key": key}
    return app.test_client().get(path, headers=headers, environ_base={"REMOTE_ADDR": peer})


def test_the_hook_reads_g_set_by_the_apps_own_before_request_hook() -> None:
    seen: list[Any] = []
    app = api_app(seen)
    Geofence(app, account=from_g)
    log_in(app)  # registered after Geofence(app): geofence's hook still runs after it
    assert get(app, US).status_code == 200
    assert [get(app, US, "key-ru").status_code for _ in range(2)] == [451, 403]
    assert get(app, CN, "key-exempt").status_code == 200
    assert [(d.reason, d.account) for d in seen] == [
        ("default", None),
        ("exempt_account", "acct-exempt"),
    ]


def test_init_app_takes_the_hook() -> None:
    seen: list[Any] = []
    app = api_app(seen)
    log_in(app)
    Geofence().init_app(app, account=from_g)
    assert get(app, US, "key-ru").status_code == 451


def test_the_same_policy_again_with_another_hook_is_refused() -> None:
    app = api_app([])
    Geofence(app, account=from_g)
    Geofence(app, account=from_g)  # the same: nothing changes
    with pytest.raises(ConfigError, match="already installed"):
        Geofence(app, account=lambda: None)


def test_account_grace_warns_with_the_accounts_own_date() -> None:
    seen: list[Any] = []
    app = api_app(seen)
    log_in(app)
    Geofence(app, account=from_g)
    response = get(app, US, "key-ir")
    (decision,) = seen
    assert (decision.action, decision.reason, decision.account) == (
        "warn",
        "account_grace",
        HOME_IR.id,
    )
    assert response.headers["Sunset"] == format_datetime(decision.enforce_from, usegmt=True)
    assert response.headers["Cache-Control"] == "private, max-age=60"
    # The client's own warning (rule ir-grace) without an account:
    assert get(app, IR).headers["Sunset"] == WARN_HEADERS["sunset"]


def _raise() -> Any:
    raise RuntimeError("the app's hook is broken")


@pytest.mark.parametrize(("peer", "status"), [(US, 200), (CN, 451)])
def test_a_failing_hook_is_logged_and_the_request_decided_without_an_account(
    peer: str, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[Any] = []
    app = api_app(seen)
    Geofence(app, account=_raise)
    assert get(app, peer).status_code == status  # what it is without an account: no 500
    if status == 200:
        assert seen[0].account is None
    (record,) = [r for r in caplog.records if r.name == "geofence.flask"]
    assert record.levelno == logging.ERROR and "account hook" in record.getMessage()
    assert record.exc_info is not None and "the app's hook is broken" in caplog.text


class FlaskUser:
    """Not an account: what a hook returns when it forgets to make one."""


def test_a_hook_that_returns_no_account_is_logged_and_ignored(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[Any] = []
    app = api_app(seen)
    Geofence(app, account=FlaskUser)  # (the engine logs each wrong type once per process)
    assert get(app, US).status_code == 200
    assert seen[0].account is None
    assert "returned a FlaskUser, not a geofence.Account" in caplog.text


def test_an_app_hook_that_answers_first_cannot_let_a_blocked_client_through() -> None:
    """An app hook that answers before geofence's (a 401) never ran the hook: the request is
    decided without an account, and a blocked client gets the denial, not the 401."""
    calls: list[str] = []
    app = api_app([])

    @app.before_request
    def require_key() -> Any:
        if "x-api-key" not in request.headers:
            return Response("log in", status=401)
        return None

    def hook() -> Any:
        calls.append(request.path)
        return None

    Geofence(app, account=hook)
    blocked, refused = get(app, CN), get(app, US)
    assert blocked.status_code == 451
    assert blocked.json["error"]["code"] == "unsupported_country_region_territory"
    assert refused.status_code == 401 and refused.data == b"log in"
    assert calls == []


def test_after_request_hooks_add_to_a_denial_but_do_not_change_it() -> None:
    app = api_app([])
    Geofence(app, account=from_g)
    log_in(app)

    @app.after_request
    def cors(response: Response) -> Response:
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["Cache-Control"] = "public, max-age=3600"
        response.status_code = 200
        return response

    response = get(app, US, "key-ru")
    assert response.status_code == 451
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert response.headers["Cache-Control"] == "private, no-store"
    assert response.json["error"]["code"] == "unsupported_country_region_territory"


def test_an_exempt_view_is_not_decided_and_the_hook_not_called() -> None:
    calls: list[str] = []
    app = Flask(__name__)
    app.config["GEOFENCE"] = ACCOUNTS

    def hook() -> Any:
        calls.append(request.path)
        return HOME_RU

    geofence = Geofence(app, account=hook)

    @app.route("/v1/status")
    @geofence.exempt
    def status() -> str:
        return "up" if g.geofence is EXEMPT_DECISION else "decided"

    response = get(app, CN, path="/v1/status")
    assert (response.status_code, response.data) == (200, b"up")
    assert calls == []
    assert get(app, US, path="/v1/other").status_code == 451  # 404 route, still decided
    assert calls == ["/v1/other"]


# -- the geofence_event signal -------------------------------------------------------------


def test_every_engine_event_is_the_signal_and_a_failing_receiver_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = api_app([])
    other = api_app([])
    log_in(app)
    Geofence(app, account=from_g)
    got: list[tuple[Any, geofence.Event]] = []
    for_other: list[geofence.Event] = []

    def receiver(sender: Any, event: geofence.Event) -> None:
        got.append((sender, event))

    def broken(sender: Any, event: geofence.Event) -> None:
        raise RuntimeError("receiver bug")

    with (
        geofence_event.connected_to(broken, sender=app),
        geofence_event.connected_to(receiver, sender=app),
        geofence_event.connected_to(lambda s, event: for_other.append(event), sender=other),
    ):
        statuses = [get(app, US, "key-ru").status_code for _ in range(2)]
    assert statuses == [451, 403]
    assert [(sender, e.kind, e.account) for sender, e in got if e.kind not in REQUEST_KINDS] == [
        (app, "account_strike", HOME_RU.id),
        (app, "account_strike", HOME_RU.id),
        (app, "account_suspended", HOME_RU.id),
    ]
    assert for_other == []
    failures = [r for r in caplog.records if r.name == "geofence.flask"]
    assert len(failures) == 5 and all(r.exc_info is not None for r in failures)

"""The WSGI layer of the core (geofence.http._wsgi.WSGIGate) in front of a plain PEP 3333 app,
an account's answer applied when the app's response starts included. Flask's layer is this
gate plus Flask (tests/flask)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from scenarios.table import ACCOUNTS, BASE, CN, IR, US, WARN_HEADERS

import geofence
from geofence.hotpath._newclient import NATIVE
from geofence.http import Answer
from geofence.http._answer import EXEMPT_VIEW
from geofence.http._wsgi import DECISION_KEY, PROXY_FIX_KEY, WSGIGate

Environ = dict[str, Any]
HOME_RU = geofence.Account("acct-home-ru", home_country="RU")  # blocked by rule home-ru
HOME_IR = geofence.Account("acct-home-ir", home_country="IR")  # account grace


class Body:
    """An app's response body that records whether it was read and closed."""

    def __init__(self) -> None:
        self.read = self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        self.read = True
        yield b"app body"

    def close(self) -> None:
        self.closed = True


class App:
    """A WSGI app: records the decisions it saw; ``inside(environ)`` runs before it answers
    (where a framework knows who calls)."""

    def __init__(self, inside: Callable[[Environ], Any] | None = None) -> None:
        self.seen: list[Any] = []
        self.inside = inside
        self.body = Body()

    def __call__(self, environ: Environ, start_response: Any) -> Iterable[bytes]:
        if self.inside is not None:
            self.inside(environ)
        self.seen.append(environ.get(DECISION_KEY))
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-App", "1")])
        return self.body


class Started:
    def __init__(self) -> None:
        self.status = ""
        self.headers: dict[str, str] = {}

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        self.status, self.headers = status, {k.lower(): v for k, v in headers}
        return lambda data: None


def call(gate: WSGIGate, peer: str, path: str = "/v1/models", **extra: Any) -> Any:
    environ: Environ = {"REMOTE_ADDR": peer, "PATH_INFO": path, "REQUEST_METHOD": "GET", **extra}
    started = Started()
    body = b"".join(gate.wsgi(environ, started))
    return started, body, environ


def gate_for(config: dict[str, Any], app: App, account: Any = None) -> WSGIGate:
    return WSGIGate(geofence.Engine.from_config(config), app, account)


def test_allowed_blocked_and_warned_requests() -> None:
    app = App()
    gate = gate_for(BASE, app)
    allowed, body, environ = call(gate, US)
    assert (allowed.status, body) == ("200 OK", b"app body")
    assert environ[DECISION_KEY].reason == "default" and app.seen == [environ[DECISION_KEY]]
    blocked, body, environ = call(gate, CN)
    assert blocked.status.startswith("451") and b"unsupported_country" in body
    assert environ[DECISION_KEY].rule == "cn-api" and len(app.seen) == 1  # the app never ran
    warned, body, _ = call(gate, IR)
    assert warned.headers["sunset"] == WARN_HEADERS["sunset"] and warned.headers["x-app"] == "1"
    call(gate, US)  # repeated: the cached answer
    assert [d.reason for d in app.seen] == ["default", "rule", "default"]


def test_installed_twice_with_one_policy_the_outer_gate_decides() -> None:
    engine = geofence.Engine.from_config(BASE)
    inner = WSGIGate(engine, App())
    outer = WSGIGate(engine, inner.wsgi)
    asked: list[str] = []
    answer = engine.answer

    def counted(info: geofence.RequestInfo, now: Any = None) -> Answer:
        asked.append(info.path)
        return answer(info, now)

    engine.answer = counted  # type: ignore[method-assign]
    blocked, _, _ = call(outer, CN)
    warned, _, _ = call(outer, IR)
    assert blocked.status.startswith("451") and "sunset" in warned.headers
    assert asked == ["/v1/models", "/v1/models"]  # once per request


def test_the_peer_is_the_one_proxy_fix_rewrote_and_a_policy_without_trust_is_told(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate = WSGIGate(geofence.Engine.from_config(BASE), App(), logger=logging.getLogger("t.wsgi"))
    with caplog.at_level(logging.WARNING, logger="t.wsgi"):
        for _ in range(2):
            forged, _, environ = call(gate, CN, **{PROXY_FIX_KEY: {"REMOTE_ADDR": US}})
            assert forged.status == "200 OK" and environ[DECISION_KEY].client_ip == US
    (record,) = [r for r in caplog.records if r.name == "t.wsgi"]
    assert "client_ip.trusted_proxies" in record.getMessage()


class ExemptGate(WSGIGate):
    """A framework's gate with one exempt view, ``status``, routed under ``/status/``."""

    routed: list[str]

    def ready(self) -> None:
        self.routed = []
        self.exempt_views = frozenset({"status"})
        self.exempt_prefixes = ("/status/",)

    def routed_view(self, environ: Environ) -> str | None:
        self.routed.append(environ["PATH_INFO"])
        return "status" if environ["PATH_INFO"] == "/status/db" else None


def test_a_request_routed_to_an_exempt_view_is_never_decided() -> None:
    app = App()
    gate = ExemptGate(geofence.Engine.from_config(BASE), app)
    exempt, _, environ = call(gate, CN, "/status/db")
    assert exempt.status == "200 OK" and environ[DECISION_KEY] is EXEMPT_VIEW
    assert call(gate, CN, "/status/other")[2][DECISION_KEY].reason == "default"  # decided
    assert call(gate, CN, "/v1/models")[0].status.startswith("451")
    assert gate.routed == ["/status/db", "/status/other"]  # only under the prefixes


def test_with_an_account_the_answer_waits_for_the_app_to_know_the_caller() -> None:
    def inside(environ: Environ) -> None:
        denial = gate.decide_pending(environ, None)
        assert (denial is not None) == (environ["PATH_INFO"] == "/v1/denied")

    app = App(inside)
    gate = gate_for(ACCOUNTS, app, account=lambda: HOME_RU)
    denied, body, environ = call(gate, US, "/v1/denied")
    assert denied.status.startswith("451") and b"unsupported_country" in body
    assert denied.headers["x-app"] == "1"  # what the app added to the denial is kept
    assert environ[DECISION_KEY].rule == "home-ru"
    assert app.body.closed and not app.body.read  # replaced, never sent
    suspended, _, _ = call(gate, US, "/v1/denied")
    assert suspended.status.startswith("403")  # two strikes


def test_an_app_that_answers_before_asking_gets_the_decision_without_an_account() -> None:
    calls: list[str] = []
    app = App()  # never calls decide_pending
    gate = gate_for(ACCOUNTS, app, account=lambda: calls.append("hook") or HOME_RU)
    allowed, _, environ = call(gate, US)
    assert allowed.status == "200 OK" and environ[DECISION_KEY].account is None
    blocked, body, _ = call(gate, CN)
    assert blocked.status.startswith("451") and body.startswith(b"{")
    assert calls == []


def test_a_pending_request_routed_to_an_exempt_view_is_not_decided() -> None:
    calls: list[str] = []

    def inside(environ: Environ) -> None:
        assert gate.decide_pending(environ, "status") is None

    gate = ExemptGate(
        geofence.Engine.from_config(ACCOUNTS), App(inside), lambda: calls.append("hook")
    )
    exempt, _, environ = call(gate, CN, "/v1/status")
    assert exempt.status == "200 OK" and environ[DECISION_KEY] is EXEMPT_VIEW
    assert calls == []


def test_a_hook_that_raises_is_logged_and_the_request_decided_without_an_account(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def hook() -> Any:
        raise RuntimeError("the app's hook is broken")

    gate = WSGIGate(
        geofence.Engine.from_config(ACCOUNTS),
        App(lambda environ: gate.decide_pending(environ, None)),
        hook,
        logger=logging.getLogger("t.wsgi"),
    )
    allowed, _, environ = call(gate, US)
    assert allowed.status == "200 OK" and environ[DECISION_KEY].account is None
    (record,) = [r for r in caplog.records if r.name == "t.wsgi"]
    assert record.exc_info is not None and "account hook" in record.getMessage()


def test_with_an_account_a_warning_amends_the_apps_response() -> None:
    app = App(lambda environ: gate.decide_pending(environ, None))
    gate = gate_for(ACCOUNTS, app, account=lambda: HOME_IR)
    warned, body, environ = call(gate, US)
    assert warned.status == "200 OK" and body == b"app body" and app.body.read
    assert environ[DECISION_KEY].reason == "account_grace" and "sunset" in warned.headers
    assert warned.headers["x-app"] == "1"


class ProbedEngine(geofence.Engine):
    """Counts the answers it works out and its cache probes (quick() is one too: the gate asks
    it instead of cached() once it knows the app has no exempt view)."""

    answers = probes = 0

    def answer(self, request: geofence.RequestInfo, now: Any = None, account: Any = None) -> Answer:
        self.answers += 1
        return super().answer(request, now, account)

    def cached(
        self, peer: str | None, method: str, path: str, account: Any = None
    ) -> Answer | None:
        self.probes += 1
        return super().cached(peer, method, path, account)

    def quick(self, peer: str | None, method: str, path: str, account: Any = None) -> Answer | None:
        self.probes += 1
        return super().quick(peer, method, path, account)


@pytest.mark.parametrize(
    "extra",
    [{}, {PROXY_FIX_KEY: {"REMOTE_ADDR": US}}, {"REQUEST_METHOD": None}],
    ids=["plain", "proxy-fix", "no-method"],
)
def test_a_repeated_request_asks_the_cache_once_and_is_worked_out_once(
    extra: dict[str, Any],
) -> None:
    engine = ProbedEngine.from_config(BASE)
    app = App()
    gate = WSGIGate(engine, app)
    for _ in range(3):
        environ: Environ = {"REMOTE_ADDR": US, "PATH_INFO": "/v1/models", "REQUEST_METHOD": "GET"}
        environ.update(extra)
        if environ["REQUEST_METHOD"] is None:
            del environ["REQUEST_METHOD"]  # no server sends this: decided as a GET
        started = Started()
        assert b"".join(gate.wsgi(environ, started)) == b"app body"
        assert started.status == "200 OK"
    assert [d.country for d in app.seen] == ["US"] * 3
    assert (engine.answers, engine.probes) == (1, 3)


def test_a_request_behind_proxy_fix_is_not_answered_for_the_address_it_forwarded() -> None:
    # US called directly first: its allow is cached. Through ProxyFix, REMOTE_ADDR says US
    # but the socket peer was CN, and the policy trusts no proxy: CN is decided.
    gate = gate_for(BASE, App())
    direct, _, _ = call(gate, US)
    forwarded, _, environ = call(gate, US, **{PROXY_FIX_KEY: {"REMOTE_ADDR": CN}})
    assert direct.status == "200 OK" and forwarded.status.startswith("451")
    assert environ[DECISION_KEY].client_ip == CN


# New clients in the test database's US network (216.160.83.56/29), and in CN's.
NEW_US = [f"216.160.83.{n}" for n in range(57, 63)]
NEW_CN = ["175.16.199.2", "175.16.199.3"]


def test_new_allowed_clients_are_decided_without_their_request_facts() -> None:
    # Once the gate knows the app has no exempt view it asks Engine.quick, which (compiled)
    # decides a new allowed client with no RequestInfo and no answer(); a block is answer()'s,
    # and a repeated block too (its response depends on the request's headers).
    engine = ProbedEngine.from_config(BASE)
    gate = WSGIGate(engine, App())
    assert call(gate, US)[0].status == "200 OK"  # the first request sets the clock's window
    engine.answers = 0
    for peer in NEW_US:
        started, _, environ = call(gate, peer)
        assert started.status == "200 OK" and environ[DECISION_KEY].client_ip == peer
    for peer in NEW_CN:
        started, _, environ = call(gate, peer)
        assert started.status.startswith("451") and environ[DECISION_KEY].country == "CN"
    assert engine.answers == len(NEW_CN) + (0 if NATIVE else len(NEW_US))
    engine.answers = 0
    assert [call(gate, p)[0].status[:3] for p in [*NEW_US[:2], *NEW_CN]] == ["200"] * 2 + [
        "451"
    ] * 2
    assert engine.answers == len(NEW_CN)


def test_with_an_exempt_view_the_gate_never_decides_on_it() -> None:
    class ExemptGate(WSGIGate):
        def ready(self) -> None:
            self.exempt_views = frozenset({"health"})
            self.exempt_prefixes = ("/open",)

        def routed_view(self, environ: Environ) -> str | None:
            return "health" if environ["PATH_INFO"] == "/open" else None

    engine = geofence.Engine.from_config(BASE)
    gate = ExemptGate(engine, App())
    call(gate, US)
    started, _, environ = call(gate, NEW_US[0], "/open")
    assert started.status == "200 OK" and environ[DECISION_KEY] is EXEMPT_VIEW
    assert engine.cached(NEW_US[0], "GET", "/open") is None  # never decided

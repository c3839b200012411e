"""Django-specific behaviour: settings, system checks, startup errors, the template, ASGI."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.core.checks import run_checks
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.http import HttpRequest, HttpResponse
from django.test import Client, RequestFactory, override_settings
from django_support import PeerAsyncClient
from djsite import views
from scenarios.table import BASE, BROWSER_ACCEPT, CN, IR, US, merged

import geofence
from geofence.http import PAGE_CSP, TEMPLATE_CSP
from geofence_django import conf, middleware
from geofence_django.middleware import GeofenceMiddleware, request_info

BAD_CONFIG = merged(rules=[{"name": "x", "action": "block", "regions": ["UK"]}])
ACCEPT_HTML = {"accept": BROWSER_ACCEPT}
OURS = "geofence_django.middleware.GeofenceMiddleware"


def ids(messages: list[Any]) -> list[str]:
    return [m.id for m in messages if m.id.startswith("geofence_django.")]


def config_error_text(config: Any) -> str:
    with pytest.raises(geofence.ConfigError) as info:
        geofence.Engine.from_config(config)
    return str(info.value)


def ok(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"ok")


# -- settings, startup, system checks -----------------------------------------------------


def test_missing_setting_is_improperly_configured_and_e001() -> None:
    with override_settings():
        del settings.GEOFENCE
        with pytest.raises(ImproperlyConfigured, match="GEOFENCE is missing"):
            GeofenceMiddleware(ok)
        assert ids(run_checks()) == ["geofence_django.E001"]


def test_wrong_type_is_e001() -> None:
    with override_settings(GEOFENCE=["not", "a", "policy"]):
        with pytest.raises(ImproperlyConfigured, match="must be a dict or the path"):
            GeofenceMiddleware(ok)
        [message] = [m for m in run_checks() if m.id == "geofence_django.E001"]
        assert "list" in message.msg


def test_bad_policy_stops_startup_with_the_config_error_text() -> None:
    expected = config_error_text(BAD_CONFIG)
    assert expected.startswith("rules[0].regions[0]")
    with override_settings(GEOFENCE=BAD_CONFIG):
        with pytest.raises(ImproperlyConfigured) as info:
            GeofenceMiddleware(ok)
        assert expected in str(info.value)
        assert isinstance(info.value.__cause__, geofence.ConfigError)
        # A server never starts answering: the first request fails to build the handler.
        with pytest.raises(ImproperlyConfigured):
            Client().get("/v1/models")


def test_bad_policy_is_e002_in_manage_py_check() -> None:
    expected = config_error_text(BAD_CONFIG)
    with override_settings(GEOFENCE=BAD_CONFIG):
        [message] = [m for m in run_checks() if m.id == "geofence_django.E002"]
        assert message.msg == expected
        assert "settings.GEOFENCE" in message.hint
        with pytest.raises(SystemCheckError) as info:
            call_command("check")
        assert "geofence_django.E002" in str(info.value)
        assert expected in str(info.value)


def test_bad_policy_file_is_e002(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text('mode = "sometimes"\n')
    expected = config_error_text(str(path))
    with override_settings(GEOFENCE=str(path)):
        assert [m.msg for m in run_checks() if m.id == "geofence_django.E002"] == [expected]


def test_good_policy_file_and_silence(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text('{"rules": [{"name": "cn", "action": "block", "regions": ["CN"]}]}')
    with override_settings(GEOFENCE=str(path)):
        assert ids(run_checks()) == []
        assert Client(REMOTE_ADDR=CN).get("/x").status_code == 451
    with override_settings(GEOFENCE=BAD_CONFIG, SILENCED_SYSTEM_CHECKS=["geofence_django.E002"]):
        call_command("check")  # silenced, e.g. for a Docker build without the database


def test_w001_when_middleware_missing() -> None:
    with override_settings(GEOFENCE=BASE, MIDDLEWARE=[]):
        assert ids(run_checks()) == ["geofence_django.W001"]
    with override_settings(GEOFENCE=BASE):
        assert ids(run_checks()) == []


def test_engine_built_once_and_shared_then_rebuilt_on_change() -> None:
    with override_settings(GEOFENCE=BASE):
        first = GeofenceMiddleware(ok)
        assert GeofenceMiddleware(ok).engine is first.engine
        assert conf.get_engine() is first.engine
        with override_settings(GEOFENCE=merged(mode="report")):
            assert conf.get_engine() is not first.engine
            assert conf.get_engine().policy.mode == "report"


def test_dict_changed_in_place_gets_a_new_engine() -> None:
    config = merged()
    with override_settings(GEOFENCE=config):
        before = conf.get_engine()
        config["mode"] = "report"
        assert conf.get_engine() is not before


# -- the block page template --------------------------------------------------------------


def test_default_template_is_the_core_page_byte_for_byte() -> None:
    with override_settings(GEOFENCE=BASE):
        response = Client(REMOTE_ADDR=CN).get("/web/home", headers=ACCEPT_HTML)
        engine = conf.get_engine()
        info = geofence.RequestInfo(peer=CN, headers=list(ACCEPT_HTML.items()), path="/web/home")
        denial = engine.answer(info).response
    assert denial is not None and denial.html
    assert response.status_code == 451
    assert response.content == denial.body
    assert response["Content-Length"] == str(len(denial.body))
    assert response["Content-Security-Policy"] == dict(denial.headers)["Content-Security-Policy"]


def _template_dir(tmp_path: Path, text: str) -> list[dict[str, Any]]:
    (tmp_path / "geofence").mkdir()
    (tmp_path / "geofence" / "blocked.html").write_text(text)
    return [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "DIRS": [str(tmp_path)],
            "APP_DIRS": True,
        }
    ]


def test_template_override_is_used_with_the_documented_context(tmp_path: Path) -> None:
    templates = _template_dir(
        tmp_path,
        "<html><body><h1>{{ title }}</h1><p>{{ message }}</p><a href='{{ info_url }}'>more</a>"
        "<code>{{ status }} {{ code }}</code></body></html>",
    )
    config = merged(message="Nicht hier <b>")
    with override_settings(GEOFENCE=config, TEMPLATES=templates):
        get = Client(REMOTE_ADDR=CN).get("/web/home", headers=ACCEPT_HTML)
        head = Client(REMOTE_ADDR=CN).head("/web/home", headers=ACCEPT_HTML)
    page = get.content.decode()
    assert get.status_code == 451
    assert get["Content-Type"].startswith("text/html")
    assert "<p>Nicht hier &lt;b&gt;</p>" in page
    assert "href='https://example.com/supported-countries'" in page
    assert "<code>451 unsupported_country_region_territory</code>" in page
    assert get["Content-Length"] == str(len(get.content))
    assert get["Cache-Control"] == "private, no-store"
    # The core's CSP pins its own style sheet by hash; a project's page gets the template CSP.
    assert get["Content-Security-Policy"] == TEMPLATE_CSP
    # HEAD: the GET page's length, no body.
    assert head.status_code == 451
    assert head.content == b""
    assert head["Content-Length"] == get["Content-Length"]


def test_head_first_gets_the_get_page_headers_without_a_body() -> None:
    with override_settings(GEOFENCE=BASE):
        head = Client(REMOTE_ADDR=CN).head("/web/home", headers=ACCEPT_HTML)
        get = Client(REMOTE_ADDR=CN).get("/web/home", headers=ACCEPT_HTML)
    assert head.status_code == get.status_code == 451
    assert head.content == b""
    assert head["Content-Length"] == get["Content-Length"] == str(len(get.content))
    # The default template prints the core's page: its own CSP stays.
    assert head["Content-Security-Policy"] == get["Content-Security-Policy"] == PAGE_CSP


def test_json_answers_ignore_the_template(tmp_path: Path) -> None:
    templates = _template_dir(tmp_path, "CUSTOM")
    with override_settings(GEOFENCE=BASE, TEMPLATES=templates):
        response = Client(REMOTE_ADDR=CN).get("/v1/models")
    assert response.json()["error"]["code"] == "unsupported_country_region_territory"


def test_broken_template_is_w002_and_still_blocks_with_default_page(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    templates = _template_dir(tmp_path, "{% if %}")
    with override_settings(GEOFENCE=BASE, TEMPLATES=templates):
        assert ids(run_checks()) == ["geofence_django.W002"]
        with caplog.at_level(logging.ERROR, logger="geofence.django"):
            response = Client(REMOTE_ADDR=CN).get("/web/home", headers=ACCEPT_HTML)
    assert response.status_code == 451
    assert b"<html" in response.content.lower()
    assert response["Content-Length"] == str(len(response.content))
    assert "cannot render geofence/blocked.html" in caplog.text


def test_without_templates_the_core_page_is_sent() -> None:
    with override_settings(GEOFENCE=BASE, TEMPLATES=[]):
        response = Client(REMOTE_ADDR=CN).get("/web/home", headers=ACCEPT_HTML)
    assert response.status_code == 451
    assert b"<html" in response.content.lower()


# -- translation --------------------------------------------------------------------------


def test_request_info_from_meta() -> None:
    request = RequestFactory().post(
        "/v1/chat?q=1",
        data=b"{}",
        content_type="application/json",
        headers={"X-Forwarded-For": "1.2.3.4", "Accept": "text/html", "Host": "api.example.com"},
        REMOTE_ADDR="10.0.0.5",
        SCRIPT_NAME="/mount",
    )
    info = request_info(request)
    headers = dict(info.headers)
    assert info.peer == "10.0.0.5"
    assert info.method == "POST"
    assert info.path == "/v1/chat"
    assert info.host == "api.example.com"
    assert headers["x-forwarded-for"] == "1.2.3.4"
    assert headers["accept"] == "text/html"
    assert headers["content-type"] == "application/json"
    assert headers["content-length"] == "2"
    assert all(name == name.lower() and "_" not in name for name in headers)
    pairs = list(info.headers)
    assert len(info.headers) == len(pairs)
    assert info.headers[0] == pairs[0]
    assert info.headers[-2:] == pairs[-2:]


def test_mount_prefix_is_not_part_of_the_path() -> None:
    config = merged(
        rules=[{"name": "cn", "action": "block", "regions": ["CN"], "paths": ["/v1/*"]}]
    )
    with override_settings(GEOFENCE=config):
        assert Client(REMOTE_ADDR=CN).get("/v1/models", SCRIPT_NAME="/api").status_code == 451
    config = merged(
        rules=[{"name": "cn", "action": "block", "regions": ["CN"], "paths": ["/api/*"]}]
    )
    with override_settings(GEOFENCE=config):
        assert Client(REMOTE_ADDR=CN).get("/v1/models", SCRIPT_NAME="/api").status_code == 200


def test_forged_host_does_not_raise_disallowed_host() -> None:
    with override_settings(GEOFENCE=BASE, ALLOWED_HOSTS=["api.example.com"]):
        response = Client(REMOTE_ADDR=CN).get("/v1/models", headers={"host": "evil.example"})
    assert response.status_code == 451


def test_no_remote_addr_is_unresolved_not_a_crash() -> None:
    with override_settings(GEOFENCE=BASE):
        response = Client(REMOTE_ADDR="").get("/about")
    assert response.status_code == 200
    assert views.SEEN[-1].reason == "unresolved_client"


def test_installed_twice_decides_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_decisions(monkeypatch)
    with override_settings(GEOFENCE=BASE, MIDDLEWARE=[OURS, OURS]):
        warned = Client(REMOTE_ADDR=IR).get("/v1/chat")
        assert len(calls) == 1
        blocked = Client(REMOTE_ADDR=CN).get("/v1/models")
        assert len(calls) == 2
    assert warned["Cache-Control"] == "private, max-age=60"  # merged once, not twice
    assert blocked.status_code == 451


def _count_decisions(monkeypatch: pytest.MonkeyPatch) -> list[geofence.RequestInfo]:
    """The requests the engine is asked to decide (a repeated allowed request is answered
    from its cache without being decided again, and is not counted)."""
    calls: list[geofence.RequestInfo] = []
    answer = geofence.Engine.answer
    decide = geofence.Engine.decide

    def counting_answer(
        self: geofence.Engine, info: geofence.RequestInfo, now: Any = None, account: Any = None
    ) -> Any:
        calls.append(info)
        return answer(self, info, now, account)

    def counting_decide(
        self: geofence.Engine, info: geofence.RequestInfo, now: Any = None, account: Any = None
    ) -> Any:
        calls.append(info)
        return decide(self, info, now, account)

    monkeypatch.setattr(geofence.Engine, "answer", counting_answer)
    monkeypatch.setattr(geofence.Engine, "decide", counting_decide)
    return calls


def test_mode_off_installed_twice_gives_the_view_the_off_decision(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _count_decisions(monkeypatch)
    with override_settings(GEOFENCE=merged(mode="off"), MIDDLEWARE=[OURS, OURS]):
        response = Client(REMOTE_ADDR=CN).get("/v1/models")
    assert response.status_code == 200
    # Nothing is decided, neither at startup nor for the request.
    assert [info.peer for info in calls] == []
    assert [(d.action, d.reason) for d in views.SEEN] == [("allow", "off")]  # type: ignore[attr-defined]


def test_a_decision_set_before_the_middleware_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another instance (an outer one, or a subclass) that decided first is not overruled."""
    calls = _count_decisions(monkeypatch)
    earlier = object()

    def app(request: HttpRequest) -> HttpResponse:
        assert request.geofence is earlier  # type: ignore[attr-defined]
        return HttpResponse(b"ok")

    request = RequestFactory().get("/v1/models", REMOTE_ADDR=CN)
    request.geofence = earlier  # type: ignore[attr-defined]
    with override_settings(GEOFENCE=BASE):
        # What an instance with this policy leaves on a request it has answered.
        request.META[middleware.MARK] = conf.get_engine().mark
        response = GeofenceMiddleware(app)(request)
    assert calls == []
    assert response.status_code == 200  # type: ignore[union-attr]


def _logged_actions(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.geofence["action"] for r in caplog.records if hasattr(r, "geofence")]


@pytest.mark.parametrize("asgi", [False, True], ids=["wsgi", "asgi"])
@pytest.mark.parametrize(
    ("peer", "path", "status", "action"),
    [(CN, "/v1/models", 451, "block"), (IR, "/v1/chat", 200, "warn"), (US, "/v1/x", 200, "allow")],
)
def test_installed_twice_with_the_same_policy_decides_and_logs_once(
    asgi: bool,
    peer: str,
    path: str,
    status: int,
    action: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = _count_decisions(monkeypatch)
    caplog.set_level(logging.INFO, logger="geofence")
    urls = "djsite.urls_async" if asgi else "djsite.urls"
    with override_settings(GEOFENCE=BASE, MIDDLEWARE=[OURS, OURS], ROOT_URLCONF=urls):
        for _ in range(2):  # a new request, then the same again
            if asgi:
                response = asyncio.run(PeerAsyncClient(peer).get(path))
            else:
                response = Client(REMOTE_ADDR=peer).get(path)
            assert response.status_code == status
            if action == "warn":
                assert response["Cache-Control"] == "private, max-age=60"
    if action == "allow":
        # Decided once; the repeat is answered from the engine's cache, by both instances.
        assert len(calls) == 1
        assert _logged_actions(caplog) == []
    else:
        assert len(calls) == 2  # once per request: the inner instance passes it on
        # One line, not one per instance; the repeat (same client, same reference) is counted
        # by the log limits rather than logged again (geofence._logs).
        assert _logged_actions(caplog) == [action]
    seen = [d.action for d in views.SEEN]  # type: ignore[attr-defined]
    assert seen == ([] if action == "block" else [action, action])


def test_installed_twice_with_different_policies_applies_both() -> None:
    """An outer instance built with another policy (settings changed in between) does not
    stop the inner one from deciding with its own: both policies apply, the outer first."""
    seen: list[Any] = []

    def app(request: HttpRequest) -> HttpResponse:
        seen.append(request.geofence)  # type: ignore[attr-defined]
        response = HttpResponse(b"ok")
        response["Cache-Control"] = "max-age=60"
        return response

    with override_settings(GEOFENCE=BASE):
        strict = GeofenceMiddleware(app)
    with override_settings(GEOFENCE=merged(rules=[])):
        lenient_outside = GeofenceMiddleware(strict)
        lenient_inside = GeofenceMiddleware(app)
    with override_settings(GEOFENCE=BASE):
        strict_outside = GeofenceMiddleware(lenient_inside)
    factory = RequestFactory()
    for _ in range(2):  # a new request, then the same again
        blocked = lenient_outside(factory.get("/v1/models", REMOTE_ADDR=CN))
        assert blocked.status_code == 451  # type: ignore[union-attr]
        assert seen == []
        warned = lenient_outside(factory.get("/v1/chat", REMOTE_ADDR=IR))
        assert warned["Cache-Control"] == "private, max-age=60"  # type: ignore[index]
        assert seen.pop().action == "warn"
        blocked = strict_outside(factory.get("/v1/models", REMOTE_ADDR=CN))
        assert blocked.status_code == 451  # type: ignore[union-attr]
        assert seen == []


def test_a_repeated_allowed_request_builds_no_request_info(monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[HttpRequest] = []
    translate = middleware.request_info

    def spy(request: HttpRequest) -> geofence.RequestInfo:
        built.append(request)
        return translate(request)

    monkeypatch.setattr(middleware, "request_info", spy)
    with override_settings(GEOFENCE=BASE):
        client = Client(REMOTE_ADDR=US)
        for _ in range(3):
            assert client.get("/v1/models").status_code == 200
    assert len(built) == 1
    assert [d.reason for d in views.SEEN] == ["default"] * 3  # type: ignore[attr-defined]


# -- async --------------------------------------------------------------------------------


def test_async_chain_has_no_thread_hop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Under ASGI the middleware runs on the event loop, not via sync_to_async."""
    on_loop: list[bool] = []
    translate = middleware.request_info

    def spy(request: HttpRequest) -> geofence.RequestInfo:
        try:
            asyncio.get_running_loop()
            on_loop.append(True)
        except RuntimeError:
            on_loop.append(False)
        return translate(request)

    monkeypatch.setattr(middleware, "request_info", spy)

    async def send() -> tuple[int, int]:
        allowed = await PeerAsyncClient(US).get("/v1/models")
        blocked = await PeerAsyncClient(CN).get("/v1/models")
        return allowed.status_code, blocked.status_code

    with override_settings(GEOFENCE=BASE, ROOT_URLCONF="djsite.urls_async"):
        assert asyncio.run(send()) == (200, 451)
    assert on_loop == [True, True]


def test_sync_and_async_modes() -> None:
    async def async_view(request: HttpRequest) -> HttpResponse:
        return HttpResponse(b"ok")

    with override_settings(GEOFENCE=BASE):
        assert not iscoroutinefunction(GeofenceMiddleware(ok))
        assert iscoroutinefunction(GeofenceMiddleware(async_view))


def test_installed_twice_decides_once_under_asgi(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _count_decisions(monkeypatch)

    async def send() -> tuple[HttpResponse, HttpResponse]:
        warned = await PeerAsyncClient(IR).get("/v1/chat")
        blocked = await PeerAsyncClient(CN).get("/v1/models")
        return warned, blocked

    with override_settings(
        GEOFENCE=BASE, MIDDLEWARE=[OURS, OURS], ROOT_URLCONF="djsite.urls_async"
    ):
        warned, blocked = asyncio.run(send())
    assert len(calls) == 2
    assert warned.status_code == 200
    assert warned["Cache-Control"] == "private, max-age=60"  # merged once, not twice
    assert blocked.status_code == 451


def test_mode_off_under_asgi_sets_the_decision_and_changes_nothing() -> None:
    async def send() -> HttpResponse:
        return await PeerAsyncClient(CN).get("/v1/models")

    with override_settings(
        GEOFENCE=merged(mode="off"), MIDDLEWARE=[OURS, OURS], ROOT_URLCONF="djsite.urls_async"
    ):
        response = asyncio.run(send())
    assert response.status_code == 200
    assert "Cache-Control" in response and response["Cache-Control"] == "max-age=60"
    assert [(d.action, d.reason) for d in views.SEEN] == [("allow", "off")]  # type: ignore[attr-defined]


def test_a_repeated_client_behind_a_trusted_proxy_is_answered_from_the_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _count_decisions(monkeypatch)
    proxied = {**BASE, "client_ip": {"trusted_proxies": ["10.0.0.0/8"]}}
    with override_settings(GEOFENCE=proxied):
        client = Client(REMOTE_ADDR="10.0.0.1")
        for _ in range(3):
            assert client.get("/v1/x", HTTP_X_FORWARDED_FOR=US).status_code == 200
            assert views.SEEN[-1].client_ip == US
        assert len(calls) == 1  # the proxy's address and the line found it again
        # Another line is another client: decided, never answered from US's entry.
        assert client.get("/v1/models", HTTP_X_FORWARDED_FOR=CN).status_code == 451
        assert client.get("/v1/models", HTTP_X_FORWARDED_FOR=CN).status_code == 451
        assert len(calls) == 3  # a block is decided (and logged) on every request


def test_a_new_allowed_client_is_decided_without_its_request_facts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # On the compiled build, a cache miss that is no exempt view asks Engine.quick, which
    # decides a new allowed client from (peer, method, path): no RequestInfo, no answer().
    # A block is still answer()'s (its response depends on the request's headers).
    from geofence.hotpath._newclient import NATIVE

    calls = _count_decisions(monkeypatch)
    new_us = [f"216.160.83.{n}" for n in range(57, 61)]
    with override_settings(GEOFENCE=BASE):
        assert Client(REMOTE_ADDR=US).get("/v1/models").status_code == 200
        del calls[:]
        for peer in new_us:
            assert Client(REMOTE_ADDR=peer).get("/v1/models").status_code == 200
            assert views.SEEN[-1].client_ip == peer and views.SEEN[-1].country == "US"  # type: ignore[attr-defined]
        assert Client(REMOTE_ADDR="175.16.199.2").get("/v1/models").status_code == 451
    assert [info.peer for info in calls] == (
        ["175.16.199.2"] if NATIVE else [*new_us, "175.16.199.2"]
    )

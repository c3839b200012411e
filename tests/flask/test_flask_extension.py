"""Flask-specific behaviour of the extension: setup styles, blueprints, @exempt, hook order,
ProxyFix, installing twice."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("flask")

from flask import Blueprint, Flask, Response, abort, g, request
from flask.views import MethodView
from scenarios.table import APP_LINK, BASE, CN, IR, RU, SE, US, WARN_HEADERS, merged
from werkzeug.middleware.proxy_fix import ProxyFix

from geofence import ConfigError, Decision, Engine
from geofence_flask import EXEMPT_DECISION, Geofence

BLOCK_CN = {
    "rules": [{"name": "no-cn", "action": "block", "regions": ["CN"]}],
    "geoip": BASE["geoip"],
}
BLOCK_US = {
    "rules": [{"name": "no-us", "action": "block", "regions": ["US"]}],
    "geoip": BASE["geoip"],
}


def get(app: Flask, path: str, peer: str, **kwargs: Any) -> Any:
    return app.test_client().get(path, environ_base={"REMOTE_ADDR": peer}, **kwargs)


def seen_app(config: Mapping[str, Any] | None = None) -> tuple[Flask, list[Decision]]:
    """An app with a catch-all view that records g.geofence; geofence NOT installed yet."""
    app = Flask(__name__)
    if config is not None:
        app.config["GEOFENCE"] = config
    seen: list[Decision] = []

    @app.route("/", defaults={"p": ""})
    @app.route("/<path:p>")
    def catch_all(p: str) -> str:
        seen.append(g.geofence)
        return "ok"

    return app, seen


# -- setup styles ----------------------------------------------------------------------------


def test_application_factory_one_extension_many_apps() -> None:
    geofence = Geofence()

    def create_app(config: Mapping[str, Any]) -> Flask:
        app, _ = seen_app(config)
        geofence.init_app(app)
        return app

    blocks_cn, blocks_us = create_app(BLOCK_CN), create_app(BLOCK_US)
    assert get(blocks_cn, "/", CN).status_code == 451
    assert get(blocks_cn, "/", US).status_code == 200
    assert get(blocks_us, "/", CN).status_code == 200
    assert get(blocks_us, "/", US).status_code == 451
    engines = {blocks_cn.extensions["geofence"].engine, blocks_us.extensions["geofence"].engine}
    assert len(engines) == 2
    assert all(isinstance(e, Engine) for e in engines)


def test_constructor_config_wins_over_app_config() -> None:
    app, _ = seen_app(BLOCK_CN)
    Geofence(app, config=BLOCK_US)
    assert get(app, "/", CN).status_code == 200
    assert get(app, "/", US).status_code == 451


def test_constructor_config_means_app_config_is_not_read() -> None:
    app, _ = seen_app({"rules": [{"action": "block", "regions": ["UK"]}]})
    Geofence(app, config=BLOCK_CN)
    assert get(app, "/", CN).status_code == 451


def test_config_from_file_path(tmp_path: Path) -> None:
    path = tmp_path / "geofence.json"
    path.write_text(json.dumps(BLOCK_CN))
    app, _ = seen_app(str(path))
    Geofence(app)
    assert get(app, "/", CN).status_code == 451


def test_missing_config_is_a_config_error_naming_the_setting() -> None:
    app, _ = seen_app()
    with pytest.raises(ConfigError) as error:
        Geofence(app)
    assert error.value.key == "GEOFENCE"
    assert "app.config['GEOFENCE']" in str(error.value)
    assert "geofence" not in app.extensions


def test_bad_config_raises_at_init_app_and_installs_nothing() -> None:
    app, _ = seen_app({"rules": [{"action": "block", "regions": ["UK"]}]})
    geofence = Geofence()
    with pytest.raises(ConfigError) as error:
        geofence.init_app(app)
    assert "rules[0].regions[0]" in str(error.value)
    assert "geofence" not in app.extensions
    assert not app.before_request_funcs.get(None)


def test_missing_database_raises_at_init_app(tmp_path: Path) -> None:
    app, _ = seen_app({"geoip": {"country_db": str(tmp_path / "nope.mmdb")}})
    with pytest.raises(ConfigError) as error:
        Geofence(app)
    assert error.value.key.startswith("geoip.country_db")


# -- where the hook runs ---------------------------------------------------------------------


def test_runs_before_hooks_registered_earlier_and_for_404_and_405() -> None:
    app = Flask(__name__)
    app.config["GEOFENCE"] = BLOCK_CN
    ran: list[str] = []

    @app.before_request
    def reads_the_form() -> None:  # like a CSRF check: would read a blocked request's body
        ran.append(request.path)

    @app.get("/only-get")
    def only_get() -> str:
        return "ok"

    Geofence(app)
    client = app.test_client()
    assert client.get("/missing", environ_base={"REMOTE_ADDR": CN}).status_code == 451
    assert client.post("/only-get", environ_base={"REMOTE_ADDR": CN}).status_code == 451
    assert ran == []
    assert client.get("/missing", environ_base={"REMOTE_ADDR": US}).status_code == 404
    assert client.post("/only-get", environ_base={"REMOTE_ADDR": US}).status_code == 405
    assert ran == ["/missing", "/only-get"]


def test_blueprint_views_and_hooks() -> None:
    app = Flask(__name__)
    app.config["GEOFENCE"] = merged()
    api = Blueprint("api", __name__, url_prefix="/v1")
    ran: list[str] = []

    @api.before_request
    def blueprint_hook() -> None:
        ran.append(request.path)

    @api.get("/models")
    def models() -> dict[str, Any]:
        return {"country": g.geofence.country}

    app.register_blueprint(api)
    Geofence(app)
    blocked = get(app, "/v1/models", CN)
    assert blocked.status_code == 451
    assert blocked.json is not None
    assert blocked.json["error"]["code"] == "unsupported_country_region_territory"
    assert ran == []
    allowed = get(app, "/v1/models", US)
    assert allowed.json == {"country": "US"}
    assert ran == ["/v1/models"]


def test_mount_prefix_is_not_part_of_the_path() -> None:
    app, seen = seen_app(merged())
    Geofence(app)
    client = app.test_client()
    base = "http://localhost/mount"
    blocked = client.get("/v1/models", base_url=base, environ_base={"REMOTE_ADDR": CN})
    assert blocked.status_code == 451
    exempt = client.get("/healthz", base_url=base, environ_base={"REMOTE_ADDR": CN})
    assert exempt.status_code == 200
    assert seen[-1].reason == "exempt_path"


# -- @exempt ---------------------------------------------------------------------------------


def test_exempt_is_per_endpoint_not_per_path() -> None:
    app = Flask(__name__)
    app.config["GEOFENCE"] = BLOCK_CN
    geofence = Geofence(app)
    seen: list[Decision] = []

    @app.get("/v1/thing")
    @geofence.exempt
    def read_thing() -> str:
        seen.append(g.geofence)
        return "read"

    @app.post("/v1/thing")
    def write_thing() -> str:
        return "written"

    @geofence.exempt  # above the route decorator works too: the function itself is marked
    @app.get("/v1/status")
    def status() -> str:
        return "up"

    client = app.test_client()
    env = {"REMOTE_ADDR": CN}
    assert client.get("/v1/thing", environ_base=env).data == b"read"
    assert seen == [EXEMPT_DECISION]
    assert seen[0].reason == "exempt_view"
    assert client.post("/v1/thing", environ_base=env).status_code == 451
    assert client.get("/v1/status", environ_base=env).data == b"up"
    # A URL that only redirects to the exempt view is not that view: it is decided.
    assert client.get("/v1//thing", environ_base=env).status_code == 451
    assert client.get("/v1/thing/x", environ_base=env).status_code == 451


def test_exempt_blueprint_view_and_method_view() -> None:
    app = Flask(__name__)
    app.config["GEOFENCE"] = BLOCK_CN
    geofence = Geofence()
    bp = Blueprint("public", __name__, url_prefix="/public")

    @bp.get("/open")
    @geofence.exempt
    def open_view() -> str:
        return "open"

    @bp.get("/closed")
    def closed_view() -> str:
        return "closed"

    class Status(MethodView):
        decorators = (geofence.exempt,)

        def get(self) -> str:
            return "status"

    bp.add_url_rule("/status", view_func=Status.as_view("status"))
    app.register_blueprint(bp)
    geofence.init_app(app)
    assert get(app, "/public/open", CN).data == b"open"
    assert get(app, "/public/status", CN).data == b"status"
    assert get(app, "/public/closed", CN).status_code == 451


def test_exempt_async_view() -> None:
    pytest.importorskip("asgiref")
    app = Flask(__name__)
    app.config["GEOFENCE"] = BLOCK_CN
    geofence = Geofence(app)

    @app.get("/async-open")
    @geofence.exempt
    async def async_open() -> str:
        return g.geofence.reason  # type: ignore[no-any-return]

    @app.get("/async-closed")
    async def async_closed() -> str:
        return "closed"

    assert get(app, "/async-open", CN).data == b"exempt_view"
    assert get(app, "/async-closed", CN).status_code == 451
    assert get(app, "/async-closed", US).data == b"closed"


# -- installed twice, shared app context -----------------------------------------------------


def counting(engine: Engine) -> list[str]:
    """The paths of the requests ``engine`` works out: those it is asked to answer, and those
    quick() decides (a new client); a cache hit is neither."""
    calls: list[str] = []
    answer, quick = engine.answer, engine.quick

    def counted(info: Any, now: Any = None) -> Any:
        calls.append(info.path)
        return answer(info, now)

    def quick_counted(peer: Any, method: str, path: str, *more: Any) -> Any:
        new = not more and engine.cached(peer, method, path) is None
        found = quick(peer, method, path, *more)
        if new and found is not None:
            calls.append(path)
        return found

    engine.answer = counted  # type: ignore[method-assign]
    engine.quick = quick_counted  # type: ignore[method-assign]
    return calls


def test_installed_twice_decides_once() -> None:
    app, seen = seen_app(merged())
    Geofence(app)
    Geofence().init_app(app)
    Geofence(app, config=merged())
    calls = counting(app.extensions["geofence"].engine)
    assert get(app, "/v1/models", CN).status_code == 451
    assert get(app, "/v1/chat", IR).headers["Sunset"] == WARN_HEADERS["sunset"]
    assert calls == ["/v1/models", "/v1/chat"]
    assert len(seen) == 1
    assert app.extensions["geofence"].outer is None


def test_installed_twice_with_different_policies_both_apply(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, seen = seen_app(BLOCK_CN)
    Geofence(app)
    Geofence(app, config=BLOCK_US)
    Geofence(app, config=BLOCK_CN)  # a policy installed already: nothing changes
    first = app.extensions["geofence"]
    second = first.outer
    assert second is not None and second.outer is None
    assert app.wsgi_app == second.wsgi
    assert first.engine.policy != second.engine.policy
    cn_calls, us_calls = counting(first.engine), counting(second.engine)
    with caplog.at_level(logging.INFO, logger="geofence"):
        assert get(app, "/v1/models", CN).status_code == 451  # the first policy's block
        assert get(app, "/v1/models", US).status_code == 451  # the second policy's block
        assert get(app, "/v1/models", SE).status_code == 200
    assert [d.country for d in seen] == ["SE"]
    # The one installed last decides first: a US request never reaches the CN policy.
    assert us_calls == ["/v1/models", "/v1/models", "/v1/models"]
    assert cn_calls == ["/v1/models", "/v1/models"]
    blocks = [r for r in caplog.records if r.name == "geofence" and r.levelno == logging.INFO]
    assert len(blocks) == 2


def test_different_policies_each_add_their_warning_once() -> None:
    app = Flask(__name__)
    app.config["GEOFENCE"] = merged()

    @app.get("/v1/chat")
    def chat() -> Response:
        return Response("hi", headers={"Link": APP_LINK, "Cache-Control": "max-age=60"})

    Geofence(app)
    Geofence(app, config=BLOCK_US)
    warned = get(app, "/v1/chat", IR)
    assert warned.data == b"hi"
    assert warned.headers.getlist("Sunset") == [WARN_HEADERS["sunset"]]
    assert warned.headers["Cache-Control"] == "private, max-age=60"
    assert get(app, "/v1/chat", US).status_code == 451
    assert get(app, "/v1/chat", CN).status_code == 451


def mounting(config: Mapping[str, Any], mounted_config: Mapping[str, Any]) -> tuple[Flask, Flask]:
    """An app whose views answer with a second geofenced app, in the same WSGI environ (as a
    view that returns a WSGI app does): the request passes both layers."""
    mounted, _ = seen_app(mounted_config)
    Geofence(mounted)
    app = Flask(__name__)
    app.config["GEOFENCE"] = config
    app.add_url_rule("/<path:p>", view_func=lambda p: mounted.wsgi_app)
    Geofence(app)
    return app, mounted


def test_layers_of_two_apps_with_one_policy_decide_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, mounted = mounting(merged(), merged())
    outer, inner = (
        counting(app.extensions["geofence"].engine),
        counting(mounted.extensions["geofence"].engine),
    )
    with caplog.at_level(logging.INFO, logger="geofence"):
        warned = get(app, "/v1/chat", IR)
    assert warned.data == b"ok"
    assert warned.headers.getlist("Sunset") == [WARN_HEADERS["sunset"]]
    assert warned.headers.getlist("Cache-Control") == ["private"]
    assert get(app, "/v1/models", CN).status_code == 451
    assert get(app, "/v1/models", US).data == b"ok"
    assert outer == ["/v1/chat", "/v1/models", "/v1/models"]
    assert inner == []  # the outer layer's mark: this policy has answered
    warnings = [r for r in caplog.records if r.name == "geofence" and r.levelno == logging.INFO]
    assert len(warnings) == 1


def test_layers_of_two_apps_with_different_policies_both_apply() -> None:
    app, mounted = mounting(merged(), BLOCK_US)
    inner = counting(mounted.extensions["geofence"].engine)
    assert get(app, "/v1/models", CN).status_code == 451  # the outer policy
    assert get(app, "/v1/models", US).status_code == 451  # the inner one
    warned = get(app, "/v1/chat", IR)
    assert warned.data == b"ok"
    assert warned.headers.getlist("Sunset") == [WARN_HEADERS["sunset"]]
    assert inner == ["/v1/models", "/v1/chat"]


def test_shared_app_context_does_not_leak_between_requests() -> None:
    """Flask reuses an already pushed app context (and its ``g``) for every request."""
    app, seen = seen_app(merged())

    @app.url_value_preprocessor
    def reject_some(endpoint: str | None, values: dict[str, Any] | None) -> None:
        if request.path == "/reject":
            abort(400)  # before any before_request hook: geofence never sees this request

    Geofence(app)
    client = app.test_client()
    with app.app_context():
        warned = client.get("/v1/chat", environ_base={"REMOTE_ADDR": IR})
        assert "Sunset" in warned.headers
        rejected = client.get("/reject", environ_base={"REMOTE_ADDR": US})
        assert rejected.status_code == 400
        assert "Sunset" not in rejected.headers
        allowed = client.get("/about", environ_base={"REMOTE_ADDR": US})
        assert "Sunset" not in allowed.headers
    assert [d.country for d in seen] == ["IR", "US"]


# -- responses -------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["hook-first", "hook-last"])
def test_other_after_request_hooks_cannot_make_a_block_cacheable(order: str) -> None:
    app, _ = seen_app(merged())

    def make_public(response: Response) -> Response:
        response.headers["Cache-Control"] = "public, max-age=3600"
        response.headers["X-Frame-Options"] = "DENY"
        response.status_code = 200
        return response

    if order == "hook-first":
        app.after_request(make_public)
        Geofence(app)
    else:
        Geofence(app)
        app.after_request(make_public)
    blocked = get(app, "/v1/models", CN)
    assert blocked.status_code == 451
    assert blocked.headers.getlist("Cache-Control") == ["private, no-store"]
    assert blocked.headers["X-Frame-Options"] == "DENY"  # other hooks' additions survive
    assert blocked.json is not None
    assert int(blocked.headers["Content-Length"]) == len(blocked.data)
    allowed = get(app, "/v1/models", US)
    assert allowed.headers["Cache-Control"] == "public, max-age=3600"


def test_warn_headers_merge_with_the_apps_own() -> None:
    app = Flask(__name__)
    app.config["GEOFENCE"] = merged()

    @app.get("/v1/chat")
    def chat() -> Response:
        response = Response("hi", headers={"Link": APP_LINK, "Cache-Control": "max-age=60"})
        response.headers.add("Vary", "Accept")
        return response

    Geofence(app)
    response = get(app, "/v1/chat", IR)
    assert response.data == b"hi"
    assert response.headers["Cache-Control"] == "private, max-age=60"
    link = ", ".join(response.headers.getlist("Link"))
    assert APP_LINK in link
    assert '<https://example.com/supported-countries>; rel="sunset"' in link
    assert response.headers["Vary"] == "Accept"


def test_head_block_has_the_get_content_length() -> None:
    app, _ = seen_app(merged())
    Geofence(app)
    client = app.test_client()
    env = {"REMOTE_ADDR": CN}
    got = client.get("/v1/models", environ_base=env)
    head = client.head("/v1/models", environ_base=env)
    assert head.status_code == got.status_code == 451
    assert head.data == b""
    assert head.headers["Content-Length"] == got.headers["Content-Length"] == str(len(got.data))


def test_ipv6_peer_and_host_header() -> None:
    app, _ = seen_app(merged())
    Geofence(app)
    response = get(app, "/anything", RU, headers={"Host": "api.example.com"})
    assert response.status_code == 403


# -- ProxyFix --------------------------------------------------------------------------------


def test_proxy_fix_rewrite_is_not_trusted(caplog: pytest.LogCaptureFixture) -> None:
    """geofence starts from the socket peer even when ProxyFix rewrote REMOTE_ADDR."""
    app, seen = seen_app(merged())
    Geofence(app)
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1)  # type: ignore[method-assign]
    remote: list[str | None] = []
    app.before_request(lambda: remote.append(request.remote_addr))
    with caplog.at_level(logging.WARNING, logger="geofence.flask"):
        # A client (US) forging X-Forwarded-For: ProxyFix believes it, geofence does not.
        forged = get(app, "/v1/models", US, headers={"X-Forwarded-For": CN})
        assert forged.status_code == 200
        assert seen[-1].client_ip == US
        assert remote == [CN]
        # The real CN client claiming to be US is still blocked.
        assert get(app, "/v1/models", CN, headers={"X-Forwarded-For": US}).status_code == 451
    warnings = [r for r in caplog.records if r.name == "geofence.flask"]
    assert len(warnings) == 1
    assert "client_ip.trusted_proxies" in warnings[0].getMessage()


def test_proxy_fix_with_geofence_trust(caplog: pytest.LogCaptureFixture) -> None:
    app, seen = seen_app(merged(client_ip={"trusted_proxies": ["10.0.0.0/8"]}))
    Geofence(app)
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1)  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="geofence.flask"):
        assert (
            get(app, "/v1/models", "10.0.0.5", headers={"X-Forwarded-For": CN}).status_code == 451
        )
        assert (
            get(app, "/v1/models", "10.0.0.5", headers={"X-Forwarded-For": US}).status_code == 200
        )
    assert seen[-1].client_ip == US
    assert not [r for r in caplog.records if r.name == "geofence.flask"]


def test_mode_off_sets_g_and_changes_nothing() -> None:
    app, seen = seen_app(merged(mode="off"))
    Geofence(app)
    response = get(app, "/v1/models", CN)
    assert response.status_code == 200
    assert seen[-1].reason == "off"
    assert response.headers.get("Cache-Control") is None


def test_init_app_after_the_first_request_fails_loudly() -> None:
    app = Flask(__name__)
    app.config["GEOFENCE"] = BLOCK_CN
    app.add_url_rule("/", view_func=lambda: "ok")
    assert get(app, "/", CN).status_code == 200
    with pytest.raises(AssertionError, match="before_request"):
        Geofence(app)
    assert "geofence" not in app.extensions
    with pytest.raises(AssertionError):  # still refused, never silently "already installed"
        Geofence(app)

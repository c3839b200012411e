"""The extension's WSGI layer: what an app sees of geofence without Flask hooks (g.geofence
wherever a request is active, the app's own g class, error pages, failing hooks), where the
layer may sit among other middleware, and the helpers it relies on."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

pytest.importorskip("flask")

from flask import Flask, Response, abort, g, stream_with_context
from flask.ctx import _AppCtxGlobals
from scenarios.table import CN, IR, SE, US, WARN_HEADERS, merged
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from geofence import ConfigError, Decision
from geofence.http import WSGI_ROUTED_PATHS
from geofence_flask import EXEMPT_DECISION, Geofence


def get(app: Flask, path: str, peer: str, **kwargs: Any) -> Any:
    return app.test_client().get(path, environ_base={"REMOTE_ADDR": peer}, **kwargs)


def catch_all_app(config: Mapping[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config["GEOFENCE"] = config if config is not None else merged()

    @app.route("/", defaults={"p": ""})
    @app.route("/<path:p>")
    def catch_all(p: str) -> str:
        return f"{g.geofence.action} {g.geofence.country}"

    return app


# -- no Flask hooks --------------------------------------------------------------------------


def test_installs_a_wsgi_layer_and_no_request_hook() -> None:
    app = catch_all_app()
    Geofence(app)
    assert not app.before_request_funcs.get(None)
    assert not app.after_request_funcs.get(None)
    assert not app.url_value_preprocessors.get(None)
    assert app.wsgi_app == app.extensions["geofence"].wsgi
    assert get(app, "/v1/models", US).data == b"allow US"
    assert get(app, "/v1/models", CN).status_code == 451


# -- g.geofence ------------------------------------------------------------------------------


def test_g_geofence_in_hooks_error_handlers_and_request_teardown() -> None:
    app = Flask(__name__)
    app.config["GEOFENCE"] = merged()
    seen: list[tuple[str, Decision]] = []

    @app.before_request
    def before() -> None:
        seen.append(("before", g.geofence))

    @app.after_request
    def after(response: Response) -> Response:
        seen.append(("after", g.geofence))
        return response

    @app.teardown_request
    def teardown(exc: BaseException | None) -> None:
        seen.append(("teardown", g.geofence))

    @app.errorhandler(404)
    def not_found(error: Exception) -> tuple[str, int]:
        seen.append(("404", g.geofence))
        return "not here", 404

    @app.get("/v1/models")
    def models() -> str:
        assert g.get("geofence") is g.geofence
        assert "geofence" in g
        seen.append(("view", g.geofence))
        return "ok"

    Geofence(app)
    assert get(app, "/v1/models", US).data == b"ok"
    assert [where for where, _ in seen] == ["before", "view", "after", "teardown"]
    assert {d.country for _, d in seen} == {"US"}
    seen.clear()
    assert get(app, "/missing", IR).status_code == 404
    assert [where for where, _ in seen] == ["before", "404", "after", "teardown"]
    assert {d.action for _, d in seen} == {"warn"}
    seen.clear()
    # A denial: the app's after_request hooks and teardown run and see the block.
    assert get(app, "/v1/models", CN).status_code == 451
    assert [where for where, _ in seen] == ["after", "teardown"]
    assert {d.action for _, d in seen} == {"block"}


def test_g_geofence_outside_a_request_and_when_the_app_assigns_it() -> None:
    app = catch_all_app()
    Geofence(app)
    with app.app_context():
        assert "geofence" not in g
        assert g.get("geofence") is None
        assert g.get("geofence", "default") == "default"
        with pytest.raises(AttributeError):
            g.geofence  # noqa: B018
    own = Decision(action="allow", enforced=False, reason="set by the app")

    @app.get("/own")
    def own_view() -> str:
        g.geofence = own
        return str(g.geofence.reason)

    assert get(app, "/own", CN).data == b"set by the app"


def test_g_geofence_in_a_streamed_body() -> None:
    app = Flask(__name__)
    app.config["GEOFENCE"] = merged()

    @app.get("/stream")
    def stream() -> Response:
        def chunks() -> Iterator[str]:
            yield "country="
            yield str(g.geofence.country)

        return Response(stream_with_context(chunks()))

    Geofence(app)
    assert get(app, "/stream", US).data == b"country=US"


class AppGlobals(_AppCtxGlobals):
    greeting = "hello"

    def shout(self) -> str:
        return self.greeting.upper()


@pytest.mark.parametrize("when", ["before", "after"])
def test_the_apps_own_g_class_keeps_working(when: str) -> None:
    app = Flask(__name__)
    app.config["GEOFENCE"] = merged()
    if when == "before":
        app.app_ctx_globals_class = AppGlobals
    Geofence(app)
    if when == "after":
        app.app_ctx_globals_class = AppGlobals

    @app.get("/")
    def index() -> str:
        assert isinstance(g._get_current_object(), AppGlobals)  # type: ignore[attr-defined]
        return f"{g.shout()} {g.geofence.country}"

    assert get(app, "/", US).data == b"HELLO US"


def test_apps_sharing_a_g_class_share_one_extended_class() -> None:
    apps = [catch_all_app(), catch_all_app()]
    geofence = Geofence()
    for app in apps:
        app.app_ctx_globals_class = AppGlobals
        geofence.init_app(app)
    assert apps[0].app_ctx_globals_class is apps[1].app_ctx_globals_class
    assert issubclass(apps[0].app_ctx_globals_class, AppGlobals)


# -- answers ---------------------------------------------------------------------------------


def test_warn_headers_on_error_pages_too() -> None:
    app = Flask(__name__)
    app.config["GEOFENCE"] = merged()

    @app.get("/v1/broken")
    def broken() -> str:
        raise RuntimeError("a bug in the app")

    Geofence(app)
    for path, status in (("/v1/missing-page", 404), ("/v1/broken", 500)):
        response = get(app, path, IR)
        assert response.status_code == status
        assert response.headers["Sunset"] == WARN_HEADERS["sunset"]
        assert response.headers.getlist("Cache-Control") == ["private"]


def test_warn_headers_replace_every_line_of_a_repeated_header() -> None:
    app = Flask(__name__)
    app.config["GEOFENCE"] = merged()

    @app.get("/v1/chat")
    def chat() -> Response:
        response = Response("hi")
        response.headers.add("Cache-Control", "public")
        response.headers.add("Cache-Control", "max-age=60")
        return response

    Geofence(app)
    response = get(app, "/v1/chat", IR)
    assert response.headers.getlist("Cache-Control") == ["private, max-age=60"]
    assert get(app, "/v1/chat", US).headers.getlist("Cache-Control") == ["public", "max-age=60"]


def test_a_failing_after_request_hook_cannot_undo_a_denial(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = catch_all_app()
    torn_down: list[BaseException | None] = []

    @app.after_request
    def broken(response: Response) -> Response:
        raise RuntimeError("a bug in a hook")

    @app.teardown_request
    def teardown(exc: BaseException | None) -> None:
        torn_down.append(exc)

    Geofence(app)
    with caplog.at_level(logging.ERROR, logger="geofence.flask"):
        response = get(app, "/v1/models", CN)
    assert response.status_code == 451
    assert response.json is not None
    assert response.json["error"]["code"] == "unsupported_country_region_territory"
    assert response.headers.getlist("Cache-Control") == ["private, no-store"]
    assert len(torn_down) == 1 and isinstance(torn_down[0], RuntimeError)
    logged = [r.getMessage() for r in caplog.records if r.name == "geofence.flask"]
    assert logged == ["an app hook failed on a denial; sending the denial alone"]


def test_a_denial_runs_no_app_code_before_its_after_request_hooks() -> None:
    app = catch_all_app()
    ran: list[str] = []

    @app.url_value_preprocessor
    def values(endpoint: str | None, values: dict[str, Any] | None) -> None:
        ran.append("url_value_preprocessor")

    @app.before_request
    def before() -> None:
        ran.append("before_request")

    @app.after_request
    def after(response: Response) -> Response:
        ran.append("after_request")
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response

    Geofence(app)
    response = get(app, "/v1/models", CN)
    assert response.status_code == 451
    assert ran == ["after_request"]
    assert response.headers["Access-Control-Allow-Origin"] == "*"


# -- @exempt ---------------------------------------------------------------------------------


def test_exempt_view_is_never_decided_nor_logged(caplog: pytest.LogCaptureFixture) -> None:
    """Routing before deciding: a request to an exempt view never reaches the engine, so a
    report-mode policy logs nothing for it."""
    app = Flask(__name__)
    app.config["GEOFENCE"] = merged(mode="report")
    geofence = Geofence(app)
    seen: list[Decision] = []

    @app.get("/status/<name>")
    @geofence.exempt
    def status(name: str) -> str:
        seen.append(g.geofence)
        return name

    @app.get("/v1/models")
    def models() -> str:
        return "models"

    state = app.extensions["geofence"]
    answer = state.engine.answer
    decided: list[str] = []

    def counted(info: Any, now: Any = None) -> Any:
        decided.append(info.path)
        return answer(info, now)

    state.engine.answer = counted
    with caplog.at_level(logging.INFO):
        assert get(app, "/status/db", CN).data == b"db"
        assert get(app, "/status/db", SE).data == b"db"
        assert seen == [EXEMPT_DECISION, EXEMPT_DECISION]
        assert decided == []
        assert not [r for r in caplog.records if r.name.startswith("geofence")]
        # Positive control: report mode logs the same client on a view that is not exempt.
        assert get(app, "/v1/models", CN).data == b"models"
        assert [r for r in caplog.records if r.name.startswith("geofence")]
    # Under the exempt route's prefix but not routed to it: decided.
    assert get(app, "/status/db/more", CN).status_code == 404
    assert decided == ["/v1/models", "/status/db/more"]


def test_without_exempt_views_nothing_is_routed_before_deciding() -> None:
    app = catch_all_app()
    Geofence(app)
    state = app.extensions["geofence"]

    def never(environ: Any) -> str | None:
        raise AssertionError("routed before deciding")

    state.routed_view = never  # type: ignore[method-assign]
    assert get(app, "/v1/models", US).status_code == 200
    assert get(app, "/v1/models", CN).status_code == 451


# -- other middleware ------------------------------------------------------------------------


def test_middleware_installed_first_is_refused() -> None:
    app = catch_all_app()
    app.wsgi_app = DispatcherMiddleware(app.wsgi_app, {})  # type: ignore[method-assign]
    with pytest.raises(ConfigError) as error:
        Geofence(app)
    assert error.value.key == "app.wsgi_app"
    assert "DispatcherMiddleware" in str(error.value)
    assert "geofence" not in app.extensions


def test_middleware_installed_after_is_seen_through() -> None:
    """Mounted under a prefix by middleware wrapped around it, the app is decided on its routed
    path (rules on /v1/* apply), as Flask routes it."""
    app = catch_all_app()
    Geofence(app)
    app.wsgi_app = DispatcherMiddleware(  # type: ignore[method-assign]
        Response("no app here", status=404), {"/api": app.wsgi_app}
    )
    client = app.test_client()
    blocked = client.get("/api/v1/models", environ_base={"REMOTE_ADDR": CN})
    assert blocked.status_code == 451
    allowed = client.get("/api/v1/models", environ_base={"REMOTE_ADDR": US})
    assert allowed.data == b"allow US"


def test_proxy_fix_installed_first(caplog: pytest.LogCaptureFixture) -> None:
    app = catch_all_app()
    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1)  # type: ignore[method-assign]
    with caplog.at_level(logging.WARNING, logger="geofence.flask"):
        Geofence(app)
        forged = get(app, "/v1/models", US, headers={"X-Forwarded-For": CN})
        assert forged.data == b"allow US"
        assert get(app, "/v1/models", CN, headers={"X-Forwarded-For": US}).status_code == 451
    warnings = [r for r in caplog.records if r.name == "geofence.flask"]
    assert len(warnings) == 1
    assert "client_ip.trusted_proxies" in warnings[0].getMessage()


# -- helpers ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "/",
        "/v1/models",
        "//v1//models",
        "///",
        "v1/models",
        "/caf\xc3\xa9",  # UTF-8 bytes of "café", as a server hands them over (Latin-1)
        "/\xff\xfe",  # not UTF-8: replaced, as werkzeug does
        "/%2F%0A",  # percent escapes stay: servers decode them before PATH_INFO
    ],
)
def test_routed_path_is_flasks_request_path(raw: str) -> None:
    environ = EnvironBuilder().get_environ()
    environ["PATH_INFO"] = raw
    assert WSGI_ROUTED_PATHS[raw] == Request(environ).path


def test_routed_path_never_raises_and_stays_bounded() -> None:
    assert WSGI_ROUTED_PATHS["/\u20ac"] == "/\u20ac"  # no valid WSGI string: decided as it came
    for n in range(WSGI_ROUTED_PATHS.limit + 10):
        assert WSGI_ROUTED_PATHS[f"/p/{n}"] == f"/p/{n}"
    assert len(WSGI_ROUTED_PATHS) <= WSGI_ROUTED_PATHS.limit
    long_path = "/" + "x" * WSGI_ROUTED_PATHS.LONGEST
    assert WSGI_ROUTED_PATHS[long_path] == long_path
    assert long_path not in WSGI_ROUTED_PATHS


def test_an_aborting_view_is_still_decided() -> None:
    app = Flask(__name__)
    app.config["GEOFENCE"] = merged()

    @app.get("/v1/gone")
    def gone() -> str:
        abort(410)

    Geofence(app)
    assert get(app, "/v1/gone", CN).status_code == 451
    assert get(app, "/v1/gone", US).status_code == 410

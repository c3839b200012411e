"""The shared scenario table (tests/helpers/scenarios/table.py) through the Flask extension,
without and with an account hook (``Geofence(app, account=fn)``)."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import pytest

pytest.importorskip("flask")

from flask import Flask, g, request
from scenarios.table import (
    ACCOUNT_HEADER,
    APP_BODY,
    APP_CACHE_CONTROL,
    APP_CONTENT_TYPE,
    APP_STATUS,
    CASES,
    SCENARIOS,
    Scenario,
    account_from_header,
    check,
)

from geofence_flask import Geofence

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class CountingInput(io.BytesIO):
    """A wsgi.input that records every attempt to read the request body (seek/tell, which
    the test client uses to measure it, are not reads)."""

    reads = 0

    def read(self, size: int | None = -1) -> bytes:
        self.reads += 1
        return super().read(size)

    def read1(self, size: int | None = -1) -> bytes:
        self.reads += 1
        return super().read1(size)

    def readinto(self, buffer: Any) -> int:
        self.reads += 1
        return super().readinto(buffer)

    def readline(self, size: int | None = -1) -> bytes:
        self.reads += 1
        return super().readline(size)

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        self.reads += 1
        return super().readlines(hint)


def account_of() -> Any:
    """The account hook of the scenario table: the x-test-account header."""
    return account_from_header(request.headers.get(ACCOUNT_HEADER))


def scenario_app(config: Mapping[str, Any], hooked: bool = False) -> tuple[Flask, list[Any]]:
    """The table's app: one catch-all view answering APP_*; records ``g.geofence``."""
    app = Flask(__name__, static_folder=None)  # the catch-all view answers /static/* too
    app.config["GEOFENCE"] = config
    seen: list[Any] = []

    @app.route("/", defaults={"p": ""}, methods=METHODS)
    @app.route("/<path:p>", methods=METHODS)
    def catch_all(p: str) -> tuple[bytes, int, dict[str, str]]:
        seen.append(g.geofence)
        headers = {"Content-Type": APP_CONTENT_TYPE, "Cache-Control": APP_CACHE_CONTROL}
        return APP_BODY, APP_STATUS, headers

    Geofence(app, account=account_of if hooked else None)
    return app, seen


def lower_headers(pairs: Any) -> dict[str, str]:
    # Repeated names are joined, so a duplicated header fails an exact-value check.
    headers: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


@pytest.mark.parametrize(("s", "hooked"), CASES)
def test_scenario(s: Scenario, hooked: bool) -> None:
    app, seen = scenario_app(s.config, hooked)
    client = app.test_client()
    for peer, path in s.prior:
        client.open(
            path, method=s.method, headers=s.request_headers(), environ_base={"REMOTE_ADDR": peer}
        )
    seen.clear()
    body_input = CountingInput(s.body)
    response = client.open(
        s.path,
        method=s.method,
        headers=s.request_headers(),
        input_stream=body_input,
        content_length=len(s.body),
        environ_base={"REMOTE_ADDR": s.peer},
    )
    check(
        s,
        response.status_code,
        lower_headers(response.headers.items()),
        response.get_data(),
        bool(seen),
        seen[-1] if seen else None,
    )
    # Neither the extension nor Flask touched the body (the view never asks for it).
    assert body_input.reads == 0, s.id


def test_counting_input_sees_reads() -> None:
    """Positive control for the body check above: a view that reads the body is counted."""
    app = Flask(__name__)
    app.config["GEOFENCE"] = SCENARIOS[0].config

    @app.post("/v1/upload")
    def upload() -> str:
        return str(len(request.get_data()))

    Geofence(app)
    body_input = CountingInput(b'{"prompt": "hi"}')
    response = app.test_client().post(
        "/v1/upload",
        input_stream=body_input,
        content_length=16,
        environ_base={"REMOTE_ADDR": "216.160.83.56"},
    )
    assert response.status_code == 200
    assert response.data == b"16"
    assert body_input.reads > 0

"""tests/helpers/servers.py itself: both servers start on a handed-over socket; failures say why."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from servers import serve

httpx = pytest.importorskip("httpx")
pytestmark = pytest.mark.server

WSGI_APP = """
import os

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{environ['REMOTE_ADDR']} {os.environ['GREETING']}".encode()]
"""


def test_gunicorn_serves_a_wsgi_app_with_env(tmp_path: Path) -> None:
    (tmp_path / "hello_wsgi.py").write_text(WSGI_APP)
    env = {"GREETING": "hello"}
    with serve("gunicorn", "hello_wsgi:app", cwd=tmp_path, env=env) as url:
        assert url.startswith("http://127.0.0.1:")
        assert httpx.get(url + "/", timeout=10).text == "127.0.0.1 hello"


def test_a_server_that_cannot_start_fails_fast_with_its_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with (
        pytest.raises(httpx.TransportError) as failure,
        serve("uvicorn", "no_such_module:app", cwd=tmp_path) as url,
    ):
        # The listening socket closes with the server, so this fails instead of hanging.
        httpx.get(url + "/", timeout=30)
    if sys.version_info >= (3, 11):
        shown = "\n".join(failure.value.__notes__)
    else:
        shown = capsys.readouterr().err
    assert "uvicorn output (no_such_module:app)" in shown
    assert "no_such_module" in shown.split("---", 2)[-1]

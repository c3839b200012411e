"""``geofence demo``: the example app, in process and under a real uvicorn, and ``run()``."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from servers import serve

from geofence.cli import demo

httpx = pytest.importorskip("httpx")

LOOPBACK = ("127.0.0.1", 50123)


def outcome(what: str) -> str:
    return what.partition(":")[0].partition(",")[0]


def check_example(client: httpx.Client, example: tuple[str, str, str, str | None]) -> None:
    """Send one of the demo's advertised curl commands and check it shows what it says."""
    what, ip, path, accept = example
    headers = {"x-forwarded-for": ip, **({"accept": accept} if accept else {})}
    response = client.get(path, headers=headers)
    kind = outcome(what)
    if kind == "blocked":
        assert response.status_code == 451, what
        assert response.headers["cache-control"] == "private, no-store"
        if accept:
            assert response.headers["content-type"].startswith("text/html")
            assert "<html" in response.text.lower()
        else:
            error = response.json()["error"]
            assert error["code"] == "unsupported_country_region_territory"
        return
    assert response.status_code == 200, what
    shown = response.json()["geofence"]
    assert shown["client_ip"] == ip
    if kind == "warned":
        assert (shown["action"], shown["country"]) == ("warn", "BY")
        assert shown["phase"].startswith("grace period")
        assert response.headers["sunset"].endswith(" GMT")
        assert response.headers["deprecation"].startswith("@")
        assert 'rel="sunset"' in response.headers["link"]
    elif kind == "allowed":
        assert (shown["action"], shown["country"], shown["reason"]) == ("allow", "US", "default")
        assert "sunset" not in response.headers
    else:
        assert kind == "exempt"
        assert (shown["action"], shown["reason"]) == ("allow", "exempt_path")


def test_examples_cover_every_outcome() -> None:
    assert {outcome(e[0]) for e in demo.EXAMPLES} == {"allowed", "warned", "blocked", "exempt"}


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    with serve(
        "uvicorn",
        "geofence.cli.demo:create_app",
        cwd=".",
        extra_args=["--factory", "--no-proxy-headers"],
    ) as url:
        yield url


@pytest.mark.server
@pytest.mark.parametrize("example", demo.EXAMPLES, ids=[outcome(e[0]) for e in demo.EXAMPLES])
def test_demo_under_uvicorn_does_what_it_advertises(served: str, example: Any) -> None:
    with httpx.Client(base_url=served, timeout=10) as client:
        check_example(client, example)


@pytest.mark.server
def test_demo_index_shows_the_curl_commands(served: str) -> None:
    page = httpx.get(served + "/", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    host = served.removeprefix("http://")
    assert f"http://{host}/v1/models" in page.text
    assert "X-Forwarded-For: 175.16.199.1" in page.text


async def _in_process(requests: list[tuple[str, str, dict[str, str]]]) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=demo.create_app(), client=LOOPBACK)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
        return [await client.request(m, p, headers=h) for m, p, h in requests]


def test_demo_pages_in_process() -> None:
    hostile = {"host": 'x"><script>alert(1)</script>', "x-forwarded-for": "8.8.8.8"}
    browser = {"x-forwarded-for": "8.8.8.8", "accept": "text/html"}
    index, home, post, missing, head = asyncio.run(
        _in_process(
            [
                ("GET", "/", hostile),
                ("GET", "/web/home", browser),
                ("POST", "/v1/models", {}),
                ("GET", "/nowhere", {}),
                ("HEAD", "/v1/models", {}),
            ]
        )
    )
    assert index.status_code == 200 and "<script>" not in index.text
    assert "&lt;script&gt;" in index.text
    assert home.status_code == 200 and "<td>US</td>" in home.text
    assert post.status_code == 405
    assert missing.status_code == 404
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) > 0


def test_demo_app_runs_its_lifespan() -> None:
    sent: list[Any] = []
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

    async def receive() -> Any:
        return incoming.pop(0)

    async def send(message: Any) -> None:
        sent.append(message["type"])

    asyncio.run(demo.create_app()({"type": "lifespan", "state": {}}, receive, send))
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


# -- run() --------------------------------------------------------------------------------


def test_run_without_uvicorn_explains_the_install(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "uvicorn", None)  # makes `import uvicorn` fail
    assert demo.run() == 2
    assert 'pip install "geofence-middleware[demo]"' in capsys.readouterr().err


def test_run_serves_the_wrapped_app_and_prints_the_examples(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    uvicorn = pytest.importorskip("uvicorn")
    from geofence_asgi import GeofenceMiddleware

    configs: list[Any] = []
    monkeypatch.setattr(
        uvicorn.Server, "run", lambda self, sockets=None: configs.append(self.config)
    )
    assert demo.run(host="0.0.0.0", port=8123) == 0
    assert isinstance(configs[0].app, GeofenceMiddleware)
    assert (configs[0].host, configs[0].port) == ("0.0.0.0", 8123)
    assert configs[0].proxy_headers is False
    out = capsys.readouterr().out
    assert 'curl -i -H "X-Forwarded-For: 175.16.199.1" http://127.0.0.1:8123/v1/models' in out
    assert len([line for line in out.splitlines() if "curl -i" in line]) == len(demo.EXAMPLES)


def test_run_reports_a_server_that_cannot_start(monkeypatch: pytest.MonkeyPatch) -> None:
    uvicorn = pytest.importorskip("uvicorn")

    def fail(self: Any, sockets: Any = None) -> None:
        raise SystemExit(1)  # what uvicorn does when the port is taken

    monkeypatch.setattr(uvicorn.Server, "run", fail)
    assert demo.run(port=8124) == 1


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8000"),
        ("0.0.0.0", "http://127.0.0.1:8000"),
        ("::", "http://[::1]:8000"),
        ("::1", "http://[::1]:8000"),
        ("localhost", "http://localhost:8000"),
    ],
)
def test_banner_shows_a_reachable_loopback_url(host: str, url: str) -> None:
    assert f"{url}/v1/models" in demo.banner(host, 8000)

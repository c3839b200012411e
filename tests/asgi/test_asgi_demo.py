"""``geofence demo``: the example app, in process and under a real uvicorn, and ``run()``;
the explorer page at ``/`` in process (tests/browser has it in Chromium)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import re
import sys
from collections.abc import Iterator
from datetime import timedelta
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
    # The explorer in front, the example app behind the middleware.
    assert isinstance(configs[0].app, demo.Demo)
    assert isinstance(configs[0].app.protected, GeofenceMiddleware)
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


# -- the explorer (/ and /preview) ---------------------------------------------------------


def _explore(*paths: str, method: str = "GET", **headers: str) -> list[httpx.Response]:
    return asyncio.run(_in_process([(method, p, dict(headers)) for p in paths]))


def test_country_samples_are_where_the_engine_places_them() -> None:
    from geofence import Engine, RequestInfo

    samples = demo.country_samples()
    engine = Engine.from_config(example_policy_now())
    placed = {
        code: engine.decide(RequestInfo(ip, (), "GET", "/")).country for code, ip in samples.items()
    }
    assert placed == {code: code for code in samples}
    # Every country the example policy names, and most of the world.
    assert {"CN", "RU", "CU", "IR", "KP", "SY", "BY", "VE", "US"} <= set(samples)
    assert len(samples) >= 200
    # The curl examples' addresses are the samples of their countries.
    assert (samples["US"], samples["BY"], samples["CN"]) == (
        "8.8.8.8",
        "178.120.0.1",
        "175.16.199.1",
    )


def example_policy_now() -> dict[str, Any]:
    from geofence.cli._example import example_policy

    return example_policy()


def test_the_explorer_is_never_blocked_and_never_unresolved() -> None:
    # A browser on loopback sends no X-Forwarded-For; a curl user may pretend to be in China.
    plain, chinese, picked = [
        *_explore("/"),
        *_explore("/", **{"x-forwarded-for": "175.16.199.1", "accept": "text/html"}),
        *_explore("/?country=CN&path=%2Fweb%2Fhome&client=browser"),
    ]
    for page in (plain, chinese, picked):
        assert page.status_code == 200
        assert "unresolved_client" not in page.text
        assert "127.0.0.1</code>, on loopback" in page.text
    assert 'id="result"' not in plain.text  # nothing picked yet: no decision shown
    assert "<td>block</td>" in picked.text and "<td>175.16.199.1</td>" in picked.text


def test_the_explorer_groups_countries_by_what_the_policy_does() -> None:
    (page,) = _explore("/?country=BY")
    groups = dict(re.findall(r'<optgroup label="([^"]+)">(.*?)</optgroup>', page.text))
    assert 'value="CN"' in groups["Blocked here and now"]
    assert 'value="BY" selected' in groups["Warned (grace period)"]
    assert 'value="US"' in groups["Allowed"]


def test_the_explorer_moves_through_the_rule_dates() -> None:
    from geofence import Engine

    rule = Engine.from_config(example_policy_now()).policy.rules[1]
    assert rule.warn_from is not None and rule.enforce_from is not None
    before = rule.warn_from - timedelta(days=1)
    pages = _explore(
        *(
            f"/?country=BY&at={moment.strftime('%Y-%m-%dT%H:%M')}"
            for moment in (before, rule.warn_from, rule.enforce_from)
        )
    )
    actions = [re.search(r'class="verdict (\w+)"', p.text).group(1) for p in pages]  # type: ignore[union-attr]
    assert actions == ["allow", "warn", "block"]
    # The page shows where the grace period and the enforcement start, as links there.
    for moment in (rule.warn_from, rule.enforce_from):
        assert f"at={moment.strftime('%Y-%m-%dT%H')}%3A00" in pages[0].text
        assert moment.date().isoformat() in pages[0].text


@pytest.mark.parametrize(
    "query",
    [
        "ip=not-an-ip",
        "ip=1.2.3.4&at=yesterday",
        "ip=1.2.3.4&at=3000-01-01T00:00",
        "country=ZZ",
        "country=%00%ff",
        "ip=1.2.3.4&path=no-slash",
        "ip=1.2.3.4&path=/caf%C3%A9",
        "ip=1.2.3.4&client=robot",
        "ip=1.2.3.4&lang=%E4%B8%AD",
        "ip=" + "9" * 5000,
        "ip=&country=",
        "ip=%3Cscript%3Ealert(1)%3C/script%3E",
    ],
)
def test_the_explorer_explains_bad_input(query: str) -> None:
    page, preview = _explore(f"/?{query}", f"/preview?{query}")
    assert page.status_code == 200
    assert "Check the form" in page.text
    assert 'id="result"' not in page.text
    assert "<script" not in page.text
    assert preview.status_code == 400 and preview.json()["problems"]


def test_the_explorer_escapes_what_it_shows() -> None:
    (page,) = _explore("/?ip=1.2.3.4&path=/%3Cscript%3E&lang=%3Cb%3E")
    assert 'id="result"' in page.text
    assert "<script" not in page.text and "<b>" not in page.text
    assert "/&lt;script&gt;" in page.text


def test_the_block_page_language_defaults_to_the_viewers() -> None:
    pick = "/?country=IR&path=%2Fweb%2Fhome&client=browser"
    persian, chosen, plain = [
        *_explore(pick, **{"accept-language": "fa-IR,fa;q=0.9"}),
        *_explore(pick + "&lang=en", **{"accept-language": "fa"}),
        *_explore(pick),
    ]
    assert 'value="fa-IR,fa;q=0.9"' in persian.text
    assert html.escape('lang="fa" dir="rtl"') in persian.text  # inside the frame's srcdoc
    assert 'value="en"' in chosen.text and html.escape('lang="en"') in chosen.text
    assert 'id="lang" name="lang" value="en"' in plain.text


def test_the_explorer_ignores_what_it_does_not_know() -> None:
    page, moved = _explore("/?%ZZ=%&&&=&x=1", "/?at=2030-01-01T00%3A00")
    for response in (page, moved):
        assert response.status_code == 200
        assert "Check the form" not in response.text and 'id="result"' not in response.text
    assert 'value="2030-01-01T00:00"' in moved.text


def test_the_preview_is_the_exact_response() -> None:
    blocked, warned, allowed = _explore(
        "/preview?country=CN&path=%2Fweb%2Fhome&client=browser",
        "/preview?country=BY&path=%2Fv1%2Fmodels",
        "/preview?ip=8.8.8.8&path=%2Fv1%2Fmodels",
    )
    assert blocked.status_code == 451
    assert blocked.headers["cache-control"] == "private, no-store"
    assert "frame-ancestors 'none'" in blocked.headers["content-security-policy"]
    assert "<html" in blocked.text
    assert warned.status_code == 200 and warned.headers["sunset"].endswith(" GMT")
    assert warned.json()["geofence"]["action"] == "warn"
    assert warned.headers["cache-control"] == "private"
    assert allowed.status_code == 200 and "sunset" not in allowed.headers
    assert allowed.json()["geofence"]["country"] == "US"


def test_the_explorer_page_is_locked_down() -> None:
    page, head, post = [
        *_explore("/?country=CN&path=%2Fweb%2Fhome&client=browser"),
        *_explore("/", method="HEAD"),
        *_explore("/", method="POST"),
    ]
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert "form-action 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "<script" not in page.text and "src=" not in page.text.replace("srcdoc=", "")
    # Every style sheet on the page, and in the framed block page, is allowed by its hash.
    framed = html.unescape(re.search(r'srcdoc="([^"]*)"', page.text).group(1))  # type: ignore[union-attr]
    sheets = re.findall(r"<style>(.*?)</style>", page.text, re.S)
    sheets += re.findall(r"<style>(.*?)</style>", framed, re.S)
    assert len(sheets) == 2
    for sheet in sheets:
        digest = base64.b64encode(hashlib.sha256(sheet.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in csp
    assert "@media (prefers-color-scheme:dark)" in sheets[0]
    assert 'name="viewport"' in page.text
    assert head.status_code == 200 and head.content == b""
    assert post.status_code == 405

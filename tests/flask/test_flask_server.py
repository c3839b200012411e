"""End to end: a Flask app protected by geofence, served by a real gunicorn on loopback.

The server sees every request from 127.0.0.1; the config trusts X-Forwarded-For from there,
so each test names its client in that header.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from scenarios.table import BROWSER_ACCEPT, CN, IR, US, WARN_HEADERS, merged
from servers import serve

pytest.importorskip("flask")
httpx = pytest.importorskip("httpx")

pytestmark = pytest.mark.server

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def base_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    config = tmp_path_factory.mktemp("flask-server") / "geofence.json"
    config.write_text(json.dumps(merged(client_ip={"trusted_proxies": ["127.0.0.1/32"]})))
    env = {"GEOFENCE_TEST_CONFIG": str(config)}
    with serve("gunicorn", "flask_server_app:app", cwd=HERE, env=env) as url:
        yield url


def client_from(ip: str, **headers: str) -> dict[str, str]:
    return {"X-Forwarded-For": ip, **headers}


def test_blocked_gets_451_json(base_url: str) -> None:
    response = httpx.get(base_url + "/v1/models", headers=client_from(CN))
    assert response.status_code == 451
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["cache-control"] == "private, no-store"
    assert response.headers["link"] == '<https://example.com/supported-countries>; rel="blocked-by"'
    assert response.json()["error"]["code"] == "unsupported_country_region_territory"
    assert "x-decision" not in response.headers


def test_blocked_browser_gets_html(base_url: str) -> None:
    response = httpx.get(base_url + "/web/home", headers=client_from(CN, Accept=BROWSER_ACCEPT))
    assert response.status_code == 451
    assert response.headers["content-type"].startswith("text/html")
    assert "<html" in response.text.lower()


def test_blocked_head_has_headers_and_no_body(base_url: str) -> None:
    got = httpx.get(base_url + "/v1/models", headers=client_from(CN))
    head = httpx.head(base_url + "/v1/models", headers=client_from(CN))
    assert head.status_code == 451
    assert head.content == b""
    assert head.headers["content-length"] == got.headers["content-length"]


def test_blocked_post_is_answered_without_the_body(base_url: str) -> None:
    body = b"x" * 200_000
    response = httpx.post(base_url + "/v1/chat", content=body, headers=client_from(CN))
    assert response.status_code == 451
    assert response.json()["error"]["type"] == "request_forbidden"


def test_grace_period_client_gets_warn_headers(base_url: str) -> None:
    response = httpx.get(base_url + "/v1/chat", headers=client_from(IR))
    assert response.status_code == 200
    assert response.content == b"hello from the app"
    assert response.headers["sunset"] == WARN_HEADERS["sunset"]
    assert response.headers["deprecation"] == "@1577836800"
    assert response.headers["cache-control"] == "private, max-age=60"
    assert response.headers["x-decision"] == "warn rule IR"


def test_allowed_client_gets_the_app_untouched(base_url: str) -> None:
    response = httpx.get(base_url + "/v1/models", headers=client_from(US))
    assert response.status_code == 200
    assert response.content == b"hello from the app"
    assert response.headers["cache-control"] == "max-age=60"
    assert response.headers["x-decision"] == "allow default US"
    assert "sunset" not in response.headers


def test_loopback_without_header_is_unresolved_not_the_proxy(base_url: str) -> None:
    """A trusted peer that sends no forwarding header is never mistaken for the client."""
    response = httpx.get(base_url + "/about")
    assert response.status_code == 200
    assert response.headers["x-decision"].split()[1] == "unresolved_client"


def test_exempt_view(base_url: str) -> None:
    response = httpx.get(base_url + "/open", headers=client_from(CN))
    assert response.status_code == 200
    assert response.text == "open to all"

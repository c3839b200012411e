"""The WSGI (PEP 3333) helpers adapters share: request headers from an environ, the core's
response sent as a WSGI response, and a warning's headers set through ``start_response``."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

import geofence
from geofence.http import Answer, wsgi_amend, wsgi_send
from geofence.http._environ import LAYOUTS_SIZE, NAMES_SIZE, EnvironHeaders, _layouts, _names

CN, BY, US = "175.16.199.1", "178.120.0.1", "216.160.83.56"
POLICY = {
    "info_url": "https://example.com/regions",
    "rules": [
        {"name": "cn", "action": "block", "regions": ["CN"]},
        {
            "name": "by",
            "action": "block",
            "regions": ["BY"],
            "warn_from": "2024-01-01T00:00:00Z",
            "enforce_from": "2999-01-01T00:00:00Z",
        },
    ],
}


class Started:
    """A WSGI server's ``start_response``: records what it was called with."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[tuple[str, str]], Any]] = []

    def __call__(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        self.calls.append((status, headers, exc_info))
        return lambda data: None

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.calls[-1][1] if k.lower() == name]


def answer(peer: str, method: str = "GET") -> Answer:
    engine = geofence.Engine.from_config(POLICY)
    return engine.answer(geofence.RequestInfo(peer, [], method, "/v1/models"))


def test_environ_headers_are_lazy_lower_case_pairs_with_cgi_headers() -> None:
    environ = {
        "REMOTE_ADDR": "10.0.0.1",
        "HTTP_X_FORWARDED_FOR": "1.2.3.4, 5.6.7.8",
        "HTTP_ACCEPT": "text/html",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": "",
        "HTTP_X_BINARY": b"not text",  # a non-str value is never passed on
        "wsgi.input": object(),
    }
    headers = EnvironHeaders(environ)
    assert headers._pairs is None  # nothing built until the engine asks
    assert sorted(headers) == [
        ("accept", "text/html"),
        ("content-type", "application/json"),
        ("x-forwarded-for", "1.2.3.4, 5.6.7.8"),
    ]
    assert len(headers) == 3
    assert headers[0] in list(headers)


def test_environ_header_names_stay_bounded() -> None:
    for n in range(NAMES_SIZE + 10):
        environ = {f"HTTP_X_CUSTOM_{n}": "v", "REMOTE_ADDR": "10.0.0.1"}
        assert list(EnvironHeaders(environ)) == [(f"x-custom-{n}", "v")]
    assert len(_names) <= NAMES_SIZE


def test_environ_header_names_from_odd_keys() -> None:
    environ: dict[Any, object] = {
        "HTTP_": "no name, so no header",
        "http_lower": "not CGI",
        "HTTP_X_Mixed_Case": "kept",
        ("HTTP_TUPLE",): "not a string key",
    }
    assert list(EnvironHeaders(environ)) == [("x-mixed-case", "kept")]


def test_a_response_is_sent_with_its_status_line_headers_and_body() -> None:
    response = answer(CN).response
    assert response is not None
    started = Started()
    assert wsgi_send(response, started) == [response.body]
    status, headers, _ = started.calls[0]
    assert status == "451 Unavailable For Legal Reasons"
    assert headers == list(response.headers)


def test_a_sent_response_keeps_added_headers_but_not_changed_or_cacheable_ones() -> None:
    response = answer(CN, "HEAD").response
    assert response is not None and response.body == b""
    kept = [
        ("Access-Control-Allow-Origin", "*"),
        ("Cache-Control", "public, max-age=3600"),
        ("Content-Length", "0"),
        ("Expires", "Fri, 01 Jan 2100 00:00:00 GMT"),
        ("CDN-Cache-Control", "max-age=86400"),
        ("Surrogate-Control", "max-age=86400"),
        ("Set-Cookie", "a=1"),
        ("Set-Cookie", "b=2"),
    ]
    started = Started()
    assert wsgi_send(response, started, kept) == [b""]
    assert started.all("access-control-allow-origin") == ["*"]
    assert started.all("set-cookie") == ["a=1", "b=2"]
    assert started.all("cache-control") == ["private, no-store"]
    # A HEAD answer keeps the GET answer's length.
    assert started.all("content-length") == [dict(response.headers)["Content-Length"]]
    assert started.all("content-length") != ["0"]
    for name in ("expires", "cdn-cache-control", "surrogate-control"):
        assert started.all(name) == []


def test_amending_sets_the_warn_headers_merged_with_the_apps_own() -> None:
    warned = answer(BY)
    assert warned.amends and warned.response is None
    started = Started()
    start = wsgi_amend(warned, started)
    app_headers = [
        ("Content-Type", "text/plain"),
        ("Cache-Control", "public"),
        ("Cache-Control", "max-age=60"),
        ("Link", '<https://example.com/app>; rel="help"'),
    ]
    error = (RuntimeError, RuntimeError("boom"), None)
    start("500 Internal Server Error", app_headers, error)
    status, _, exc_info = started.calls[0]
    assert status == "500 Internal Server Error" and exc_info is error
    assert started.all("content-type") == ["text/plain"]
    assert started.all("cache-control") == ["private, max-age=60"]
    (link,) = started.all("link")
    assert '<https://example.com/app>; rel="help"' in link
    assert '<https://example.com/regions>; rel="sunset"' in link
    assert len(started.all("sunset")) == 1
    assert started.all("deprecation")


def test_amending_with_a_passing_answer_changes_nothing() -> None:
    started = Started()
    start = wsgi_amend(answer(US), started)
    start("200 OK", [("Cache-Control", "public")])
    assert started.calls == [("200 OK", [("Cache-Control", "public")], None)]


def _reference_headers(environ: dict[Any, object]) -> list[tuple[str, str]]:
    """What EnvironHeaders must give, written as plainly as possible."""
    pairs = [
        (key[5:].replace("_", "-").lower(), value)
        for key, value in environ.items()
        if isinstance(key, str) and key.startswith("HTTP_") and len(key) > 5
        if isinstance(value, str)
    ]
    for key, name in (("CONTENT_TYPE", "content-type"), ("CONTENT_LENGTH", "content-length")):
        value = environ.get(key)
        if value and isinstance(value, str):
            pairs.append((name, value))
    return pairs


_KEYS = st.sampled_from(
    [
        "HTTP_ACCEPT",
        "HTTP_X_FORWARDED_FOR",
        "HTTP_HOST",
        "HTTP_",
        "HTTP_X_Mixed",
        "http_lower",
        "CONTENT_TYPE",
        "CONTENT_LENGTH",
        "REMOTE_ADDR",
        "wsgi.input",
        ("HTTP_TUPLE",),
    ]
)
_VALUES = st.one_of(st.text(max_size=8), st.binary(max_size=4), st.none(), st.integers())


@given(st.lists(st.tuples(_KEYS, _VALUES), max_size=12))
def test_environ_headers_are_every_header_in_order(items: list[tuple[Any, object]]) -> None:
    environ = dict(items)
    assert list(EnvironHeaders(environ)) == _reference_headers(environ)
    # Again with the same keys (the layout is remembered) and other values: their own values.
    again = {key: f"v{n}" for n, key in enumerate(environ)}
    assert list(EnvironHeaders(again)) == _reference_headers(again)


def test_environ_layouts_stay_bounded() -> None:
    for n in range(LAYOUTS_SIZE + 10):
        environ = {"REMOTE_ADDR": "10.0.0.1", f"HTTP_X_LAYOUT_{n}": "a", "HTTP_ACCEPT": "b"}
        assert list(EnvironHeaders(environ)) == [(f"x-layout-{n}", "a"), ("accept", "b")]
    assert len(_layouts) <= LAYOUTS_SIZE

from __future__ import annotations

from geofence.http._environ import EnvironHeaders


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

"""``accounts.store`` URIs: the scheme picks the store; nothing about a password leaks."""

from __future__ import annotations

import pytest

from geofence import ConfigError
from geofence.accounts import check_store_uri, redact
from geofence.accounts._uri import scheme_of


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("redis://user:s3cret@host:6379/0", "redis://user:***@host:6379/0"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("redis://u:s3cret@[x/0", "redis://..."),  # not a URL at all: nothing of it shown
        ("memory://", "memory://"),
    ],
)
def test_redact_never_shows_a_password(uri: str, shown: str) -> None:
    assert redact(uri) == shown
    assert "s3cret" not in redact(uri)


@pytest.mark.parametrize(
    "uri", ["ftp://[x", "http://host", "redis", "", 42, None, "memory://host", "mem://"]
)
def test_bad_store_uris_are_config_errors_naming_the_key(uri: object) -> None:
    with pytest.raises(ConfigError) as error:
        check_store_uri(uri)
    assert str(error.value).startswith("accounts.store:")


def test_bad_uri_with_a_password_does_not_show_it() -> None:
    with pytest.raises(ConfigError) as error:
        check_store_uri("redis://user:s3cret@host:notaport/0")
    assert "s3cret" not in str(error.value)


@pytest.mark.parametrize(
    ("uri", "scheme"),
    [("MEMORY://", "memory"), ("Redis://h", "redis"), ("redis+cluster://h:1", "redis+cluster")],
)
def test_schemes_are_case_insensitive(uri: str, scheme: str) -> None:
    assert scheme_of(uri) == scheme

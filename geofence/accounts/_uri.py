"""``accounts.store``: a URI in, a store out, chosen by its scheme (as ``limits`` does)."""

from __future__ import annotations

from geofence._errors import ConfigError
from geofence.accounts._memory import MemoryStore
from geofence.accounts._store import Limits, Store

KEY = "accounts.store"
REDIS_SCHEMES = ("redis", "rediss", "unix", "redis+cluster", "redis+sentinel")
SCHEMES = ("memory", *REDIS_SCHEMES)
_EXAMPLES = (
    '"memory://", "redis://localhost:6379/0", "rediss://host:6380/0", '
    '"unix:///run/redis/redis.sock", "redis+cluster://h1:7000,h2:7000", '
    '"redis+sentinel://h1:26379,h2:26379/mymaster"'
)


def scheme_of(uri: object) -> str:
    """The URI's scheme, or a ConfigError naming accounts.store and the fix."""
    if not isinstance(uri, str) or "://" not in uri:
        raise ConfigError(KEY, f"{uri!r} is not a store URI; use one of {_EXAMPLES}")
    scheme = uri.split("://", 1)[0].lower()
    if scheme not in SCHEMES:
        raise ConfigError(
            KEY,
            f"unknown scheme {scheme + '://'!r} in {redact(uri)!r}; use one of {_EXAMPLES}",
        )
    return scheme


def check_store_uri(uri: object) -> str:
    """Validate a store URI at load time (syntax and the extra it needs); return it."""
    scheme = scheme_of(uri)
    assert isinstance(uri, str)
    if scheme == "memory":
        if uri.lower() != "memory://":
            raise ConfigError(KEY, f"{uri!r}: memory:// takes no host, path or options")
        return uri
    # Imported here: the redis extra may be missing, and memory:// needs none of it.
    from geofence.accounts import _redis

    _redis.check_uri(uri)
    return uri


def open_store(uri: str, *, key_prefix: str, timeout: float, limits: Limits | None) -> Store:
    """The store for a URI already checked by :func:`check_store_uri`. Opening connects to
    nothing: a server that is down at startup is the first request's problem (logged)."""
    if scheme_of(uri) == "memory":
        return MemoryStore(limits)
    from geofence.accounts import _redis

    return _redis.RedisStore(uri, key_prefix=key_prefix, timeout=timeout, limits=limits)


def redact(uri: str) -> str:
    """The URI without its password, for messages and logs."""
    # Only messages and a Redis store need this: memory:// never loads urllib.
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(uri)
        password = parts.password
    except ValueError:  # not even a URL (an unbalanced "["): say nothing of what it holds
        return uri.split("://", 1)[0] + "://..." if "@" in uri else uri
    if password is None:
        return uri
    netloc = parts.netloc.replace(":" + password + "@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()

"""Request headers from a WSGI / CGI environ, shared by the Django and Flask adapters."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import overload

# The two request headers CGI keeps without the HTTP_ prefix.
_CGI_HEADERS = (("CONTENT_TYPE", "content-type"), ("CONTENT_LENGTH", "content-length"))

# Environ key -> header name, or "" for a key that holds no HTTP_ header. Converting a key
# costs several times a lookup, and a server uses few distinct keys; bounded, so that a client
# sending ever new header names only empties it.
_names: dict[object, str] = {}
NAMES_SIZE = 1024


def _header_name(key: object) -> str:
    name = ""
    if isinstance(key, str) and key.startswith("HTTP_"):
        name = key[5:].replace("_", "-").lower()
    if len(_names) >= NAMES_SIZE:
        _names.clear()
    _names[key] = name
    return name


class EnvironHeaders(Sequence[tuple[str, str]]):
    """The headers of a WSGI environ (or Django's ``request.META``) as (name, value) pairs.

    Lazy and built once: the engine reads headers only for a trusted proxy's forwarding header
    or to negotiate a block page, so most requests never pay for the list. Names are
    lower-case with dashes; a server joins repeated header lines with ", " (PEP 3333), which
    is the order-preserving join the engine wants.
    """

    __slots__ = ("_environ", "_pairs")

    def __init__(self, environ: Mapping[str, object]) -> None:
        self._environ = environ
        self._pairs: list[tuple[str, str]] | None = None

    def _list(self) -> list[tuple[str, str]]:
        if self._pairs is None:
            environ = self._environ
            names = _names
            pairs = []
            for key, value in environ.items():
                name = names.get(key)
                if name is None:
                    name = _header_name(key)
                if name and isinstance(value, str):
                    pairs.append((name, value))
            for key, name in _CGI_HEADERS:
                value = environ.get(key)
                if value and isinstance(value, str):
                    pairs.append((name, value))
            self._pairs = pairs
        return self._pairs

    @overload
    def __getitem__(self, index: int) -> tuple[str, str]: ...
    @overload
    def __getitem__(self, index: slice) -> list[tuple[str, str]]: ...
    def __getitem__(self, index: int | slice) -> tuple[str, str] | list[tuple[str, str]]:
        return self._list()[index]

    def __len__(self) -> int:
        return len(self._list())

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self._list())

"""Request headers from a WSGI / CGI environ, shared by the Django and Flask adapters."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from operator import itemgetter
from typing import overload

from geofence._model import RequestInfo
from geofence.hotpath._makers import maker, new_request_info

# The two request headers CGI keeps without the HTTP_ prefix.
_CGI_HEADERS = (("CONTENT_TYPE", "content-type"), ("CONTENT_LENGTH", "content-length"))

# Environ key -> header name, or "" for a key that holds no HTTP_ header. Converting a key
# costs several times a lookup, and a server uses few distinct keys; bounded, so that a client
# sending ever new header names only empties it.
_names: dict[object, str] = {}
NAMES_SIZE = 1024
# The keys of an environ, in order -> (its header names, the keys holding them). A server
# builds the environs of requests with the same header names with the same keys in the same
# order, so the list of headers is built by C-level iteration (tuple, itemgetter, zip) instead of a
# Python loop over twenty-odd keys, which cost several times what the engine then does with
# the headers. Bounded like _names: ever new header names only empty it.
Layout = tuple[tuple[str, ...], Callable[[Mapping[str, object]], tuple[object, ...]]]
_layouts: dict[tuple[object, ...], Layout] = {}
LAYOUTS_SIZE = 256


def _header_name(key: object) -> str:
    name = ""
    if isinstance(key, str) and key.startswith("HTTP_"):
        name = key[5:].replace("_", "-").lower()
    if len(_names) >= NAMES_SIZE:
        _names.clear()
    _names[key] = name
    return name


def _layout(keys: tuple[object, ...]) -> Layout:
    """The header names among an environ's ``keys``, and what reads their values; kept."""
    names: list[str] = []
    header_keys: list[object] = []
    for key in keys:
        name = _names.get(key)
        if name is None:
            name = _header_name(key)
        if name:
            names.append(name)
            header_keys.append(key)
    values_of: Callable[[Mapping[str, object]], tuple[object, ...]]
    if len(header_keys) > 1:
        values_of = itemgetter(*header_keys)  # a tuple of their values
    else:  # itemgetter of one key gives the value itself
        values_of = partial(_values, tuple(header_keys))
    layout = (tuple(names), values_of)
    if len(_layouts) >= LAYOUTS_SIZE:
        _layouts.clear()
    _layouts[keys] = layout
    return layout


def _values(keys: tuple[object, ...], environ: Mapping[str, object]) -> tuple[object, ...]:
    return tuple(environ[key] for key in keys)  # type: ignore[index]


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
        pairs = self._pairs
        if pairs is None:
            environ = self._environ
            keys = tuple(environ)
            layout = _layouts.get(keys)
            if layout is None:
                layout = _layout(keys)
            names, values_of = layout
            values = values_of(environ)
            pairs = list(zip(names, values, strict=False))  # type: ignore[arg-type]  # same lengths
            try:
                "".join(values)  # type: ignore[arg-type]  # all text? (C-level, no loop)
            except TypeError:  # a server's mistake: values that are no text are dropped
                pairs = [pair for pair in pairs if isinstance(pair[1], str)]
            for key, name in _CGI_HEADERS:
                value = environ.get(key)
                if value and isinstance(value, str):
                    pairs.append((name, value))
            self._pairs = pairs
        return pairs

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


#: ``EnvironHeaders(environ)`` without the frame of its ``__init__`` (geofence/hotpath/_makers.py).
new_environ_headers: Callable[[Mapping[str, object]], EnvironHeaders] = maker(
    EnvironHeaders, ("_environ",), (), (("_pairs", None),)
)


def environ_key(header: str | None) -> str | None:
    """The environ key of request header ``header`` (``X-Forwarded-For``:
    ``HTTP_X_FORWARDED_FOR``); None for None."""
    return None if header is None else "HTTP_" + header.upper().replace("-", "_")


def environ_host(environ: Mapping[str, object]) -> str:
    """The request's host (PEP 3333: ``HTTP_HOST``, else ``SERVER_NAME``), for `hosts` rules."""
    host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME") or ""
    return host if isinstance(host, str) else ""


def environ_info(environ: Mapping[str, object], facts: tuple[str | None, str, str]) -> RequestInfo:
    """The core's request facts from an environ (a WSGI one, or Django's ``request.META``) and
    the request's (peer, method, path); the body is never touched, headers are read lazily."""
    host = environ_host(environ)  # two lookups: not worth a question to the engine here
    return new_request_info(facts[0], new_environ_headers(environ), facts[1], facts[2], host)

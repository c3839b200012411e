"""WSGI (PEP 3333) translation for adapters that sit in a WSGI layer: the routed path from
PATH_INFO, the core's response sent as a WSGI response, and a warning's headers set on the
app's response through ``start_response``. No web framework is imported here."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import suppress
from http import HTTPStatus
from typing import TYPE_CHECKING, ClassVar

from geofence._cache import BoundedCache
from geofence.http._responses import CACHE_OVERRIDE_HEADERS, Response

if TYPE_CHECKING:
    from _typeshed import OptExcInfo
    from _typeshed.wsgi import StartResponse

    from geofence.http._answer import Answer


def routed_path(raw: str) -> str:
    """The path a WSGI framework routes for PATH_INFO ``raw`` (Werkzeug's ``request.path``):
    decoded the WSGI way (Latin-1 bytes read as UTF-8, undecodable bytes replaced), with
    exactly one leading slash. Never raises."""
    path = raw
    if not path.isascii():
        # A string that does not encode is no valid WSGI string: frameworks refuse it too, and
        # geofence decides on it as it came.
        with suppress(UnicodeError):
            path = path.encode("latin-1").decode(errors="replace")
    return "/" + path.lstrip("/")


class RoutedPaths(BoundedCache[str, str]):
    """``paths[raw]`` is ``routed_path(raw)``, remembered: computing it costs more than the
    dictionary lookup of a hit, and an app sees few distinct paths."""

    __slots__ = ()
    #: Longer PATH_INFO values are computed every time, never pinned in memory.
    LONGEST: ClassVar[int] = 1024

    def __missing__(self, raw: str) -> str:
        path = routed_path(raw)
        if len(raw) <= self.LONGEST:
            self.put(raw, path)
        return path


#: PATH_INFO -> the routed path, for every WSGI adapter.
WSGI_ROUTED_PATHS = RoutedPaths(4096)


def wsgi_send(
    response: Response, start_response: StartResponse, kept: Iterable[tuple[str, str]] = ()
) -> list[bytes]:
    """Send the core's ``response``. ``kept``: headers the app's own processing put on it
    (CORS headers from a hook), kept unless the response sets that name itself or they would
    let a cache store it."""
    replaced = {name.lower() for name, _ in response.headers}.union(CACHE_OVERRIDE_HEADERS)
    headers = [(name, value) for name, value in kept if name.lower() not in replaced]
    # Last, so that a HEAD answer keeps the GET Content-Length the core gave it.
    headers.extend(response.headers)
    start_response(f"{response.status} {HTTPStatus(response.status).phrase}", headers)
    return [response.body]


def wsgi_amend(answer: Answer, start_response: StartResponse) -> StartResponse:
    """``start_response`` that sets ``answer.headers(get)`` on whatever response leaves the
    app (error pages included), replacing the app's headers of the same names."""

    def start(
        status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None, /
    ) -> Callable[[bytes], object]:
        def get(name: str) -> str | None:
            key = name.lower()
            return ", ".join(v for k, v in headers if k.lower() == key) or None

        added = answer.headers(get)
        replaced = {name.lower() for name, _ in added}
        kept = [(k, v) for k, v in headers if k.lower() not in replaced]
        return start_response(status, kept + added, exc_info)

    return start

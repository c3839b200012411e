"""The objects adapters build for every request the cache cannot answer, without the frame of
their ``__init__``.

A new client costs an adapter a :class:`RequestInfo` and a lazy header view besides the
decision. Calling a Python class runs its ``__init__`` in a Python frame, about 2,000
instructions for RequestInfo's five stores and 1,700 for a view's two, more than the rest of
what the adapter does for that request. With the C probe built, ``geofence.hotpath._hotpath.Maker``
stores the arguments in the instance's slots itself (a few hundred); without it, each maker is
the class itself. The header views' makers sit beside their classes (geofence/http/_environ.py
and _asgi.py). A Maker is only for a class whose ``__init__`` does nothing but store its
parameters in the named slots, in order, and the ``fixed`` values in others:
tests/native/test_makers.py holds every maker to that. It calls the class instead whenever the
class was changed (a patched ``__init__``), and for keywords or another number of arguments,
so the result is always what calling the class gives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar

from geofence._model import RequestInfo
from geofence.hotpath._probe import NATIVE as NATIVE_PROBE

T = TypeVar("T")


def maker(
    cls: type[T],
    params: tuple[str, ...],
    defaults: tuple[object, ...] = (),
    fixed: tuple[tuple[str, object], ...] = (),
) -> Callable[..., T]:
    """``cls`` itself, or with the C probe built a ``geofence.hotpath._hotpath.Maker`` that makes
    what ``cls(*args)`` makes: ``params`` are the slots ``__init__`` stores its parameters
    in, in order, ``defaults`` the values of the last ones, ``fixed`` (slot, value) pairs it
    also stores."""
    if not NATIVE_PROBE:
        return cls
    from geofence.hotpath import _hotpath

    made: Callable[..., T] = _hotpath.Maker(cls, params, defaults, fixed)
    return made


class NewRequestInfo(Protocol):
    def __call__(
        self,
        peer: str | None,
        headers: Sequence[tuple[str, str]] = (),
        method: str = "GET",
        path: str = "/",
        host: str = "",
        /,
    ) -> RequestInfo: ...


#: ``RequestInfo(peer, headers, method, path, host)``, positional only.
new_request_info: NewRequestInfo = maker(
    RequestInfo, ("peer", "headers", "method", "path", "host"), ((), "GET", "/", "")
)

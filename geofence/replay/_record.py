"""What a reader makes of one access-log line: a :class:`Record`, or an :class:`Unparsable`."""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple, Union


class Record(NamedTuple):
    """One request as an access log recorded it, in the engine's terms.

    ``time`` is aware and in UTC. ``peer`` is the address the log's writer saw the request
    come from (what the app behind it sees as its socket peer, see the package docstring);
    ``forwarded`` the forwarding header's value the log recorded (None when the format has no
    such column or the line shows none). ``path`` is the routed path: the request target
    without its query string, percent-decoded as UTF-8 (as ASGI servers and WSGI frameworks
    do before routing). ``host`` is the request's host ("" when the log has none); ``user``
    the line's user or account field, when the format has one. ``line`` is the 1-based line
    number in its file.
    """

    time: datetime
    peer: str | None
    forwarded: str | None
    method: str
    path: str
    host: str
    user: str | None
    line: int


class Unparsable(NamedTuple):
    """A line a reader could not turn into a :class:`Record`: counted, never fatal."""

    line: int
    text: str
    why: str


Parsed = Union[Record, Unparsable]  # noqa: UP007 (evaluated at run time on 3.10)

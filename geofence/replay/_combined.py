"""nginx / Apache ``combined`` (and ``common``) access logs.

Layout, from nginx's ``ngx_http_log_module`` (https://nginx.org/en/docs/http/ngx_http_log_module.html#log_format),
whose predefined format is::

    log_format combined '$remote_addr - $remote_user [$time_local] '
                        '"$request" $status $body_bytes_sent '
                        '"$http_referer" "$http_user_agent"';

and Apache's ``LogFormat "%h %l %u %t \\"%r\\" %>s %b \\"%{Referer}i\\" \\"%{User-agent}i\\""
combined`` (https://httpd.apache.org/docs/current/logs.html#combined). Also read:

* ``common`` (CLF): the same without the referer and user agent;
* nginx's ``main`` format from its default ``nginx.conf``: ``combined`` followed by
  ``"$http_x_forwarded_for"``; that last quoted field is the record's forwarding header value
  (``-`` means none was sent).

Fields used: ``$remote_addr`` (peer), ``$remote_user`` (user), ``$time_local`` (time; its offset
converts it to UTC), ``$request`` (method and target; the path is the target without its query,
percent-decoded). The format has no host: a policy with ``hosts`` rules sees an empty host (the
report says so). Quoted fields are unescaped both ways: nginx writes ``\\xHH`` for a quote,
a backslash, control and non-ASCII bytes, Apache writes ``\\"``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from geofence.replay._fields import ClfMinutes, request_target
from geofence.replay._record import Parsed, Record, Unparsable
from geofence.replay._source import Numbered

NAME = "combined"
TITLE = "nginx/Apache combined"

# A quoted field with backslash escapes, as an unrolled loop (no alternation per character).
_Q = r'"([^"\\]*(?:\\.[^"\\]*)*)"'
_LINE = re.compile(
    rf"(\S+) \S+ (\S+) \[([^\]]+)\] {_Q} (?:\d{{3}}|-) (?:\d+|-)"
    rf"(?: {_Q} {_Q}(?: {_Q})?)?[ \t]*\Z"
)
_ESCAPE = re.compile(r"\\x([0-9A-Fa-f]{2})|\\(.)")
_METHOD = re.compile(r"[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*\Z")


def unescape(text: str) -> str:
    """A quoted field as the request carried it: nginx's ``\\xHH`` bytes (UTF-8 when they
    decode as such) and Apache's backslash escapes undone."""
    if "\\" not in text:
        return text
    raw = _ESCAPE.sub(lambda m: chr(int(m[1], 16)) if m[1] else m[2], text)
    try:
        return raw.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return raw


def request_line(text: str) -> tuple[str, str, str] | str:
    """(method, path, host) of an HTTP request line, or the reason it is not one."""
    parts = text.split(" ")
    if len(parts) not in (2, 3) or not _METHOD.match(parts[0]):
        return "no HTTP request line" if not text.strip("- ") else "malformed request line"
    target = request_target(parts[1])
    if target is None:
        return f"request target {parts[1][:40]!r} has no path"
    return parts[0], target[0], target[1]


def records(lines: Iterator[Numbered]) -> Iterator[Parsed]:
    last_stamp, last_time = "", None
    minutes = ClfMinutes()
    for number, line in lines:
        if not line.strip():
            continue
        match = _LINE.match(line)
        if match is None:
            yield Unparsable(number, line, "not a combined/common log line")
            continue
        peer, user, stamp, request, _referer, _agent, forwarded = match.groups()
        if stamp != last_stamp:  # neighbouring lines mostly share their second
            last_stamp, last_time = stamp, minutes.time(stamp)
        if last_time is None:
            yield Unparsable(number, line, f"time [{stamp}] is not day/Mon/year:h:m:s +zone")
            continue
        parsed = request_line(unescape(request))
        if isinstance(parsed, str):
            yield Unparsable(number, line, parsed)
            continue
        method, path, host = parsed
        if forwarded is not None:
            forwarded = None if forwarded in ("", "-") else unescape(forwarded)
        yield Record(
            last_time,
            None if peer == "-" else peer,
            forwarded,
            method,
            path,
            host,
            None if user == "-" else unescape(user),
            number,
        )

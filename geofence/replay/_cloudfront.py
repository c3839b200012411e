"""Amazon CloudFront standard logs (access logs, legacy S3 delivery and v2 in W3C form).

Layout: Amazon CloudFront Developer Guide, "Standard log file fields"
(https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/standard-logs-reference.html#BasicDistributionFileFormat):
a file starts with ``#Version: 1.0`` and ``#Fields: ...`` naming the tab-separated fields of
each line; the documented order is::

    date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status
    cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id
    x-host-header cs-protocol cs-bytes time-taken x-forwarded-for ssl-protocol ssl-cipher
    x-edge-response-result-type cs-protocol-version fle-status fle-encrypted-fields c-port
    time-to-first-byte x-edge-detailed-result-type sc-content-type sc-content-len
    sc-range-start sc-range-end

The ``#Fields`` line is read, so a file whose fields are reordered or selected (v2 logging
lets one pick them) is read by name; lines before any ``#Fields`` use the order above. A
``#Fields`` line later in the file (files concatenated) takes over from there. ``-`` is an
empty value. Fields used: ``date`` + ``time`` (UTC; when the edge finished responding, in
whole seconds: ``time-taken`` is not subtracted, as the truncated fraction is as large an
error the other way), ``c-ip`` (peer: the viewer, or the
proxy it came through), ``x-forwarded-for`` (forwarding header: the viewer's own
X-Forwarded-For), ``cs-method``, ``cs-uri-stem`` (the path, percent-decoded),
``x-host-header`` (the Host the viewer sent; else ``cs(Host)``, the distribution's domain).
"""

from __future__ import annotations

from collections.abc import Iterator

from geofence.replay._fields import host_of, iso_time, request_target
from geofence.replay._record import Parsed, Record, Unparsable
from geofence.replay._source import Numbered

NAME = "cloudfront"
TITLE = "CloudFront standard log"

# The documented order, used for lines before any #Fields line.
DOCUMENTED_FIELDS = (
    "date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status "
    "cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id "
    "x-host-header cs-protocol cs-bytes time-taken x-forwarded-for ssl-protocol ssl-cipher "
    "x-edge-response-result-type cs-protocol-version fle-status fle-encrypted-fields c-port "
    "time-to-first-byte x-edge-detailed-result-type sc-content-type sc-content-len "
    "sc-range-start sc-range-end"
)
_NEEDED = ("date", "time", "c-ip", "cs-method", "cs-uri-stem")


class _Layout:
    """Where each used field is on a line, from a ``#Fields`` line."""

    def __init__(self, names: list[str]) -> None:
        index = {name.lower(): i for i, name in enumerate(names)}
        self.missing = [n for n in _NEEDED if n not in index]
        self.width = max(index[n] for n in _NEEDED if n in index) + 1 if index else 0
        self.date = index.get("date", -1)
        self.time = index.get("time", -1)
        self.ip = index.get("c-ip", -1)
        self.method = index.get("cs-method", -1)
        self.stem = index.get("cs-uri-stem", -1)
        self.host_header = index.get("x-host-header", -1)
        self.cs_host = index.get("cs(host)", -1)
        self.forwarded = index.get("x-forwarded-for", -1)


def _get(fields: list[str], at: int) -> str:
    if 0 <= at < len(fields):
        value = fields[at]
        return "" if value == "-" else value
    return ""


def records(lines: Iterator[Numbered]) -> Iterator[Parsed]:
    layout = _Layout(DOCUMENTED_FIELDS.split(" "))
    last_stamp, last_time = "", None
    for number, line in lines:
        if not line.strip():
            continue
        if line.startswith("#"):
            key, _, rest = line[1:].partition(":")
            if key.strip().lower() == "fields":
                layout = _Layout(rest.split())
                if layout.missing:
                    yield Unparsable(number, line, f"#Fields lacks {', '.join(layout.missing)}")
            continue  # #Version and other directives
        fields = line.split("\t")
        if layout.missing or len(fields) < layout.width:
            yield Unparsable(number, line, "not a CloudFront log line (too few tab fields)")
            continue
        stamp = f"{fields[layout.date]}T{fields[layout.time]}Z"
        if stamp != last_stamp:
            last_stamp, last_time = stamp, iso_time(stamp)
        if last_time is None:
            yield Unparsable(number, line, "date and time are not YYYY-MM-DD and HH:MM:SS")
            continue
        method = fields[layout.method]
        if not method.isalpha():
            yield Unparsable(number, line, f"cs-method {method[:20]!r} is not a method")
            continue
        target = request_target(fields[layout.stem])
        if target is None:
            yield Unparsable(number, line, "cs-uri-stem is not a path")
            continue
        host = host_of(_get(fields, layout.host_header) or _get(fields, layout.cs_host))
        peer = _get(fields, layout.ip) or None
        forwarded = _get(fields, layout.forwarded) or None
        yield Record(last_time, peer, forwarded, method, target[0], host, None, number)

"""AWS Application Load Balancer access logs.

Layout: AWS, "Access logs for your Application Load Balancer", section "Access log entries"
(https://docs.aws.amazon.com/elasticloadbalancing/latest/application/load-balancer-access-logs.html#access-log-entry-format):
space-separated fields, some quoted, in this order::

    type time elb client:port target:port request_processing_time target_processing_time
    response_processing_time elb_status_code target_status_code received_bytes sent_bytes
    "request" "user_agent" ssl_cipher ssl_protocol target_group_arn "trace_id" "domain_name"
    "chosen_cert_arn" matched_rule_priority request_creation_time "actions_executed"
    "redirect_url" "error_reason" "target:port_list" "target_status_code_list"
    "classification" "classification_reason" conn_trace_id

``type`` is one of http, https, h2, grpcs, ws, wss; ``time`` is ISO 8601 in UTC (when the load
balancer answered; for a websocket, when the connection closed) and ``request_creation_time``
when it received the request: the record's time is the latter (what an app behind it decided
at), or ``time`` for an older entry without it. ``request`` is
``"METHOD scheme://host:port/path?query HTTP/x"`` (``"- - - "`` for a request the load balancer
could not parse, reported here as unparsable). AWS may append
fields: only the first twenty-two are read. The record's peer is ``client`` without its port
(``1.2.3.4:5678``; an IPv6 client is written without brackets, the port after the last colon;
brackets are accepted too); the host comes from the request's URL. ALB logs record no
forwarding header: the client is the address that connected to the load balancer, which is
what an app behind it sees as the rightmost X-Forwarded-For entry.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from geofence.replay._combined import request_line, unescape
from geofence.replay._fields import iso_time, split_port
from geofence.replay._record import Parsed, Record, Unparsable
from geofence.replay._source import Numbered

NAME = "alb"
TITLE = "AWS ALB"

_TYPES = frozenset({"http", "https", "h2", "grpcs", "ws", "wss"})
_Q = r'"[^"\\]*(?:\\.[^"\\]*)*"'
_HEAD = re.compile(
    r'(\S+) (\S+) \S+ (\S+) \S+ \S+ \S+ \S+ \S+ \S+ \S+ \S+ "([^"\\]*(?:\\.[^"\\]*)*)"'
    # user_agent ssl_cipher ssl_protocol target_group_arn trace_id domain_name chosen_cert_arn
    # matched_rule_priority request_creation_time (absent from older entries)
    rf"(?: {_Q} \S+ \S+ \S+ {_Q} {_Q} {_Q} \S+ (\S+))?"
)


def records(lines: Iterator[Numbered]) -> Iterator[Parsed]:
    last_stamp, last_time = "", None
    for number, line in lines:
        if not line.strip():
            continue
        match = _HEAD.match(line)
        if match is None or match[1] not in _TYPES:
            yield Unparsable(number, line, "not an ALB access log entry")
            continue
        _, logged, client, request, created = match.groups()
        # When the request came in (what the app decided at), else when it was answered.
        stamp = created if created is not None and created != "-" else logged
        if stamp != last_stamp:
            last_stamp, last_time = stamp, iso_time(stamp)
        if last_time is None:
            yield Unparsable(number, line, f"time {stamp!r} is not ISO 8601 with a zone")
            continue
        parsed = request_line(unescape(request).rstrip())
        if isinstance(parsed, str):
            yield Unparsable(number, line, parsed)
            continue
        method, path, host = parsed
        yield Record(last_time, split_port(client), None, method, path, host, None, number)

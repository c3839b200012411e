"""The facts the engine decides on, and the decision it returns."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import Literal, NamedTuple

from geofence._record import record
from geofence.hotpath import TUPLES

Action = Literal["allow", "warn", "block"]


# Not frozen: adapters build one per request, and a frozen dataclass costs several times more to
# construct (every field goes through object.__setattr__). The engine never changes it.
@record(slots=True)
class RequestInfo:
    """What an adapter knows about a request, in framework-neutral form.

    ``peer`` is the socket peer address (``None`` when the server gives none, e.g. a Unix
    socket). ``headers`` are (name, value) pairs in arrival order; names in any case, repeated
    names allowed. ``path`` is the routed path, without the mount prefix.
    """

    peer: str | None
    headers: Sequence[tuple[str, str]] = ()
    method: str = "GET"
    path: str = "/"
    host: str = ""


class Decision(NamedTuple):
    """The engine's answer for one request. Immutable: cached decisions are shared by requests.

    A named tuple rather than a frozen dataclass because one is built for every new client and
    construction is several times cheaper. Fields are read by name; their order is not part of
    the API. ``action``, ``enforced``, ``reason``, ``rule``, ``client_ip``, ``country`` and
    ``subdivisions`` are the public contract (DESIGN.md); the rest carry what adapters and the
    CLI need to answer and to explain.
    """

    action: Action
    enforced: bool
    reason: str
    rule: str | None = None
    country: str | None = None
    subdivisions: tuple[str, ...] = ()
    # Network types reported by the anonymous-IP database ("vpn", "tor", ...), sorted.
    anonymizers: tuple[str, ...] = ()
    # The client's autonomous system number (geoip.asn_db), when some rule asks about it
    # (``asns``); None otherwise, or when the database has no number for the client.
    asn: int | None = None
    # HTTP status of a block (451 or the rule's status; 503 for db_error); None unless the
    # action is "block".
    status: int | None = None
    # The matching rule's grace window, for the Sunset / Deprecation headers.
    warn_from: datetime | None = None
    enforce_from: datetime | None = None
    # Human words on the rule's phase: "grace period", "enforced since ...", "always".
    phase: str = ""
    # Rules in report mode that matched on the way (dry runs), by name.
    report_rules: tuple[str, ...] = ()
    # The Account's id when the app passed one (DESIGN "Accounts"), else None.
    account: str | None = None
    # Last, so that the engine can build a decision as (what the policy says) + (who asked):
    client_ip: str | None = None
    # Human words on how the client IP was found (or why it could not be).
    client_detail: str = ""
    # Short reference of a warn or block (None for allow), shown to the user and logged, so
    # that a support desk finds the log line; the same client, rule and account get the same
    # reference from one engine (see geofence._refs).
    ref: str | None = None


class Facts(NamedTuple):
    """What a verdict depends on besides the time: the request's method and path, and what the
    databases say about its client. Rules see only these, and the verdict cache is keyed on
    them, so a new fact (an account's state, an ASN, the host) is one new field here, and two
    requests that differ in it can never share a verdict."""

    method: str  # upper-case ("" for one too long to be a method)
    path: str
    country: str | None
    subdivisions: tuple[str, ...]
    anonymizers: frozenset[str]
    fallback: str  # the decision's reason when no rule matches ("default", "not_found", ...)
    # The account's home country, when the app passed an account and some rule asks about it
    # (home_regions, home_mismatch); None otherwise, so that without such rules an account
    # shares the verdicts of every other request.
    home: str | None = None
    # The request's host (lower-case, without port or IPv6 brackets), when some rule asks
    # about it (``hosts``); None otherwise, so that without such rules every host shares one
    # verdict.
    host: str | None = None
    # The client's autonomous system number, when some rule asks about it (``asns``) and the
    # ASN database has one; None otherwise.
    asn: int | None = None


class DecisionKey(NamedTuple):
    """The key of the engine's decision cache: everything about a request its decision
    depends on, besides the time and the databases (which the cache's epoch covers). A fact
    that can change a decision (an account) must be a field here."""

    # A client that is its own socket peer: the peer's text, so that a repeated request is
    # found before its headers are read. A client found behind a trusted proxy: (its
    # address, how it was found), which a text never equals.
    client: str | tuple[str | None, str] | None
    method: str
    path: str


# The client's fields come last, so that a verdict (what the policy says, shared by many
# clients) becomes a client's decision by appending them: one tuple build, no Python-level
# __new__ and no _replace, on the path of every new client. This is the one place that
# knows their position.
_CLIENT_FIELDS = ("client_ip", "client_detail", "ref")
assert Decision._fields[-3:] == _CLIENT_FIELDS, "with_client() relies on the field order"
_new = tuple.__new__


def _with_client(
    verdict: Decision, client_ip: str | None, client_detail: str, ref: str | None, /
) -> Decision:
    """``verdict`` (a decision whose client fields are unset) for the client ``client_ip``.
    Every argument is required: the compiled twin replaces exactly the last three items."""
    decision: Decision = _new(Decision, (*verdict[:-3], client_ip, client_detail, ref))
    return decision


#: _with_client: with geofence.hotpath._tuples built, ``with_tail`` bound to Decision, which makes
#: the decision in one allocation and without a Python frame (instead of a slice, a list and a
#: tuple).
with_client: Callable[[Decision, str | None, str, str | None], Decision] = (
    _with_client if TUPLES is None else partial(TUPLES.with_tail, Decision)
)

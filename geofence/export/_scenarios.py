"""A generated scenario table for a policy: the requests on which an export must decide what
the engine decides.

The table is the cross product of

- clients (:func:`address_plan`): one per country and per subdivision the policy names, the
  neighbours people confuse (CN next to HK, MO and TW; UA-43 next to UA-14 and UA-30; a
  subdivision at the second level of a record), a country no rule names, a record without a
  country, an address in no network, private clients, one client in each exempt network, and
  a forwarding chain that names no usable address (``unresolved_client``);
- requests (:func:`request_variants`): every method a rule names plus GET, HEAD, POST and one
  no rule names; for each path glob a path it matches and near misses (the prefix without its
  slash, another case); the exempt paths, and the same with a ``.`` segment (never exempt);
  every host a rule names, in another case and with a port, and a host none names;
- instants (:func:`instants`): one second before, at, and one second after each ``warn_from``
  and ``enforce_from``, plus a day before the first and after the last.

The address plan is made up (it says nothing about where these addresses are): a test writes
it as a City database (:func:`city_records` gives the records) and points the policy's
``geoip.country_db`` at it, so that every region of the policy has a client.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from ipaddress import ip_network
from typing import Any

from geofence._engine import normalize_host
from geofence._model import RequestInfo
from geofence.config._policy import Policy
from geofence.export._edge import EdgeFacts

SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)
#: Countries every table has, whatever the policy names: the ones people confuse.
NEIGHBOURS = ("CN", "HK", "MO", "TW", "UA", "RU", "GB", "US", "DE", "FR")
#: Subdivisions every table has: occupied Ukrainian regions next to the rest, and England
#: with London below it (two levels).
NEIGHBOUR_SUBDIVISIONS: tuple[tuple[str, ...], ...] = (
    ("UA-43",),
    ("UA-14",),
    ("UA-30",),
    ("UA-40",),
    ("UA-09", "UA-43"),  # UA-43 at the second level of a record: "at any level"
    ("GB-ENG", "GB-LND"),
    ("CN-22",),
)


@dataclass(frozen=True)
class Client:
    """A client of the table: its address (what the forwarding header names) and what the
    database the test writes says about it."""

    label: str
    ip: str | None  # None: the forwarding chain names no usable address
    country: str | None = None
    subdivisions: tuple[str, ...] = ()
    found: bool = True  # False: the address is in no network of the database
    network: str | None = None  # the database network it sits in (None: not in the plan)
    forwarded: str | None = None  # the header value naming it (default: ip)
    private: bool = False

    @property
    def header_value(self) -> str:
        return self.forwarded if self.forwarded is not None else (self.ip or "")


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    host: str  # the Host header as sent ("" = none)


@dataclass(frozen=True)
class Scenario:
    """One row: this client sends this request at this instant."""

    client: Client
    request: Request
    at: datetime

    def request_info(
        self, *, proxy: str | None = "127.0.0.1", header: str = "x-forwarded-for"
    ) -> RequestInfo:
        """The request as the app sees it: from ``proxy`` (a trusted proxy) with ``header``
        naming the client; ``proxy=None``: the client is the socket peer."""
        headers: list[tuple[str, str]] = []
        if self.request.host:
            headers.append(("host", self.request.host))
        if proxy is None:
            peer = self.client.ip
        else:
            peer = proxy
            headers.append((header, self.client.header_value))
        return RequestInfo(
            peer=peer,
            headers=headers,
            method=self.request.method,
            path=self.request.path,
            host=self.request.host,
        )

    def facts(self) -> EdgeFacts:
        """What an edge knows about the request (its own lookup in the same database)."""
        client = self.client
        return EdgeFacts(
            client_ip=client.ip,
            country=client.country,
            subdivisions=client.subdivisions,
            found=client.found,
            method=self.request.method,
            path=self.request.path,
            host=normalize_host(self.request.host) if self.request.host else "",
        )


# -- clients -----------------------------------------------------------------------------------


def _codes(policy: Policy) -> tuple[list[str], list[tuple[str, ...]]]:
    countries: dict[str, None] = dict.fromkeys(NEIGHBOURS)
    subdivisions: dict[tuple[str, ...], None] = dict.fromkeys(NEIGHBOUR_SUBDIVISIONS)
    for rule in policy.rules:
        for code in (*rule.regions, *rule.except_regions, *rule.home_regions):
            if len(code) == 2:
                countries[code] = None
            elif "-" in code:
                countries[code.partition("-")[0]] = None
                subdivisions[(code,)] = None
    return list(countries), list(subdivisions)


def _v4(index: int) -> tuple[str, str]:
    # 11.0.0.0/8 upwards: public space, far from the private and documentation ranges.
    first, second = 11 + (index >> 8), index & 255
    return f"{first}.{second}.0.0/16", f"{first}.{second}.7.7"


def address_plan(policy: Policy, *, ipv6: Sequence[str] = ("CN", "HK", "UA-43")) -> list[Client]:
    """The clients of ``policy``'s table (see the module's doc). ``ipv6``: the countries
    and subdivisions that also get an IPv6 client."""
    countries, subdivisions = _codes(policy)
    clients: list[Client] = []
    index = 0
    v6 = 0

    def add(label: str, country: str | None, subs: tuple[str, ...]) -> None:
        nonlocal index, v6
        network, ip = _v4(index)
        index += 1
        clients.append(Client(label, ip, country, subs, True, network))
        if label in ipv6:
            v6 += 1
            net, addr = f"2a0f:{v6:x}::/32", f"2a0f:{v6:x}::7"
            clients.append(Client(f"{label} (IPv6)", addr, country, subs, True, net))

    for country in countries:
        add(country, country, ())
    for subs in subdivisions:
        add(" ".join(subs), subs[0].partition("-")[0], subs)
    network, ip = _v4(index)
    clients.append(Client("a record without a country", ip, None, (), True, network))
    clients.append(Client("in no network", "8.8.8.8", None, (), False))
    clients.append(Client("in no network (IPv6)", "2001:4860::1", None, (), False))
    for ip in ("10.9.9.9", "192.168.1.20", "fd00::5"):
        clients.append(Client(f"private {ip}", ip, None, (), False, private=True))
    for cidr in policy.exempt_ips:
        inside = cidr.network_address + (1 if cidr.num_addresses > 1 else 0)
        # What the database says about it, should the exempt network lie in the plan.
        home = next((c for c in clients if c.network and inside in ip_network(c.network)), None)
        if home is None:
            clients.append(Client(f"exempt {cidr}", str(inside), None, (), False))
        else:
            clients.append(
                Client(f"exempt {cidr}", str(inside), home.country, home.subdivisions, True)
            )
    clients.append(Client("garbage in the chain", None, None, (), False, forwarded="not-an-ip"))
    return clients


def city_records(clients: Iterable[Client]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(network, City record) for every client the plan puts in the database."""
    seen: set[str] = set()
    for client in clients:
        if client.network is None or client.network in seen:
            continue
        seen.add(client.network)
        record: dict[str, Any] = {"continent": {"code": "EU"}}
        if client.country is not None:
            record["country"] = {"iso_code": client.country, "names": {"en": client.country}}
        if client.subdivisions:
            record["subdivisions"] = [
                {"iso_code": code.partition("-")[2]} for code in client.subdivisions
            ]
        yield client.network, record


# -- requests ----------------------------------------------------------------------------------


def glob_samples(glob: str) -> list[str]:
    """A path ``glob`` matches, and near misses: its literal prefix without a trailing slash,
    and the sample in another case (paths are case-sensitive)."""
    if glob == "*":
        return ["/anything"]
    sample = re.sub(r"\[!([^\]]*)\]", lambda m: _outside(m.group(1)), glob)
    sample = re.sub(r"\[([^\]]*)\]", lambda m: m.group(1)[0], sample)
    sample = sample.replace("*", "x/y").replace("?", "q")
    out = [sample]
    prefix = re.split(r"[*?\[]", glob, maxsplit=1)[0]
    if prefix != glob:
        out.append(prefix.rstrip("/") or "/")
    swapped = sample.swapcase()
    if swapped != sample:
        out.append(swapped)
    return out


def _outside(excluded: str) -> str:
    return next(c for c in "zqk0_" if c not in excluded)


def _dotted(path: str) -> str:
    # The same place with a "." segment: never exempt (DESIGN "Paths").
    head, _, tail = path.rpartition("/")
    return f"{head}/./{tail}" if head else f"/./{tail}"


def request_variants(policy: Policy) -> list[Request]:
    """Every (method, path, host) of the table."""
    methods: dict[str, None] = dict.fromkeys(("GET", "HEAD", "POST"))
    for rule in policy.rules:
        methods.update(dict.fromkeys(rule.methods))
    methods["DELETE" if "DELETE" not in methods else "PATCH"] = None
    paths: dict[str, None] = dict.fromkeys(("/",))
    for rule in policy.rules:
        for glob in rule.paths:
            paths.update(dict.fromkeys(glob_samples(glob)))
    for glob in policy.exempt_paths:
        samples = glob_samples(glob)
        paths.update(dict.fromkeys(samples))
        paths[_dotted(samples[0])] = None
    hosts: dict[str, None] = {}
    for rule in policy.rules:
        for glob in rule.hosts:
            sample = glob.replace("*", "a.b") if ":" not in glob else f"[{glob}]"
            hosts.update(dict.fromkeys((sample, sample.upper() + ":8443")))
            if glob.startswith("*."):
                hosts[glob[2:]] = None  # "*" is one or more labels: the bare domain is not in
    hosts["other.test"] = None
    return [
        Request(method, path, host)
        for method, path, host in itertools.product(methods, paths, hosts)
    ]


def instants(policy: Policy) -> list[datetime]:
    """One second before, at and after each rule date, and a day outside them all."""
    dates = sorted({d for r in policy.rules for d in (r.warn_from, r.enforce_from) if d})
    if not dates:
        return [datetime(2024, 1, 1, tzinfo=timezone.utc)]
    out = {dates[0] - DAY, dates[-1] + DAY}
    for date in dates:
        out.update((date - SECOND, date, date + SECOND))
    return sorted(out)


def scenario_table(
    policy: Policy,
    clients: Sequence[Client] | None = None,
    requests: Sequence[Request] | None = None,
    moments: Sequence[datetime] | None = None,
) -> list[Scenario]:
    """The cross product of clients, requests and instants (each defaulting to the plan)."""
    clients = address_plan(policy) if clients is None else clients
    requests = request_variants(policy) if requests is None else requests
    moments = instants(policy) if moments is None else moments
    return [
        Scenario(client, request, at)
        for at, client, request in itertools.product(moments, clients, requests)
    ]

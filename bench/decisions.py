"""Sections 1 and 2: the engine's decision and the client-IP resolution, call by call."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import maxminddb
from iptocc import country_code
from report import Row, spread, stats_numbers, us
from timing import Batch, Stats, clock, paired, run
from workload import HEADERS, HOST, PATH, REPEATED, Addresses, policy

from geofence import Engine, RequestInfo, load_policy
from geofence.clientip._resolver import ClientResolver
from geofence.geoip._records import iso_countries

NEW_IP_TARGET = 1.3  # decision / one raw lookup
REPEATED_TARGET_NS = 500
RESOLVE_TARGET_NS = 2000


@dataclass(frozen=True)
class Sizes:
    new_count: int  # decisions per new-client batch
    repeat_count: int  # decisions per repeated-client batch
    rounds: int


def _request(peer: str, headers: tuple[tuple[str, str], ...] = HEADERS) -> RequestInfo:
    return RequestInfo(peer=peer, headers=headers, method="GET", path=PATH, host=HOST)


def _rounds(
    inputs: list[list[Any]], call: Callable[[Any], object], make: Callable[[Any], Any]
) -> Batch:
    """A batch that calls ``call`` once on each input of the next round's list."""
    prepared = [[make(a) for a in chunk] for chunk in inputs]
    position = iter(prepared)

    def batch(count: int) -> int:
        inputs = next(position)
        started = clock()
        for item in inputs:
            call(item)
        return clock() - started

    return batch


def _repeat(item: object, call: Callable[[Any], object]) -> Batch:
    def batch(count: int) -> int:
        inputs = [item] * count
        started = clock()
        for each in inputs:
            call(each)
        return clock() - started

    return batch


def _embedded_found(ip: str) -> bool:
    return country_code(ip) in iso_countries()


Fresh = Callable[[int], list[str]]  # count -> never-used client addresses


def decision_rows(
    db_path: str, db_label: str, addresses: Addresses, sizes: Sizes, overhead: float
) -> list[Row]:
    reader = maxminddb.open_database(db_path, maxminddb.MODE_MMAP_EXT)

    def embedded(count: int) -> list[str]:
        return addresses.v4(count, _embedded_found)

    def mmdb_v4(count: int) -> list[str]:
        return addresses.new_networks(count, reader, 4)

    def mmdb_v6(count: int) -> list[str]:
        return addresses.new_networks(count, reader, 6)

    def mmdb_anywhere(count: int) -> list[str]:
        # Uniform over the address space: big networks get many clients, as in real traffic,
        # so a network-keyed cache would hit; only the address is new.
        return addresses.v4(count, lambda ip: isinstance(reader.get(ip), dict))

    rows: list[Row] = []
    cases: list[tuple[str, str | None, dict[str, Any], Callable[[str], object], Fresh]] = [
        ("embedded default (iptocc)", None, {}, country_code, embedded),
        (db_label, db_path, {}, reader.get, mmdb_v4),
        (f"{db_label}, reload_interval=0", db_path, {"reload_interval": 0}, reader.get, mmdb_v4),
    ]
    for label, path, geoip, raw, fresh in cases:
        engine = Engine.from_config(policy(path, **geoip))
        judged = path is not None and not geoip  # the default settings on a MaxMind file
        new = "new client" if path is None else "new client (each in a new network)"
        rows += _decision_pair(label, engine, raw, fresh, sizes, overhead, new, judged=judged)
        if judged:
            for what, supply in (
                ("new IPv6 client (new network)", mmdb_v6),
                ("new address anywhere (networks may repeat)", mmdb_anywhere),
            ):
                rows += _decision_pair(
                    label, engine, raw, supply, sizes, overhead, what, judged=False, repeated=False
                )
    return rows


def _decision_pair(
    label: str,
    engine: Engine,
    raw: Callable[[str], object],
    fresh: Fresh,
    sizes: Sizes,
    overhead: float,
    client: str,
    *,
    judged: bool,
    repeated: bool = True,
) -> list[Row]:
    """The new-client row and, with ``repeated``, the repeated-client one; ``judged``: compared
    with the targets."""
    section = "1. decision: engine.decide(RequestInfo) vs one raw lookup"
    raw_name = "iptocc.country_code" if raw is country_code else "maxminddb reader.get"
    # One list per round, + the warm-up round.
    chunks = [fresh(sizes.new_count) for _ in range(sizes.rounds + 1)]
    new = paired(
        _rounds(chunks, raw, str),
        _rounds(chunks, engine.decide, _request),
        sizes.new_count,
        sizes.rounds,
    )
    raw_new, decide_new = new.a.minus(overhead), new.b.minus(overhead)
    ratio = decide_new.median / raw_new.median
    rows = [
        Row(
            section,
            f"{label}: {client}",
            us(decide_new),
            f"{spread(decide_new)}; raw {raw_name} {us(raw_new)}; = {ratio:.2f}x raw",
            f"<= {NEW_IP_TARGET}x raw" if judged else "",
            ratio <= NEW_IP_TARGET if judged else None,
            {
                **stats_numbers("decide", decide_new),
                **stats_numbers("raw", raw_new),
                "ratio": round(ratio, 3),
            },
        )
    ]
    if not repeated:
        return rows
    request = _request(REPEATED)
    decide_rep = run(_repeat(request, engine.decide), sizes.repeat_count, sizes.rounds)
    raw_rep = run(_repeat(REPEATED, raw), sizes.repeat_count, sizes.rounds)
    decide_rep, raw_rep = decide_rep.minus(overhead), raw_rep.minus(overhead)
    rows.append(
        Row(
            section,
            f"{label}: repeated client",
            us(decide_rep),
            f"{spread(decide_rep)}; raw {raw_name} {us(raw_rep)}",
            "<= 0.5 us" if judged or raw is country_code else "",
            decide_rep.median <= REPEATED_TARGET_NS if judged or raw is country_code else None,
            {**stats_numbers("decide", decide_rep), **stats_numbers("raw", raw_rep)},
        )
    )
    return rows


def resolver_rows(addresses: Addresses, sizes: Sizes, overhead: float) -> list[Row]:
    section = "2. client IP: ClientResolver.resolve(peer, headers)"
    rows: list[Row] = []
    direct = ClientResolver(load_policy({}).client_ip)
    trusted = ClientResolver(
        load_policy({"client_ip": {"trusted_proxies": ["10.0.0.0/8"]}}).client_ip
    )
    chain = (*HEADERS, ("x-forwarded-for", f"{REPEATED}, 10.0.0.1, 10.0.0.2"))
    for resolver, peer, headers in ((direct, REPEATED, HEADERS), (trusted, "10.0.0.3", chain)):
        answer = resolver.resolve(peer, headers)
        if answer.ip is None or answer.ip.text != REPEATED:
            raise RuntimeError(f"resolver gave {answer!r}, expected {REPEATED}")

    # partial, not a def: no extra Python frame in what is timed.
    resolve_direct = partial(direct.resolve, REPEATED)
    resolve_chain = partial(trusted.resolve, "10.0.0.3")

    cases: list[tuple[str, Stats, str, bool | None]] = []
    stats = run(_repeat(HEADERS, resolve_direct), sizes.repeat_count, sizes.rounds)
    cases.append(("no forwarding header (socket peer only)", stats, "", None))
    stats = run(_repeat(chain, resolve_chain), sizes.repeat_count, sizes.rounds)
    cases.append(("trusted 3-hop X-Forwarded-For, repeated client", stats, "<= 2 us", None))
    fresh = [
        [(*HEADERS, ("x-forwarded-for", f"{a}, 10.0.0.1, 10.0.0.2")) for a in chunk]
        for chunk in (
            addresses.v4(sizes.new_count, lambda _: True) for _ in range(sizes.rounds + 1)
        )
    ]
    stats = run(_rounds(fresh, resolve_chain, lambda h: h), sizes.new_count, sizes.rounds)
    cases.append(("trusted 3-hop X-Forwarded-For, new client", stats, "", None))
    for label, measured, target, _ in cases:
        result = measured.minus(overhead)
        met = result.median <= RESOLVE_TARGET_NS if target else None
        rows.append(
            Row(
                section,
                label,
                us(result),
                spread(result),
                target,
                met,
                stats_numbers("resolve", result),
            )
        )
    return rows

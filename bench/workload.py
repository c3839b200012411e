"""What the benchmarks feed geofence: the policy, request headers and never-seen client addresses.

The policy is the example one (``geofence demo``): two block rules on ``/v1/*`` and
``/web/*``, one of them in its grace period, an exempt health check and loopback as trusted
proxy. Requests go to ``/v1/models`` so that path globs and rules are evaluated, not skipped.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from ipaddress import IPv6Address
from typing import Any

from geofence.cli._example import example_policy

PATH = "/v1/models"
HOST = "api.example.com"
# What a browser-less API client behind nothing sends; servers add nothing to it.
HEADERS: tuple[tuple[str, str], ...] = (
    ("host", HOST),
    ("user-agent", "python-httpx/0.27.0"),
    ("accept", "application/json"),
    ("accept-encoding", "gzip, deflate"),
    ("connection", "keep-alive"),
    ("authorization", "Bearer sk-0123456789abcdef0123456789abcdef"),
)
# A public client seen over and over (US in iptocc, the MaxMind test data and the bench file).
REPEATED = "216.160.83.56"
SEED = 1_000_003
# The clustered workload (Addresses.clustered): networks per batch of clients, Zipf exponent.
CLUSTER_NETWORKS = 200
CLUSTER_EXPONENT = 1.0

# Special-purpose IPv4 blocks (and 224/3): such clients are decided "private" without a lookup,
# so the address supply skips them.
_SKIP_V4 = (
    (0x00000000, 0x01000000),
    (0x0A000000, 0x0B000000),
    (0x64400000, 0x64800000),
    (0x7F000000, 0x80000000),
    (0xA9FE0000, 0xA9FF0000),
    (0xAC100000, 0xAC200000),
    (0xC0000000, 0xC0000100),
    (0xC0000200, 0xC0000300),
    (0xC0A80000, 0xC0A90000),
    (0xC6120000, 0xC6140000),
    (0xC6336400, 0xC6336500),
    (0xCB007100, 0xCB007200),
    (0xE0000000, 0x100000000),
)
# Global unicast IPv6, without the ranges geofence reads as IPv4 clients (Teredo, 6to4).
_GLOBAL_V6 = (0x2000 << 112, 0x4000 << 112)
_SKIP_V6 = (
    (0x2001_0000 << 96, 0x2001_0001 << 96),
    (0x2002 << 112, 0x2003 << 112),
)


def ruled_countries(*, blocked_only: bool = False) -> frozenset[str]:
    """Countries some rule of the example policy names (blocked, or warned before a block);
    ``blocked_only``: those of its rules that block now (no warning period)."""
    config = example_policy()
    groups: dict[str, list[str]] = config.get("regions", {})
    named: set[str] = set()
    for rule in config["rules"]:
        if blocked_only and (rule["action"] != "block" or "warn_from" in rule):
            continue  # the example's other rule warns until a date in the future
        for region in rule.get("regions", ()):
            named.update(groups[region[1:]] if region.startswith("@") else [region])
    return frozenset(named)


def policy(country_db: str | None, **geoip: Any) -> dict[str, Any]:
    """The example policy on ``country_db`` (None: the embedded default)."""
    config = example_policy()
    settings: dict[str, Any] = dict(geoip)
    if country_db is not None:
        settings["country_db"] = country_db
    if settings:
        config["geoip"] = settings
    return config


class Addresses:
    """Public client addresses, each handed out once per run.

    geofence keeps module-wide caches (address parsing) as well as per-engine ones, so a
    "new client" measurement must never see an address that any earlier measurement used.
    On a MaxMind file, :meth:`new_networks` goes further: each address lies in a network no
    earlier address came from, so even a cache keyed by network misses every time.
    """

    def __init__(self, seed: int = SEED) -> None:
        self._rng = random.Random(seed)
        self._used: set[str] = set()
        self._pools: dict[tuple[int, int], list[tuple[int, int]]] = {}
        self._slices: dict[tuple[int, int], list[tuple[int, int]]] = {}

    def v4(self, count: int, found: Callable[[str], bool]) -> list[str]:
        """Distinct addresses ``found`` accepts (for the embedded default, which has no
        notion of networks)."""
        out: list[str] = []
        draw = self._rng.getrandbits
        while len(out) < count:
            value = draw(32)
            if any(low <= value < high for low, high in _SKIP_V4):
                continue
            text = _v4_text(value)
            if text in self._used or not found(text):
                continue
            self._used.add(text)
            out.append(text)
        return out

    def new_networks(self, count: int, reader: Any, version: int = 4) -> list[str]:
        """One address in each of ``count`` networks of ``reader`` (a maxminddb Reader) that
        have a country and that no earlier call used.

        Networks come from walking randomly chosen slices of the address space (/8s, or /16s
        of 2000::/3) network by network, four slices at a time, shuffled together: addresses
        that follow each other come from unrelated parts of the search tree.
        """
        bits = 32 if version == 4 else 128
        text_of = _v4_text if version == 4 else _v6_text
        out: list[str] = []
        for start, prefix in self.networks(count, reader, version):
            out.append(text_of(start + self._rng.randrange(1 << (bits - prefix))))
        self._used.update(out)
        return out

    def networks(self, count: int, reader: Any, version: int = 4) -> list[tuple[int, int]]:
        """(first address, prefix length) of ``count`` networks of ``reader`` with a country
        that no earlier call (of this method, :meth:`new_networks` or :meth:`clustered`)
        handed out, in the order described in :meth:`new_networks`."""
        pool = self._pools.setdefault((id(reader), version), [])
        slices = self._slices.setdefault((id(reader), version), self._slice_order(version))
        while len(pool) < count:
            if not slices:
                raise RuntimeError(
                    f"the database has too few IPv{version} networks for this run; use a "
                    "real-size one (the generated file, or a GeoIP2/GeoLite2 download)"
                )
            batch: list[tuple[int, int]] = []
            for _ in range(min(4, len(slices))):
                batch += _walk(reader, version, *slices.pop())
            self._rng.shuffle(batch)
            pool[:0] = batch  # handed out from the end: older networks first
        return [pool.pop() for _ in range(count)]

    def clustered(
        self,
        count: int,
        reader: Any,
        networks: int = CLUSTER_NETWORKS,
        exponent: float = CLUSTER_EXPONENT,
    ) -> tuple[list[str], int]:
        """``count`` IPv4 addresses never handed out before, clustered in networks as real
        traffic is; and how many distinct networks they fall in.

        ``networks`` networks of ``reader`` that no earlier call used (taken as
        :meth:`networks` takes them: scattered over the address space) are ranked in the
        order drawn, and the k-th gets weight 1 / k ** ``exponent`` (Zipf-like: a few
        networks send most clients, most send one or two, some none). Each client picks its
        network independently with those weights (so consecutive clients are interleaved
        across networks), then a host in it uniformly among the hosts not handed out yet;
        a network with half of its hosts handed out is drawn again. With the defaults, 500
        clients fall in about 130 networks: about a quarter of them are the first client of
        their network, the others a new host in a network seen before.
        """
        chosen = self.networks(networks, reader, 4)
        cumulative: list[float] = []
        total = 0.0
        for rank in range(1, len(chosen) + 1):
            total += 1 / rank**exponent
            cumulative.append(total)
        indices = range(len(chosen))
        hosts: list[set[int]] = [set() for _ in chosen]
        out: list[str] = []
        while len(out) < count:
            index = self._rng.choices(indices, cum_weights=cumulative)[0]
            start, prefix = chosen[index]
            size = 1 << (32 - prefix)
            if len(hosts[index]) >= size // 2:
                continue
            offset = self._rng.randrange(size)
            text = _v4_text(start + offset)
            if offset in hosts[index] or text in self._used:
                continue
            hosts[index].add(offset)
            self._used.add(text)
            out.append(text)
        return out, sum(1 for taken in hosts if taken)

    def _slice_order(self, version: int) -> list[tuple[int, int]]:
        if version == 4:
            slices = [(first << 24, (first + 1) << 24) for first in range(1, 224)]
        else:
            low, high = _GLOBAL_V6
            slices = [(start, start + (1 << 112)) for start in range(low, high, 1 << 112)]
        self._rng.shuffle(slices)
        return slices

    def v4_stream(self) -> Iterator[str]:
        """Distinct public IPv4 addresses without a database check (for the memory test)."""
        value = 0x01000000
        step = 0x9E3779B1  # odd: walks every address once modulo 2**32
        while True:
            value = (value + step) & 0xFFFFFFFF
            if any(low <= value < high for low, high in _SKIP_V4):
                continue
            text = _v4_text(value)
            if text not in self._used:
                yield text


def _walk(reader: Any, version: int, low: int, high: int) -> list[tuple[int, int]]:
    """(start, prefix) of every network with a country in [low, high), special ranges
    skipped: one lookup per network (or per empty stretch, whose prefix says how big it is)."""
    bits, skip, text_of = (32, _SKIP_V4, _v4_text) if version == 4 else (128, _SKIP_V6, _v6_text)
    found: list[tuple[int, int]] = []
    value = low
    while value < high:
        jump = next((end for start, end in skip if start <= value < end), None)
        if jump is not None:
            value = jump
            continue
        record, prefix = reader.get_with_prefix_len(text_of(value))
        size = 1 << (bits - prefix)
        start = value - value % size
        if isinstance(record, dict) and "country" in record:
            found.append((start, prefix))
        value = start + size
    return found


def _v4_text(value: int) -> str:
    return f"{value >> 24}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}"


def _v6_text(value: int) -> str:
    return str(IPv6Address(value))  # canonical, as servers pass the peer on

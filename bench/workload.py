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

from geofence.example import example_policy

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
    ``found`` keeps only addresses the database knows, as for real traffic.
    """

    def __init__(self, seed: int = SEED) -> None:
        self._rng = random.Random(seed)
        self._used: set[str] = set()

    def v4(self, count: int, found: Callable[[str], bool]) -> list[str]:
        out: list[str] = []
        draw = self._rng.getrandbits
        while len(out) < count:
            value = draw(32)
            if any(low <= value < high for low, high in _SKIP_V4):
                continue
            text = f"{value >> 24}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}"
            if text in self._used or not found(text):
                continue
            self._used.add(text)
            out.append(text)
        return out

    def v6(self, count: int, found: Callable[[str], bool]) -> list[str]:
        """Addresses in a few hundred known /48s, differing in their low 80 bits."""
        prefixes: list[int] = []
        draw = self._rng.getrandbits
        blocks = (0x2400, 0x2600, 0x2800, 0x2A00, 0x2C00)
        while len(prefixes) < 200:
            top = (self._rng.choice(blocks) << 32) | draw(36)  # a /48
            if found(_v6_text(top << 80)):
                prefixes.append(top)
        out: list[str] = []
        while len(out) < count:
            text = _v6_text((self._rng.choice(prefixes) << 80) | draw(80))
            if text not in self._used:
                self._used.add(text)
                out.append(text)
        return out

    def v4_stream(self) -> Iterator[str]:
        """Distinct public IPv4 addresses without a database check (for the memory test)."""
        value = 0x01000000
        step = 0x9E3779B1  # odd: walks every address once modulo 2**32
        while True:
            value = (value + step) & 0xFFFFFFFF
            if any(low <= value < high for low, high in _SKIP_V4):
                continue
            text = f"{value >> 24}.{value >> 16 & 255}.{value >> 8 & 255}.{value & 255}"
            if text not in self._used:
                yield text


def _v6_text(value: int) -> str:
    return str(IPv6Address(value))  # canonical, as servers pass the peer on

"""Decisions behind a trusted proxy are cached per (peer, header line) (issue 15): a repeated
client is found without walking its X-Forwarded-For line, by decide() and by cached(), and the
cache never changes what a request gets."""

from __future__ import annotations

import random
from typing import Any

import pytest
from tests_support import CITY_DB

import geofence
from geofence import Engine, RequestInfo

CN, GB, US = "175.16.199.1", "81.2.69.142", "216.160.83.56"
PROXY, OTHER_PROXY, OUTSIDER = "10.0.0.1", "10.9.9.9", "89.160.20.112"
RULES = [
    {"name": "cn", "action": "block", "regions": ["CN"]},
    {"name": "gb", "action": "warn", "regions": ["GB"]},
]


def engine(**client_ip: Any) -> Engine:
    return Engine.from_config(
        {
            "rules": RULES,
            "geoip": {"country_db": CITY_DB},
            "client_ip": client_ip or {"trusted_proxies": ["10.0.0.0/8"]},
        }
    )


def request(peer: str | None, *lines: str, path: str = "/v1/x") -> RequestInfo:
    return RequestInfo(peer=peer, headers=[("X-Forwarded-For", line) for line in lines], path=path)


def test_the_client_header_is_offered_only_when_it_matters() -> None:
    assert engine().client_header == "x-forwarded-for"
    assert engine(hops=1).client_header == "x-forwarded-for"
    assert engine(trusted_proxies=["10.0.0.0/8"], header="X-Real-IP").client_header == "x-real-ip"
    direct = Engine.from_config({"rules": RULES, "geoip": {"country_db": CITY_DB}})
    assert direct.client_header is None


def test_cached_finds_a_repeated_client_behind_a_proxy_by_its_line() -> None:
    e = engine()
    assert e.cached(PROXY, "GET", "/v1/x", forwarded=US) is None  # never decided yet
    first = e.answer(request(PROXY, US))
    assert first.decision.client_ip == US and first.decision.country == "US"
    assert e.cached(PROXY, "GET", "/v1/x", forwarded=US) is first
    # Another line, another proxy, another path: not this decision.
    assert e.cached(PROXY, "GET", "/v1/x", forwarded=f"{US}, 10.0.0.2") is None
    assert e.cached(OTHER_PROXY, "GET", "/v1/x", forwarded=US) is None
    assert e.cached(PROXY, "GET", "/v1/y", forwarded=US) is None
    # Without the line, the proxy's own key holds nothing.
    assert e.cached(PROXY, "GET", "/v1/x") is None


def test_blocks_and_warns_behind_a_proxy_are_never_answered_by_cached() -> None:
    e = engine()
    assert e.decide(request(PROXY, CN)).action == "block"
    assert e.decide(request(PROXY, GB)).action == "warn"
    assert e.cached(PROXY, "GET", "/v1/x", forwarded=CN) is None
    assert e.cached(PROXY, "GET", "/v1/x", forwarded=GB) is None
    # Decided again from the cache: still a block and a warn.
    assert e.decide(request(PROXY, CN)).rule == "cn"
    assert e.decide(request(PROXY, GB)).rule == "gb"


def test_a_peer_that_is_no_proxy_is_the_client_whatever_its_line_says() -> None:
    e = engine()
    # An outsider forging X-Forwarded-For: the decision is its own (SE), not the forged one.
    decision = e.decide(request(OUTSIDER, CN))
    assert (decision.client_ip, decision.action) == (OUTSIDER, "allow")
    answer = e.cached(OUTSIDER, "GET", "/v1/x", forwarded=CN)
    assert answer is not None and answer.decision.client_ip == OUTSIDER
    assert e.cached(OUTSIDER, "GET", "/v1/x", forwarded=US) is answer  # any line


def test_a_direct_engine_ignores_the_line() -> None:
    e = Engine.from_config({"rules": RULES, "geoip": {"country_db": CITY_DB}})
    e.decide(request(US, CN))
    answer = e.cached(US, "GET", "/v1/x", forwarded=CN)
    assert answer is not None and answer.decision.client_ip == US


def test_two_lines_are_walked_together_and_not_cached_by_line() -> None:
    e = engine()
    decision = e.decide(request(PROXY, CN, "10.0.0.5"))
    assert decision.client_ip == CN  # the chain is "CN, 10.0.0.5": the first untrusted entry
    assert e.cached(PROXY, "GET", "/v1/x", forwarded="10.0.0.5") is None


def test_a_long_line_is_decided_but_not_a_cache_key() -> None:
    e = engine()
    line = ", ".join(["10.0.0.7"] * 40) + f", {US}"  # over 256 characters
    assert len(line) > 256
    assert e.decide(request(PROXY, line)).client_ip == US
    assert e.cached(PROXY, "GET", "/v1/x", forwarded=line) is None


_LINES = [
    US,
    CN,
    GB,
    f"{CN}, {PROXY}",
    f"{US},{OTHER_PROXY}",
    "unknown",
    "",
    "999.1.1.1",
    f"[{'2001:218::1'}]:443",
    f"{US}, {CN}",
    " , ",
    "2001:218::1",
    "::ffff:175.16.199.1",
]
_PEERS = [PROXY, OTHER_PROXY, OUTSIDER, US, "10.0.0.1:80", None, "::1"]


def _key(decision: geofence.Decision) -> tuple[object, ...]:
    return decision._replace(ref=None)


@pytest.mark.parametrize("client_ip", [{"trusted_proxies": ["10.0.0.0/8"]}, {"hops": 2}])
@pytest.mark.parametrize("seed", [1, 2])
def test_caching_never_changes_a_decision(client_ip: dict[str, Any], seed: int) -> None:
    """Seeded: requests in random order (peers, zero to two lines, two paths) get from a
    long-lived engine exactly what a fresh engine, with nothing cached, gives them."""
    rng = random.Random(seed)
    long_lived = engine(**client_ip)
    for _ in range(600):
        peer = rng.choice(_PEERS)
        lines = rng.sample(_LINES, rng.choice((0, 1, 1, 1, 2)))
        path = rng.choice(("/v1/x", "/v1/y"))
        info = request(peer, *lines, path=path)
        expected = engine(**client_ip).decide(info)
        assert _key(long_lived.decide(info)) == _key(expected), (peer, lines)
        single = lines[0] if len(lines) == 1 else None
        if single is not None and peer is not None:
            cached = long_lived.cached(peer, "GET", path, forwarded=single)
            if cached is not None:
                assert _key(cached.decision) == _key(expected), (peer, lines)

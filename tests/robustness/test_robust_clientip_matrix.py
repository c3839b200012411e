"""The client-IP resolver against an independent oracle, over every chain of 1-3 token kinds.

For each header family and trust style (trusted_proxies CIDRs with trusted and untrusted peers;
hops = 1, 2, 3) every chain of up to three tokens from ``clientip_tokens.TOKENS`` is sent, on
one line and split over two, and the library's answer must equal ``clientip_oracle.resolve``.
Single-valued headers get every chain of one or two tokens: a second token already makes a
list, so a third adds nothing. Chains of three are sent once each per trust style, with the
peer and line split rotating, to keep the whole matrix to a few seconds.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest
from clientip_oracle import HEADERS, SINGLE_VALUED, OraclePolicy, resolve
from clientip_tokens import TOKENS, TRUSTED, Token
from tests_support import CITY_DB

import geofence
from geofence.clientip import ClientResolver
from geofence.policy import ClientIPPolicy

TRUSTED_PEERS = ("10.0.0.1", "2600:1f00::1", "::ffff:10.0.0.2")
UNTRUSTED_PEERS = ("89.160.20.112", "192.168.0.9")
HOPS_PEER = "10.0.0.1"
TRUSTS = ("cidr", "hops1", "hops2", "hops3")
# The total the matrix must reach; a change to the tokens or the loops must update it knowingly.
EXPECTED_CASES = 388_476


@dataclass(frozen=True)
class Case:
    kinds: tuple[str, ...]
    peer: str
    headers: tuple[tuple[str, str], ...]


def client_policy(header: str, trust: str) -> ClientIPPolicy:
    if trust == "cidr":
        return ClientIPPolicy(trusted_proxies=TRUSTED, header=header)
    return ClientIPPolicy(header=header, hops=int(trust.removeprefix("hops")))


def oracle_policy(header: str, trust: str) -> OraclePolicy:
    policy = client_policy(header, trust)
    return OraclePolicy(policy.trusted_proxies, policy.header, policy.hops)


def engine_config(header: str, trust: str) -> dict[str, Any]:
    client_ip: dict[str, Any] = {"header": header}
    if trust == "cidr":
        client_ip["trusted_proxies"] = [str(network) for network in TRUSTED]
    else:
        client_ip["hops"] = int(trust.removeprefix("hops"))
    return {
        "client_ip": client_ip,
        "geoip": {"country_db": CITY_DB, "reload_interval": 0},
        "rules": [{"name": "no-cn", "action": "block", "regions": ["CN"]}],
    }


def layouts(header: str, parts: list[str]) -> list[tuple[tuple[str, str], ...]]:
    """The chain on one line, and split over two lines at every possible place.

    Names are sent in varied case; a decoy from another header family must be ignored.
    """
    decoy_name = "X-Forwarded-For" if header != "x-forwarded-for" else "X-Real-IP"
    decoy = (decoy_name, "175.16.199.1")
    first, second = header.title(), header.upper()
    out = [(decoy, (first, ", ".join(parts)))]
    splits = range(1, len(parts)) if len(parts) > 1 else ([1] if header in SINGLE_VALUED else [])
    for at in splits:
        head, tail = parts[:at], parts[at:] or parts  # one token: the same line twice
        out.append(((first, ", ".join(head)), decoy, (second, ", ".join(tail))))
    return out


def spell(header: str, chain: tuple[Token, ...]) -> list[str]:
    return [t.fwd if header == "forwarded" else t.xff for t in chain]


def cases(header: str, trust: str) -> Iterator[Case]:
    longest = 2 if header in SINGLE_VALUED else 3
    for length in range(1, longest + 1):
        for index, chain in enumerate(itertools.product(TOKENS, repeat=length)):
            kinds = tuple(t.kind for t in chain)
            all_layouts = layouts(header, spell(header, chain))
            if length == 3:
                # Once per chain: the trusted peer and the split rotate over the chains.
                peer = TRUSTED_PEERS[index % 3] if trust == "cidr" else HOPS_PEER
                yield Case(kinds, peer, all_layouts[index % len(all_layouts)])
                continue
            peers = TRUSTED_PEERS + UNTRUSTED_PEERS if trust == "cidr" else (HOPS_PEER,)
            for peer in peers:
                for lines in all_layouts:
                    yield Case(kinds, peer, lines)


@cache
def all_cases(header: str, trust: str) -> tuple[Case, ...]:
    return tuple(cases(header, trust))


def describe(case: Case, expected: str | None, actual: str | None) -> str:
    return f"{case.kinds} peer={case.peer} headers={case.headers}: oracle {expected}, got {actual}"


# A single-valued header holds one address, so hops above 1 is a config error (tested below).
MATRIX = [
    (header, trust)
    for header in HEADERS
    for trust in TRUSTS
    if header not in SINGLE_VALUED or trust in {"cidr", "hops1"}
]


def test_matrix_size() -> None:
    total = sum(len(all_cases(header, trust)) for header, trust in MATRIX)
    assert total == EXPECTED_CASES


@pytest.mark.parametrize(("header", "trust"), MATRIX)
def test_resolver_matches_oracle(header: str, trust: str) -> None:
    resolver = ClientResolver(client_policy(header, trust))
    policy = oracle_policy(header, trust)
    wrong: list[str] = []
    resolved = 0
    for case in all_cases(header, trust):
        ip = resolver.resolve(case.peer, case.headers).ip
        actual = None if ip is None else ip.text
        expected = resolve(policy, case.peer, case.headers)
        resolved += expected is not None
        if actual != expected:
            wrong.append(describe(case, expected, actual))
    assert not wrong, f"{len(wrong)} mismatches, e.g.\n" + "\n".join(wrong[:20])
    # The matrix must exercise both outcomes, or it proves little.
    assert 0 < resolved < len(all_cases(header, trust))


@pytest.mark.parametrize(("header", "trust"), MATRIX)
def test_engine_matches_oracle(header: str, trust: str) -> None:
    """End to end through Engine.decide, on the one- and two-token chains."""
    engine = geofence.Engine.from_config(engine_config(header, trust))
    policy = oracle_policy(header, trust)
    wrong: list[str] = []
    for case in all_cases(header, trust):
        if len(case.kinds) == 3:
            continue
        decision = engine.decide(geofence.RequestInfo(peer=case.peer, headers=case.headers))
        expected = resolve(policy, case.peer, case.headers)
        unresolved = decision.reason == "unresolved_client"
        if decision.client_ip != expected or unresolved != (expected is None):
            wrong.append(describe(case, expected, f"{decision.client_ip} ({decision.reason})"))
    assert not wrong, f"{len(wrong)} mismatches, e.g.\n" + "\n".join(wrong[:20])


@pytest.mark.parametrize("header", sorted(SINGLE_VALUED))
@pytest.mark.parametrize("hops", [2, 3])
def test_hops_above_one_with_single_valued_header_is_config_error(header: str, hops: int) -> None:
    with pytest.raises(geofence.ConfigError, match=r"client_ip\.hops"):
        geofence.Engine.from_config(engine_config(header, f"hops{hops}"))


def test_untrusted_peer_header_is_never_read() -> None:
    """Whatever the header says, an untrusted peer is the client (or unresolved if unusable)."""
    for header in HEADERS:
        resolver = ClientResolver(client_policy(header, "cidr"))
        for case in all_cases(header, "cidr"):
            if case.peer in UNTRUSTED_PEERS:
                ip = resolver.resolve(case.peer, case.headers).ip
                assert ip is not None
                assert ip.text == str(ipaddress.ip_address(case.peer))

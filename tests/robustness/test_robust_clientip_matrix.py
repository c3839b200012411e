"""The client-IP resolver against an independent oracle, over every chain of 1-3 token kinds.

Header families: all six. Trust styles: trusted_proxies CIDRs (one IPv4, one IPv6) with three
trusted and two untrusted peers, and hops = 1, 2, 3 (single-valued headers: hops = 1 only,
larger is a config error). Every chain of one or two of the 31 tokens in
``clientip_tokens.TOKENS`` goes through every combination of these, on one line and split over
two lines at every place, and the library's answer must equal ``clientip_oracle.resolve``.
Every chain of three (multi-valued headers only: for single-valued ones a second token already
makes a list) goes once through CIDR trust and once through one hops value, with the trusted
peer, the hops value and the line split rotating over the chains, which keeps the matrix to
a few seconds. Engine.decide is checked end to end on the one- and two-token chains.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest
from clientip_oracle import HEADERS, SINGLE_VALUED, OraclePolicy, resolve
from clientip_tokens import TOKENS, TRUSTED
from tests_support import CITY_DB

import geofence
from geofence.clientip import ClientResolver
from geofence.config import ClientIPPolicy

TRUSTED_PEERS = ("10.0.0.1", "2600:1f00::1", "::ffff:10.0.0.2")
UNTRUSTED_PEERS = ("89.160.20.112", "192.168.0.9")
HOPS_PEER = "10.0.0.1"
TRUSTS = ("cidr", "hops1", "hops2", "hops3")
# The total the matrix must reach; a change to the tokens or the loops must update it knowingly.
EXPECTED_CASES = 198_028


# (indexes into TOKENS, peer, header lines)
Case = tuple[tuple[int, ...], str, tuple[tuple[str, str], ...]]


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


def layout(header: str, parts: list[str], split: int) -> tuple[tuple[str, str], ...]:
    """The chain on one line (split 0) or split over two lines before ``parts[split]``.

    Names are sent in varied case, and a decoy from another header family (which must be
    ignored) sits between the two lines. A single token "split" is the same line twice.
    """
    decoy = ("X-Forwarded-For" if header != "x-forwarded-for" else "X-Real-IP", "175.16.199.1")
    if split == 0:
        return (decoy, (header.title(), ", ".join(parts)))
    head, tail = parts[:split], parts[split:] or parts
    return ((header.title(), ", ".join(head)), decoy, (header.upper(), ", ".join(tail)))


def splits(header: str, length: int) -> range:
    if length == 1:
        return range(2 if header in SINGLE_VALUED else 1)
    return range(length)


def cases(header: str, trust: str) -> Iterator[Case]:
    spelled = [t.fwd if header == "forwarded" else t.xff for t in TOKENS]
    for length in range(1, 3 if header in SINGLE_VALUED else 4):
        chains = itertools.product(range(len(TOKENS)), repeat=length)
        for index, chain in enumerate(chains):
            parts = [spelled[i] for i in chain]
            if length == 3:
                # Each chain of three goes once through CIDR trust and once through one of the
                # hops values; the trusted peer and the line split rotate over the chains.
                if trust != "cidr" and index % 3 != int(trust[-1]) - 1:
                    continue
                peer = TRUSTED_PEERS[index % 3] if trust == "cidr" else HOPS_PEER
                yield chain, peer, layout(header, parts, index % 3)
                continue
            lines = [layout(header, parts, split) for split in splits(header, length)]
            for peer in TRUSTED_PEERS + UNTRUSTED_PEERS if trust == "cidr" else (HOPS_PEER,):
                for headers in lines:
                    yield chain, peer, headers


@cache
def all_cases(header: str, trust: str) -> tuple[Case, ...]:
    return tuple(cases(header, trust))


def describe(case: Case, expected: str | None, actual: str | None) -> str:
    chain, peer, headers = case
    kinds = [TOKENS[i].kind for i in chain]
    return f"{kinds} peer={peer} headers={headers}: oracle {expected}, got {actual}"


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
        _, peer, headers = case
        ip = resolver.resolve(peer, headers).ip
        actual = None if ip is None else ip.text
        expected = resolve(policy, peer, headers)
        resolved += expected is not None
        if actual != expected:
            wrong.append(describe(case, expected, actual))
        elif peer in UNTRUSTED_PEERS:
            # Independent of the oracle: an untrusted peer's header is never read.
            assert actual == str(ipaddress.ip_address(peer)), describe(case, peer, actual)
    assert not wrong, f"{len(wrong)} mismatches, e.g.\n" + "\n".join(wrong[:20])
    # The matrix must exercise both outcomes, or it proves little.
    assert 0 < resolved < len(all_cases(header, trust))


@pytest.mark.parametrize(("header", "trust"), MATRIX)
def test_engine_matches_oracle(header: str, trust: str) -> None:
    """End to end through Engine.decide: chains of one and two tokens, one peer of each kind."""
    engine = geofence.Engine.from_config(engine_config(header, trust))
    policy = oracle_policy(header, trust)
    wrong: list[str] = []
    for case in all_cases(header, trust):
        chain, peer, headers = case
        if len(chain) == 3 or peer not in {HOPS_PEER, UNTRUSTED_PEERS[0]}:
            continue
        decision = engine.decide(geofence.RequestInfo(peer=peer, headers=headers))
        expected = resolve(policy, peer, headers)
        unresolved = decision.reason == "unresolved_client"
        if decision.client_ip != expected or unresolved != (expected is None):
            wrong.append(describe(case, expected, f"{decision.client_ip} ({decision.reason})"))
    assert not wrong, f"{len(wrong)} mismatches, e.g.\n" + "\n".join(wrong[:20])


@pytest.mark.parametrize("header", sorted(SINGLE_VALUED))
@pytest.mark.parametrize("hops", [2, 3])
def test_hops_above_one_with_single_valued_header_is_config_error(header: str, hops: int) -> None:
    with pytest.raises(geofence.ConfigError, match=r"client_ip\.hops"):
        geofence.Engine.from_config(engine_config(header, f"hops{hops}"))

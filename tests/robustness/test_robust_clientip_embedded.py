"""IPv4 embedded in IPv6 (mapped, 6to4, NAT64, Teredo) counts as that IPv4 address.

So a rule or exemption written for IPv4 can neither be bypassed nor widened through them: the
policy blocks 175.16.199.1's country (CN) and exempts 81.2.69.0/24. Every IPv6 spelling that
embeds 175.16.199.1 is blocked, every one that embeds 81.2.69.142 is exempt, and spellings that
embed something else (or merely contain those bits outside the embedded field) are not exempt.
Likewise trusted_proxies given as an IPv4 CIDR trusts the embedded forms of those proxies and
nothing more.
"""

from __future__ import annotations

import ipaddress
from functools import cache

import pytest
from clientip_oracle import OraclePolicy, resolve
from clientip_tokens import forwarded_element, nat64, six_to_four, teredo
from tests_support import CITY_DB

import geofence

BLOCKED = "175.16.199.1"  # CN in the City test database
EXEMPT = "81.2.69.142"  # GB, inside the exempt 81.2.69.0/24
EXEMPT_NETS = {"v4": ["81.2.69.0/24"], "mapped": ["::ffff:81.2.69.0/120"]}


def embeddings(v4: str) -> list[str]:
    """IPv6 spellings whose embedded IPv4 address (per DESIGN.md) is ``v4``."""
    value = int(ipaddress.IPv4Address(v4))
    high, low = divmod(value, 1 << 16)
    mapped = ipaddress.IPv6Address(f"::ffff:{v4}")
    six = six_to_four(v4, 0)
    out = [
        f"::ffff:{v4}",
        f"::ffff:{high:x}:{low:x}",
        f"::FFFF:{high:X}:{low:X}",
        f"0:0:0:0:0:ffff:{v4}",
        mapped.exploded,
        six,
        six_to_four(v4, 1),
        six_to_four(v4, (0x1234 << 64) | 0xABCD),  # a subnet id and an interface id
        six_to_four(v4, (1 << 80) - 1),
        ipaddress.IPv6Address(six).exploded.upper(),
        nat64(v4),
        f"64:ff9b::{v4}",
        f"64:FF9B:0:0:0:0:{high:X}:{low:X}",
        ipaddress.IPv6Address(nat64(v4)).exploded,
        teredo(v4),
        teredo(v4, server=EXEMPT),
        teredo(v4, server=BLOCKED),
        teredo(v4, flags=0, port=1),
        teredo(v4, flags=0xFFFF, port=65535).upper(),
    ]
    assert len(set(out)) == len(out)
    return out


def in_headers(spelling: str) -> dict[str, list[tuple[str, str]]]:
    """The spelling as the client, behind a trusted hop, in three header families."""
    return {
        "x-forwarded-for": [("X-Forwarded-For", f"{spelling}, 10.0.0.5")],
        "forwarded": [("Forwarded", f"{forwarded_element(f'[{spelling}]:4711')}, for=10.0.0.5")],
        "x-real-ip": [("X-Real-IP", f"[{spelling}]:443")],
    }


@cache
def engine(exempt: str, header: str | None = None) -> geofence.Engine:
    config: dict[str, object] = {
        "geoip": {"country_db": CITY_DB, "reload_interval": 0},
        "rules": [{"name": "no-cn", "action": "block", "regions": ["CN"]}],
        "exempt": {"ips": EXEMPT_NETS[exempt]},
    }
    if header is not None:
        config["client_ip"] = {"trusted_proxies": ["10.0.0.0/8"], "header": header}
    return geofence.Engine.from_config(config)


def decisions(exempt: str, spelling: str) -> list[geofence.Decision]:
    """The decisions for the spelling as socket peer, and as client in each header family."""
    out = [engine(exempt).decide(geofence.RequestInfo(peer=spelling))]
    for header, headers in in_headers(spelling).items():
        request = geofence.RequestInfo(peer="10.0.0.1", headers=headers)
        out.append(engine(exempt, header).decide(request))
    return out


@pytest.mark.parametrize("exempt", sorted(EXEMPT_NETS))
@pytest.mark.parametrize("spelling", embeddings(BLOCKED))
def test_blocked_ipv4_cannot_hide_in_ipv6(exempt: str, spelling: str) -> None:
    for decision in decisions(exempt, spelling):
        assert (decision.action, decision.reason, decision.rule) == ("block", "rule", "no-cn")
        assert (decision.client_ip, decision.country) == (BLOCKED, "CN")


@pytest.mark.parametrize("exempt", sorted(EXEMPT_NETS))
@pytest.mark.parametrize("spelling", embeddings(EXEMPT))
def test_exempt_ipv4_is_exempt_in_every_spelling(exempt: str, spelling: str) -> None:
    for decision in decisions(exempt, spelling):
        assert (decision.action, decision.reason) == ("allow", "exempt_ip")
        assert decision.client_ip == EXEMPT


# (spelling, the client IP it must resolve to, the reason it must get) -- never exempt_ip
NOT_EXEMPT = [
    # The neighbouring network (not in the test database) and a known Swedish address.
    (six_to_four("81.2.70.1"), "81.2.70.1", "not_found"),
    ("::ffff:81.2.70.1", "81.2.70.1", "not_found"),
    (nat64("81.2.70.1"), "81.2.70.1", "not_found"),
    (six_to_four("89.160.20.112"), "89.160.20.112", "default"),
    (nat64("89.160.20.112"), "89.160.20.112", "default"),
    # Teredo's server field is not the client: an exempt server exempts nobody...
    (teredo("89.160.20.112", server=EXEMPT), "89.160.20.112", "default"),
    # ...and does not rescue a blocked client.
    (teredo(BLOCKED, server=EXEMPT), BLOCKED, "rule"),
    # The client field is stored inverted: the raw bits of 81.2.69.142 decode to another host.
    ("2001:0:4136:e378:8000:63bf:5102:458e", "174.253.186.113", "not_found"),
    # The exempt address's bits outside the embedded field do not count.
    (six_to_four(BLOCKED, int(ipaddress.IPv4Address(EXEMPT))), BLOCKED, "rule"),
    ("2002::5102:458e", None, "unresolved_client"),  # 6to4 of 0.0.0.0: unspecified
    # Lookalike prefixes are not embeddings.
    ("::81.2.69.142", None, "unresolved_client"),  # IPv4-compatible
    ("::ffff:0:5102:458e", "::ffff:0:5102:458e", "not_found"),  # IPv4-translated (SIIT)
    ("64:ff9b:1::5102:458e", "64:ff9b:1::5102:458e", "not_found"),  # local-use NAT64 /48
    ("64:ff9a::5102:458e", "64:ff9a::5102:458e", "not_found"),
    ("2003:5102:458e::", "2003:5102:458e::", "not_found"),
    ("fe80::5102:458e", "fe80::5102:458e", "private"),
    ("2001:db8::5102:458e", "2001:db8::5102:458e", "private"),
]


@pytest.mark.parametrize("exempt", sorted(EXEMPT_NETS))
@pytest.mark.parametrize(("spelling", "client_ip", "reason"), NOT_EXEMPT)
def test_exemption_is_not_widened(
    exempt: str, spelling: str, client_ip: str | None, reason: str
) -> None:
    for decision in decisions(exempt, spelling):
        assert (decision.client_ip, decision.reason) == (client_ip, reason)
        assert decision.action == ("block" if reason == "rule" else "allow")


PROXY = "10.1.2.3"
# Peers that are the proxy 10.1.2.3 in another spelling: trusted by "10.0.0.0/8".
TRUSTED_PEERS = [
    PROXY,
    *embeddings(PROXY),
]
# Peers that are not in 10.0.0.0/8 (though 10.1.2.3's bits may appear in them): not trusted.
UNTRUSTED_PEERS = [
    "::10.1.2.3",  # IPv4-compatible
    "::ffff:0:a01:203",
    "64:ff9b:1::a01:203",
    "fe80::a01:203",
    "2001:db8::a01:203",
    six_to_four("11.1.2.3"),
    six_to_four("11.1.2.3", int(ipaddress.IPv4Address(PROXY))),
    nat64("11.1.2.3"),
    teredo("89.160.20.112", server=PROXY),
    "10.1.2.3.4",
    "[10.1.2.3]",
]
TRUST = {"v4": ["10.0.0.0/8"], "mapped": ["::ffff:10.0.0.0/104"]}


@cache
def proxy_engine(trust: str) -> geofence.Engine:
    return geofence.Engine.from_config(
        {
            "client_ip": {"trusted_proxies": TRUST[trust]},
            "geoip": {"country_db": CITY_DB, "reload_interval": 0},
            "rules": [{"name": "no-cn", "action": "block", "regions": ["CN"]}],
        }
    )


def forwarded_for(peer: str, trust: str) -> geofence.Decision:
    request = geofence.RequestInfo(peer=peer, headers=[("X-Forwarded-For", BLOCKED)])
    return proxy_engine(trust).decide(request)


@pytest.mark.parametrize("trust", sorted(TRUST))
@pytest.mark.parametrize("peer", TRUSTED_PEERS)
def test_ipv4_trusted_proxies_trust_embedded_forms(trust: str, peer: str) -> None:
    decision = forwarded_for(peer, trust)
    assert (decision.action, decision.client_ip, decision.country) == ("block", BLOCKED, "CN")


@pytest.mark.parametrize("trust", sorted(TRUST))
@pytest.mark.parametrize("peer", UNTRUSTED_PEERS)
def test_ipv4_trusted_proxies_trust_nothing_more(trust: str, peer: str) -> None:
    decision = forwarded_for(peer, trust)
    # The header was ignored: the client is the peer itself, by the oracle's reading.
    oracle = OraclePolicy(trusted_proxies=(ipaddress.IPv4Network("10.0.0.0/8"),))
    expected = resolve(oracle, peer, [])
    assert decision.client_ip == expected != BLOCKED
    assert decision.action == "allow"

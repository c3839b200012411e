"""Client-IP resolution: a table of small cases, formatting invariance, bounds and a fuzz.

Policies used throughout: no proxies (the default), trusted proxies 10.0.0.0/8 and fd00::/8,
and fixed hop counts.
"""

from __future__ import annotations

import ipaddress
import random
import tracemalloc
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from geofence.clientip import (
    FORWARDING_HEADERS,
    HEADER_NAMES,
    IP,
    MAX_HOPS,
    SINGLE_VALUED_HEADERS,
    ClientIP,
    ClientResolver,
    ForwardingHeader,
    forwarding_header,
    parse_ip,
)
from geofence.clientip import _resolver as clientip  # for its cache size only
from geofence.config import ClientIPPolicy

TRUSTED = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))
SINGLE = ("x-real-ip", "cf-connecting-ip", "true-client-ip", "fastly-client-ip")
XFF = "X-Forwarded-For"
PROXY = "10.0.0.1"
CLIENT = "81.2.69.142"  # GB in the MaxMind test data
CLIENT6 = "2a02:d0c0::1"  # RU


def none() -> ClientIPPolicy:
    return ClientIPPolicy()


def trust(header: str = "x-forwarded-for") -> ClientIPPolicy:
    return ClientIPPolicy(trusted_proxies=TRUSTED, header=header)


def hops(n: int, header: str = "x-forwarded-for") -> ClientIPPolicy:
    return ClientIPPolicy(hops=n, header=header)


Headers = Sequence[tuple[str, str]]


@dataclass(frozen=True)
class Case:
    name: str
    policy: ClientIPPolicy
    peer: str | None
    headers: Headers
    expect: str | None  # canonical client text, or None for unresolved_client
    detail: str | None = None  # a part of the detail that must appear

    def __str__(self) -> str:
        return self.name


def xff(*values: str) -> list[tuple[str, str]]:
    return [(XFF, v) for v in values]


def fwd(*values: str) -> list[tuple[str, str]]:
    return [("Forwarded", v) for v in values]


CASES = [
    # -- default: the socket peer, headers ignored ------------------------------------------
    Case("peer", none(), CLIENT, [], CLIENT, "socket peer (no trusted proxies configured)"),
    Case("peer ignores xff", none(), CLIENT, xff("1.2.3.4"), CLIENT),
    Case("peer ignores forwarded", none(), CLIENT, fwd("for=1.2.3.4"), CLIENT),
    Case("peer ignores x-real-ip", none(), CLIENT, [("X-Real-IP", "1.2.3.4")], CLIENT),
    Case("peer v6", none(), CLIENT6, [], CLIENT6),
    Case("peer v6 upper case", none(), "2A02:D0C0::1", [], CLIENT6),
    Case("peer mapped", none(), "::ffff:81.2.69.142", [], CLIENT),
    Case("peer 6to4", none(), "2002:5102:458e::1", [], CLIENT),
    Case("peer zone id stripped", none(), "fe80::1%eth0", [], "fe80::1"),
    Case("peer brackets", none(), f"[{CLIENT6}]", [], CLIENT6),
    Case("peer private", none(), "192.168.1.1", [], "192.168.1.1"),
    Case("peer none", none(), None, xff(CLIENT), None, "no socket peer address"),
    Case("peer garbage", none(), "garbage", [], None, "socket peer 'garbage' is not an IP"),
    Case("peer empty", none(), "", [], None),
    Case("peer leading zero", none(), "081.2.69.142", [], None),
    Case("peer hex", none(), "0x51.2.69.142", [], None),
    Case("peer integer", none(), "1359103374", [], None),
    Case("peer multicast", none(), "224.0.0.1", [], None, "224.0.0.1 is a multicast address"),
    Case("peer unspecified", none(), "0.0.0.0", [], None, "unspecified"),
    Case("peer unspecified v6", none(), "::", [], None, "unspecified"),
    Case("peer broadcast", none(), "255.255.255.255", [], None, "broadcast"),
    Case("peer ipv4-compatible", none(), "::81.2.69.142", [], None, "IPv4-compatible"),
    Case("peer v6 multicast", none(), "ff02::1", [], None, "multicast"),
    # -- trusted proxies: when the header is read ------------------------------------------
    Case("untrusted peer", trust(), CLIENT, xff("1.2.3.4"), CLIENT, "not a trusted proxy"),
    Case("untrusted peer forged chain", trust(), CLIENT, xff("1.2.3.4, 10.0.0.2"), CLIENT),
    Case("untrusted v6 peer", trust(), CLIENT6, xff("1.2.3.4"), CLIENT6),
    Case("trusted peer", trust(), PROXY, xff(CLIENT), CLIENT, "past 1 trusted proxy"),
    Case("trusted peer mapped", trust(), "::ffff:10.0.0.1", xff(CLIENT), CLIENT),
    Case("trusted peer 6to4", trust(), "2002:a00:1::", xff(CLIENT), CLIENT),
    Case("trusted peer v6", trust(), "fd00::1", xff(CLIENT), CLIENT),
    Case("trusted peer zone id", trust(), "fd00::1%eth0", xff(CLIENT), CLIENT),
    Case("trusted peer brackets", trust(), "[fd00::1]", xff(CLIENT), CLIENT),
    Case(
        "trusted peer, no header",
        trust(),
        PROXY,
        [("X-Real-IP", CLIENT)],
        None,
        "the trusted proxy 10.0.0.1 sent no x-forwarded-for header",
    ),
    Case("trusted peer, empty header", trust(), PROXY, xff(""), None, "empty"),
    Case("trusted peer, only commas", trust(), PROXY, xff(" , ,,\t"), None),
    Case("no peer, trusted mode", trust(), None, xff(CLIENT), None, "use client_ip.hops"),
    # -- the chain walk ----------------------------------------------------------------------
    Case(
        "walk past trusted",
        trust(),
        PROXY,
        xff(f"1.2.3.4, {CLIENT}, 10.0.0.2, 10.0.0.3"),
        CLIENT,
        "x-forwarded-for, first untrusted entry from the right, past 3 trusted proxies",
    ),
    Case("left is never read", trust(), PROXY, xff(f"garbage, {CLIENT}"), CLIENT),
    Case("left zone id never read", trust(), PROXY, xff(f"fe80::1%eth0, {CLIENT}"), CLIENT),
    Case("garbage where the client is", trust(), PROXY, xff(f"{CLIENT}, foo"), None, "'foo'"),
    Case("garbage after trusted", trust(), PROXY, xff(f"{CLIENT}, foo, 10.0.0.2"), None),
    Case(
        "every entry trusted",
        trust(),
        PROXY,
        xff("10.0.0.3, 10.0.0.2"),
        None,
        "every x-forwarded-for entry is a trusted proxy",
    ),
    Case("trusted v6 entries", trust(), PROXY, xff(f"{CLIENT6}, fd00::2, fd12::3"), CLIENT6),
    Case("mapped entry trusted", trust(), PROXY, xff(f"{CLIENT}, ::ffff:10.0.0.2"), CLIENT),
    Case("6to4 entry trusted", trust(), PROXY, xff(f"{CLIENT}, 2002:a00:2::1"), CLIENT),
    Case("nat64 entry trusted", trust(), PROXY, xff(f"{CLIENT}, 64:ff9b::10.0.0.2"), CLIENT),
    Case("empty elements skipped", trust(), PROXY, xff(f",{CLIENT},, ,10.0.0.2,\t,"), CLIENT),
    Case("private client", trust(), PROXY, xff("192.168.1.1"), "192.168.1.1"),
    Case("loopback client", trust(), PROXY, xff("127.0.0.1"), "127.0.0.1"),
    Case("multicast client", trust(), PROXY, xff("224.0.0.1"), None, "multicast"),
    Case("v6 multicast client", trust(), PROXY, xff("ff02::1"), None, "multicast"),
    Case("unspecified client", trust(), PROXY, xff("0.0.0.0"), None, "unspecified"),
    Case("unspecified v6 client", trust(), PROXY, xff("::"), None, "unspecified"),
    Case("broadcast client", trust(), PROXY, xff("255.255.255.255"), None, "broadcast"),
    Case("ipv4-compatible client", trust(), PROXY, xff("::81.2.69.142"), None, "compatible"),
    Case("mapped multicast client", trust(), PROXY, xff("::ffff:224.0.0.1"), None, "multicast"),
    Case(
        "31 trusted entries",
        trust(),
        PROXY,
        xff(", ".join([CLIENT] + ["10.0.0.2"] * (MAX_HOPS - 1))),
        CLIENT,
        f"past {MAX_HOPS} trusted proxies",
    ),
    Case(
        "32 trusted entries",
        trust(),
        PROXY,
        xff(", ".join([CLIENT] + ["10.0.0.2"] * MAX_HOPS)),
        None,
        f"more than {MAX_HOPS}",
    ),
    Case("many empty elements", trust(), PROXY, xff(CLIENT + "," * 200), None, "too long"),
    # -- repeated lines: joined in order, never first or last wins -------------------------------
    Case("two lines", trust(), PROXY, xff(CLIENT, "10.0.0.2"), CLIENT, "past 2"),
    Case("two lines, client last", trust(), PROXY, xff("10.0.0.2", CLIENT), CLIENT),
    Case("two lines, chain", trust(), PROXY, xff(f"1.2.3.4, {CLIENT}", "10.0.0.2"), CLIENT),
    Case(
        "names in any case",
        trust(),
        PROXY,
        [("x-forwarded-for", f"1.2.3.4, {CLIENT}"), ("X-FORWARDED-FOR", "10.0.0.2")],
        CLIENT,
    ),
    Case("empty line between", trust(), PROXY, xff(CLIENT, "", "10.0.0.2"), CLIENT),
    Case("garbage line last", trust(), PROXY, xff(CLIENT, "foo"), None),
    Case(
        "other headers between",
        trust(),
        PROXY,
        [(XFF, CLIENT), ("Accept", "*/*"), (XFF, "10.0.0.2"), ("X-Forwarded-Fox", "1.1.1.1")],
        CLIENT,
    ),
    # -- token forms --------------------------------------------------------------------------
    Case("port", trust(), PROXY, xff(f"{CLIENT}:4711"), CLIENT),
    Case("v6 brackets and port", trust(), PROXY, xff(f"[{CLIENT6}]:4711"), CLIENT6),
    Case("v6 brackets", trust(), PROXY, xff(f"[{CLIENT6}]"), CLIENT6),
    Case("v6 bare", trust(), PROXY, xff(CLIENT6), CLIENT6),
    Case("v6 upper case", trust(), PROXY, xff("2A02:D0C0::1"), CLIENT6),
    Case("quotes", trust(), PROXY, xff(f'"{CLIENT}"'), CLIENT),
    Case("quotes, brackets, port", trust(), PROXY, xff(f'"[{CLIENT6}]:80"'), CLIENT6),
    Case("tab around", trust(), PROXY, xff(f"\t{CLIENT} "), CLIENT),
    Case("empty port", trust(), PROXY, xff(f"{CLIENT}:"), None),
    Case("word port", trust(), PROXY, xff(f"{CLIENT}:http"), None),
    Case("port too big", trust(), PROXY, xff(f"{CLIENT}:65536"), None),
    Case("port too long", trust(), PROXY, xff(f"{CLIENT}:000080"), None),
    Case("port without colon", trust(), PROXY, xff(f"[{CLIENT6}]80"), None),
    Case("unclosed bracket", trust(), PROXY, xff(f"[{CLIENT6}"), None),
    Case("v4 in brackets", trust(), PROXY, xff(f"[{CLIENT}]"), None),
    Case("unbalanced quote", trust(), PROXY, xff(f'"{CLIENT}'), None),
    Case("lone quote", trust(), PROXY, xff('"'), None),
    Case("zone id", trust(), PROXY, xff("fe80::1%eth0"), None, "zone id"),
    Case("zone id in brackets", trust(), PROXY, xff("[fe80::1%eth0]:80"), None, "zone id"),
    Case("leading zero", trust(), PROXY, xff("081.2.69.142"), None),
    Case("octal", trust(), PROXY, xff("0121.02.0105.0216"), None),
    Case("hex", trust(), PROXY, xff("0x51.2.69.142"), None),
    Case("hex integer", trust(), PROXY, xff("0x5102458e"), None),
    Case("integer", trust(), PROXY, xff("1359103374"), None),
    Case("short", trust(), PROXY, xff("81.2.69"), None),
    Case("trailing dot", trust(), PROXY, xff("81.2.69.142."), None),
    Case("arabic-indic digits", trust(), PROXY, xff("٨١.2.69.142"), None),
    Case("fullwidth digits", trust(), PROXY, xff("８１.2.69.142"), None),
    Case("inner space", trust(), PROXY, xff("81.2. 69.142"), None),
    Case("sign", trust(), PROXY, xff("+81.2.69.142"), None),
    Case("unknown", trust(), PROXY, xff("unknown"), None),
    Case("hostname", trust(), PROXY, xff("example.com"), None),
    Case("non-breaking space", trust(), PROXY, xff(f"\u00a0{CLIENT}"), None),
    Case("newline", trust(), PROXY, xff(f"{CLIENT}\n"), None),
    Case("mapped client", trust(), PROXY, xff("::ffff:81.2.69.142"), CLIENT),
    Case("6to4 client", trust(), PROXY, xff("2002:5102:458e::1"), CLIENT),
    Case("nat64 client", trust(), PROXY, xff("64:ff9b::81.2.69.142"), CLIENT),
    Case("teredo client", trust(), PROXY, xff("2001:0:4136:e378:8000:63bf:aefd:ba71"), CLIENT),
    Case("very long element", trust(), PROXY, xff("1" * 5000), None),
    # -- hops ----------------------------------------------------------------------------------
    Case("hops=1", hops(1), PROXY, xff(f"1.2.3.4, {CLIENT}"), CLIENT, "(hops = 1)"),
    Case("hops=1 no peer", hops(1), None, xff(f"1.2.3.4, {CLIENT}"), CLIENT),
    Case("hops=1 garbage peer", hops(1), "garbage", xff(CLIENT), CLIENT),
    Case("hops=2", hops(2), None, xff(f"1.2.3.4, {CLIENT}, 5.6.7.8"), CLIENT, "entry 2"),
    Case("hops=2 two lines", hops(2), None, xff(f"1.2.3.4, {CLIENT}", "5.6.7.8"), CLIENT),
    Case("hops=2 empties", hops(2), None, xff(f"1.2.3.4,, {CLIENT} ,, 5.6.7.8,"), CLIENT),
    Case("hops=2 too few", hops(2), None, xff(CLIENT), None, "1 entry, fewer than hops = 2"),
    Case("hops=3 too few", hops(3), None, xff(f"{CLIENT}, 1.1.1.1"), None, "2 entries"),
    Case("hops=2 garbage client", hops(2), None, xff("foo, 5.6.7.8"), None),
    Case("hops=2 garbage proxy", hops(2), None, xff(f"{CLIENT}, foo"), None),
    Case("hops=1 no header", hops(1), None, [], None, "the proxy sent no x-forwarded-for"),
    Case("hops=1 private", hops(1), None, xff("10.1.2.3"), "10.1.2.3"),
    Case("hops=1 multicast", hops(1), None, xff("224.0.0.1"), None),
    Case("hops=1 left never read", hops(1), None, xff(f"foo,bar, {CLIENT}"), CLIENT),
    Case("hops=1 mapped", hops(1), None, xff("::ffff:81.2.69.142"), CLIENT),
    Case(
        "hops=32",
        hops(MAX_HOPS),
        None,
        xff(", ".join([CLIENT] + ["1.1.1.1"] * (MAX_HOPS - 1))),
        CLIENT,
    ),
    # -- RFC 7239 Forwarded ---------------------------------------------------------------------
    Case("fwd", trust("forwarded"), PROXY, fwd(f"for={CLIENT}"), CLIENT, "forwarded for="),
    Case("fwd ignored untrusted", trust("forwarded"), CLIENT, fwd("for=1.2.3.4"), CLIENT),
    Case("fwd names any case", trust("forwarded"), PROXY, fwd(f"For={CLIENT};PROTO=https"), CLIENT),
    Case(
        "fwd v6 quoted with port",
        trust("forwarded"),
        PROXY,
        fwd(f'for="[{CLIENT6}]:4711"'),
        CLIENT6,
    ),
    Case("fwd v6 quoted", trust("forwarded"), PROXY, fwd(f'for="[{CLIENT6}]"'), CLIENT6),
    Case("fwd v4 quoted port", trust("forwarded"), PROXY, fwd(f'for="{CLIENT}:80"'), CLIENT),
    Case("fwd obfuscated port", trust("forwarded"), PROXY, fwd(f'for="{CLIENT}:_p1"'), CLIENT),
    Case("fwd quoted-pair", trust("forwarded"), PROXY, fwd(f'for="\\{CLIENT}"'), CLIENT),
    Case(
        "fwd other params",
        trust("forwarded"),
        PROXY,
        fwd(f"for={CLIENT};proto=http;by=203.0.113.43;host=example.com"),
        CLIENT,
    ),
    Case(
        "fwd chain",
        trust("forwarded"),
        PROXY,
        fwd(f'for=1.2.3.4, for={CLIENT}, for=10.0.0.2, for="[fd00::3]:80"'),
        CLIENT,
        "past 3 trusted proxies",
    ),
    Case(
        "fwd quoted comma does not split",
        trust("forwarded"),
        PROXY,
        fwd(f'for={CLIENT};host="a,b;c=d", for=10.0.0.2'),
        CLIENT,
    ),
    Case(
        "fwd quoted value hiding an element",
        trust("forwarded"),
        PROXY,
        fwd(f'host="x, for={CLIENT}"'),
        None,
        "has no for=",
    ),
    Case(
        "fwd escaped quote inside",
        trust("forwarded"),
        PROXY,
        fwd(f'for={CLIENT};host="a\\",b", for=10.0.0.2'),
        CLIENT,
    ),
    Case(
        "fwd repeated lines",
        trust("forwarded"),
        PROXY,
        [("Forwarded", f"for={CLIENT}"), ("forwarded", "for=10.0.0.2")],
        CLIENT,
    ),
    Case("fwd unknown", trust("forwarded"), PROXY, fwd("for=unknown"), None, "for=unknown"),
    Case("fwd unknown quoted", trust("forwarded"), PROXY, fwd('for="unknown"'), None),
    Case("fwd obfuscated", trust("forwarded"), PROXY, fwd("for=_hidden"), None, "'_hidden'"),
    Case("fwd obfuscated quoted", trust("forwarded"), PROXY, fwd('for="_gazonk"'), None),
    Case("fwd no for", trust("forwarded"), PROXY, fwd("proto=https;by=10.0.0.1"), None, "no for="),
    Case("fwd no for at client", trust("forwarded"), PROXY, fwd("by=x, for=10.0.0.2"), None),
    Case("fwd empty for", trust("forwarded"), PROXY, fwd('for=""'), None),
    Case("fwd duplicate for", trust("forwarded"), PROXY, fwd(f"for={CLIENT};for=1.2.3.4"), None),
    Case(
        "fwd duplicate any case", trust("forwarded"), PROXY, fwd(f"for={CLIENT};FOR=1.2.3.4"), None
    ),
    Case("fwd unquoted v6", trust("forwarded"), PROXY, fwd(f"for=[{CLIENT6}]"), None, "malformed"),
    Case("fwd unquoted port", trust("forwarded"), PROXY, fwd(f"for={CLIENT}:80"), None),
    Case("fwd space around =", trust("forwarded"), PROXY, fwd(f"for = {CLIENT}"), None),
    Case("fwd ows around ;", trust("forwarded"), PROXY, fwd(f"for={CLIENT} ; proto=http"), CLIENT),
    Case("fwd empty pairs", trust("forwarded"), PROXY, fwd(f";for={CLIENT};;proto=http;"), CLIENT),
    Case("fwd empty elements", trust("forwarded"), PROXY, fwd(f", for={CLIENT}, ,"), CLIENT),
    Case("fwd unbalanced quote", trust("forwarded"), PROXY, fwd(f'for="{CLIENT}'), None),
    Case("fwd stray quote", trust("forwarded"), PROXY, fwd(f'for={CLIENT}"'), None),
    Case("fwd garbage", trust("forwarded"), PROXY, fwd("garbage"), None, "malformed"),
    Case("fwd left never read", trust("forwarded"), PROXY, fwd(f'"junk, for={CLIENT}'), CLIENT),
    Case("fwd zone id", trust("forwarded"), PROXY, fwd('for="[fe80::1%25eth0]"'), None),
    Case("fwd hex", trust("forwarded"), PROXY, fwd("for=0x51.2.69.142"), None),
    Case("fwd all trusted", trust("forwarded"), PROXY, fwd("for=10.0.0.3, for=10.0.0.2"), None),
    Case(
        "fwd trusted mapped",
        trust("forwarded"),
        PROXY,
        fwd(f'for={CLIENT}, for="[::ffff:10.0.0.2]"'),
        CLIENT,
    ),
    Case("fwd multicast", trust("forwarded"), PROXY, fwd("for=224.0.0.1"), None, "multicast"),
    Case("fwd no header", trust("forwarded"), PROXY, xff(CLIENT), None, "sent no forwarded"),
    Case("fwd hops=1", hops(1, "forwarded"), None, fwd(f"for=1.2.3.4, for={CLIENT}"), CLIENT),
    Case("fwd hops=2", hops(2, "forwarded"), None, fwd(f"for={CLIENT}, for=1.2.3.4"), CLIENT),
    Case(
        "fwd hops=2 unknown proxy",
        hops(2, "forwarded"),
        None,
        fwd(f"for={CLIENT}, for=unknown"),
        None,
    ),
    Case("fwd hops=2 too few", hops(2, "forwarded"), None, fwd(f"for={CLIENT}"), None),
    # -- single-valued headers -------------------------------------------------------------------
    *[
        case
        for header in SINGLE
        for case in (
            Case(f"{header}", trust(header), PROXY, [(header.upper(), CLIENT)], CLIENT, header),
            Case(f"{header} untrusted peer", trust(header), CLIENT, [(header, "1.2.3.4")], CLIENT),
            Case(f"{header} v6 port", trust(header), PROXY, [(header, f"[{CLIENT6}]:80")], CLIENT6),
            Case(f"{header} spaces", trust(header), PROXY, [(header, f"  {CLIENT} ")], CLIENT),
            Case(
                f"{header} list",
                trust(header),
                PROXY,
                [(header, f"{CLIENT}, 1.2.3.4")],
                None,
                "not one address",
            ),
            Case(f"{header} trailing comma", trust(header), PROXY, [(header, f"{CLIENT},")], None),
            Case(
                f"{header} two lines",
                trust(header),
                PROXY,
                [(header, CLIENT), (header.title(), CLIENT)],
                None,
                "2 ",
            ),
            Case(f"{header} empty", trust(header), PROXY, [(header, "")], None),
            Case(f"{header} garbage", trust(header), PROXY, [(header, "foo")], None),
            Case(f"{header} zone", trust(header), PROXY, [(header, "fe80::1%eth0")], None),
            Case(f"{header} trusted value", trust(header), PROXY, [(header, "10.9.9.9")], None),
            Case(f"{header} multicast", trust(header), PROXY, [(header, "224.0.0.1")], None),
            Case(f"{header} long", trust(header), PROXY, [(header, "1" * 1000)], None),
            Case(f"{header} missing", trust(header), PROXY, xff(CLIENT), None, "sent no"),
            Case(f"{header} hops=1", hops(1, header), None, [(header, CLIENT)], CLIENT),
            Case(f"{header} hops=1 list", hops(1, header), None, [(header, "1.1.1.1,")], None),
        )
    ],
]


@pytest.mark.parametrize("case", CASES, ids=str)
def test_case(case: Case) -> None:
    result = ClientResolver(case.policy).resolve(case.peer, case.headers)
    assert isinstance(result, ClientIP)
    assert (result.ip.text if result.ip else None) == case.expect, result.detail
    if case.detail is not None:
        assert case.detail in result.detail
    assert result.detail.startswith("unresolved: ") is (result.ip is None)
    # Asking again (now from the caches) gives the same answer.
    resolver = ClientResolver(case.policy)
    assert resolver.resolve(case.peer, case.headers) == resolver.resolve(case.peer, case.headers)
    assert resolver.resolve(case.peer, case.headers) == result


def test_every_header_family_is_covered() -> None:
    covered = {c.policy.header for c in CASES}
    assert covered == set(HEADER_NAMES)


# -- the forwarding-header table ---------------------------------------------------------------


def spell(row: ForwardingHeader, address: str) -> str:
    return f'for="{address}"' if row.syntax == "forwarded" else address


@pytest.mark.parametrize("row", FORWARDING_HEADERS, ids=lambda row: row.name)
def test_each_row_is_read_as_the_table_says(row: ForwardingHeader) -> None:
    assert forwarding_header(row.name.upper()) is row
    assert (row.name in SINGLE_VALUED_HEADERS) is not row.is_list
    resolver = ClientResolver(trust(row.name))
    one = resolver.resolve(PROXY, [(row.name.title(), spell(row, CLIENT))])
    assert one.ip == parse_ip(CLIENT), one.detail
    chain = f"{spell(row, '1.2.3.4')}, {spell(row, CLIENT)}, {spell(row, '10.0.0.2')}"
    listed = resolver.resolve(PROXY, [(row.name, chain)])
    assert listed.ip == (parse_ip(CLIENT) if row.is_list else None), listed.detail
    # The other syntax is malformed: a header's entries are spelled one way only.
    other = CLIENT if row.syntax == "forwarded" else f"for={CLIENT}"
    assert resolver.resolve(PROXY, [(row.name, other)]).ip is None


def test_a_header_outside_the_table_is_refused() -> None:
    with pytest.raises(ValueError, match="is not one of x-forwarded-for, forwarded"):
        ClientResolver(trust("x-forwarded-host"))
    with pytest.raises(KeyError):
        forwarding_header("x-forwarded-host")


# -- formatting invariance ---------------------------------------------------------------------

SPELLINGS = {
    CLIENT: [
        CLIENT,
        f"{CLIENT}:80",
        f'"{CLIENT}"',
        f'"{CLIENT}:4711"',
        "::ffff:81.2.69.142",
        "::FFFF:5102:458E",
        "[::ffff:81.2.69.142]:80",
        "0:0:0:0:0:ffff:81.2.69.142",
        "2002:5102:458e::",
        "64:ff9b::5102:458e",
        "2001::aefd:ba71",
    ],
    CLIENT6: [
        CLIENT6,
        "2A02:D0C0::1",
        "2a02:d0c0:0:0:0:0:0:1",
        "2a02:d0c0:0000:0000:0000:0000:0000:0001",
        f"[{CLIENT6}]",
        f"[{CLIENT6}]:443",
        "[2A02:D0C0::1]:443",
        f'"[{CLIENT6}]:443"',
        f'"{CLIENT6}"',
    ],
}


def _forwarded_value(spelling: str) -> str:
    inner = spelling.strip('"')
    if ":" in inner and not inner.startswith("[") and inner.count(":") > 1:
        inner = f"[{inner}]"
    return f'for="{inner}"'


@pytest.mark.parametrize("canonical", sorted(SPELLINGS))
def test_formatting_invariance(canonical: str) -> None:
    expected = parse_ip(canonical)
    assert expected is not None
    for spelling in SPELLINGS[canonical]:
        results = [
            ClientResolver(trust()).resolve(PROXY, xff(f"1.1.1.1, {spelling}, 10.0.0.2")),
            ClientResolver(hops(2)).resolve(None, xff(f"1.1.1.1, {spelling}, 10.0.0.2")),
            ClientResolver(trust("x-real-ip")).resolve(PROXY, [("x-real-ip", spelling)]),
            ClientResolver(trust("forwarded")).resolve(
                PROXY, fwd(f"for=1.1.1.1, {_forwarded_value(spelling)}, for=10.0.0.2")
            ),
        ]
        for result in results:
            assert result.ip == expected, (spelling, result.detail)


# -- bounded work ------------------------------------------------------------------------------


# Work is bounded by what is allocated, not by time (no timed assertions: the machine's load
# would decide them). Splitting, decoding or copying a megabyte-long header would allocate at
# least a megabyte; the resolver reads a bounded tail of the header and allocates a few KB.
BOUNDED_BYTES = 64 * 1024


def _peak_allocation(resolver: ClientResolver, headers: Headers) -> int:
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        resolver.resolve(PROXY, headers)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("header", ["x-forwarded-for", "forwarded"])
def test_huge_headers_cost_about_what_short_ones_do(header: str) -> None:
    resolver = ClientResolver(trust(header))
    entry = f"for={CLIENT}" if header == "forwarded" else CLIENT
    proxy = "for=10.0.0.2" if header == "forwarded" else "10.0.0.2"
    short = [(header, f"{entry}, {proxy}")]
    huge = [(header, '"a, b' * 200_000 + f", {entry}, {proxy}")]
    many_lines = [(header, "1.2.3.4")] * 5_000 + short
    assert resolver.resolve(PROXY, huge).ip == parse_ip(CLIENT)
    assert resolver.resolve(PROXY, many_lines).ip == parse_ip(CLIENT)
    assert _peak_allocation(resolver, huge) < BOUNDED_BYTES


@pytest.mark.parametrize(
    "value",
    [
        "1" * 1_000_000,
        "," * 1_000_000,
        " " * 1_000_000,
        '"' * 1_000_000,
        "\\" * 1_000_000 + '"',
        '"' + "\\" * 1_000_000 + '"',
        ", ".join(["10.0.0.2"] * 100_000),
        "1.2.3.4," + "10.0.0.2," * 100_000,
        ";" * 1_000_000,
        "for=" * 250_000,
    ],
    ids=lambda v: f"{v[:12]!r}x{len(v)}",
)
@pytest.mark.parametrize("header", ["x-forwarded-for", "forwarded", "x-real-ip"])
def test_huge_junk_is_unresolved(value: str, header: str) -> None:
    resolver = ClientResolver(trust(header))
    assert _peak_allocation(resolver, [(header, value)]) < BOUNDED_BYTES
    result = resolver.resolve(PROXY, [(header, value)])
    assert result.ip is None
    assert len(result.detail) < 200


def test_caches_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(clientip, "_CACHE_SIZE", 50)
    resolver = ClientResolver(trust())
    for n in range(500):
        resolver.resolve(f"81.2.{n // 256}.{n % 256}", [])
        resolver.resolve(PROXY, xff(f"1.2.{n // 256}.{n % 256}, junk{n}"))
        resolver.resolve(PROXY, xff(f"{n}" * 1000))
        assert len(resolver._peers) <= 50
        assert len(resolver._entries) <= 50
        assert len(resolver._lines) <= 50
    assert all(len(key) <= 128 for key in resolver._entries)
    assert all(len(key) <= 256 for key in resolver._lines)


# -- resolve never raises ----------------------------------------------------------------------

ODD_INPUTS: list[tuple[object, object]] = [
    (42, []),
    (["10.0.0.1"], []),
    (b"10.0.0.1", []),
    (PROXY, [(XFF, b"81.2.69.142")]),
    (PROXY, [(b"x-forwarded-for", CLIENT)]),
    (PROXY, [(XFF, None)]),
    (PROXY, [(XFF,)]),
    (PROXY, [None]),
    (PROXY, None),
    (PROXY, 5),
    (PROXY, [(XFF, "\udcff")]),
    (PROXY, [(XFF, "81.2.69.142\x00")]),
    ("\udcff", []),
    ("1.2.3.4\x00", []),
]


@pytest.mark.parametrize(("peer", "headers"), ODD_INPUTS)
@pytest.mark.parametrize(
    "policy", [none(), trust(), hops(1), trust("forwarded"), trust("x-real-ip")]
)
def test_odd_inputs_never_raise(peer: object, headers: object, policy: ClientIPPolicy) -> None:
    result = ClientResolver(policy).resolve(peer, headers)  # type: ignore[arg-type]
    assert isinstance(result, ClientIP)
    socket_peer = (
        PROXY if peer == PROXY and not policy.trusted_proxies and not policy.hops else None
    )
    assert result.ip is None or result.ip.text in (CLIENT, socket_peer), result


# -- seeded fuzz -------------------------------------------------------------------------------

FRAGMENTS = [
    "0",
    "1",
    "9",
    "10",
    "81",
    "255",
    "256",
    "01",
    "0x",
    "ff",
    "FFFF",
    "٣",
    "１",
    "²",
    ".",
    ".",
    ":",
    ":",
    "::",
    "[",
    "]",
    '"',
    '"',
    "%eth0",
    "%",
    ",",
    ",",
    ";",
    " ",
    "\t",
    "=",
    "for=",
    "For=",
    "by=",
    "proto=https",
    "unknown",
    "_hidden",
    "\\",
    "\x00",
    "\r\n",
    "\x1b[31m",
    "é",
    "\u202e",
    "::ffff:",
    "2002:",
    "64:ff9b::",
    "2001:0:",
    "fe80::1",
    "10.0.0.2",
    "10.0.0.2",
    CLIENT,
    CLIENT,
    CLIENT6,
    f"[{CLIENT6}]:80",
    f"{CLIENT}:80",
    "224.0.0.1",
    "0.0.0.0",
    "::1.2.3.4",
    "1.2.3.4",
    "fd00::5",
]


def _junk(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.01:
        return rng.choice(FRAGMENTS) * rng.randint(10_000, 200_000)
    parts = [rng.choice(FRAGMENTS) for _ in range(rng.randint(0, 14))]
    if roll < 0.4:  # list-shaped: mostly addresses, some junk
        parts = [
            rng.choice([CLIENT, CLIENT6, "10.0.0.2", "fd00::9", "1.2.3.4", "".join(parts[:3])])
            for _ in range(rng.randint(0, 6))
        ]
        return rng.choice([",", ", ", " ,", ",,"]).join(parts)
    return "".join(parts)


TRUSTED_NETS = TRUSTED


def _reference_token(token: str) -> IP | None:
    """An independent reading of one X-Forwarded-For element, on top of ipaddress."""
    if token.startswith('"') and token.endswith('"') and len(token) >= 2:
        token = token[1:-1]
    if token.startswith("["):
        address, sep, rest = token[1:].partition("]")
        if (
            not sep
            or (rest and not (rest[0] == ":" and rest[1:].isdecimal()))
            or ":" not in address
        ):
            return None
        port = rest[1:]
    elif token.count(":") == 1:
        address, _, port = token.partition(":")
        if not port:
            return None
    else:
        address, port = token, ""
    if port and not (port.isascii() and port.isdigit() and len(port) <= 5 and int(port) < 65536):
        return None
    if "%" in address or not address.isascii() or address != address.strip():
        return None
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(parsed, ipaddress.IPv6Address):
        value = int(parsed)
        v4 = parsed.ipv4_mapped or parsed.sixtofour or (parsed.teredo or (None, None))[1]
        if v4 is None and value >> 32 == 0x64FF9B << 64:
            v4 = ipaddress.IPv4Address(value & 0xFFFFFFFF)
        if v4 is not None:
            parsed = v4
    return IP(str(parsed), parsed.version, int(parsed))


def _reference_unusable(ip: IP) -> bool:
    address = ipaddress.ip_address(ip.text)
    return (
        address.is_multicast
        or address.is_unspecified
        or ip.text == "255.255.255.255"
        or (ip.version == 6 and ip.value < 2**32 and ip.value != 1)
    )


def _reference_xff(lines: list[str]) -> str | None:
    """First untrusted entry from the right of the joined lines (None: unresolved)."""
    entries = [e.strip(" \t") for e in ",".join(lines).split(",")]
    skipped = 0
    for entry in reversed([e for e in entries if e]):
        ip = _reference_token(entry)
        if ip is None:
            return None
        if any(ipaddress.ip_address(ip.text) in n for n in TRUSTED_NETS):
            skipped += 1
            if skipped >= MAX_HOPS:
                return None
            continue
        return None if _reference_unusable(ip) else ip.text
    return None


def _check(result: ClientIP, policy: ClientIPPolicy) -> None:
    assert isinstance(result, ClientIP)
    assert isinstance(result.detail, str) and result.detail.isprintable()
    assert len(result.detail) < 300
    if result.ip is None:
        return
    ip = result.ip
    assert parse_ip(ip.text) == ip
    reference = ipaddress.ip_address(ip.text)
    assert (reference.version, int(reference)) == (ip.version, ip.value)
    assert not _reference_unusable(ip)
    if policy.trusted_proxies:
        # The client is never one of the proxies, least of all the one that connected.
        assert ip.text != PROXY
        assert not any(reference in n for n in policy.trusted_proxies)


FUZZ_POLICIES = [
    none(),
    trust(),
    trust("forwarded"),
    trust("x-real-ip"),
    trust("cf-connecting-ip"),
    hops(1),
    hops(2),
    hops(1, "forwarded"),
    hops(1, "fastly-client-ip"),
]


@pytest.mark.parametrize("seed", range(4))
def test_fuzz(seed: int) -> None:
    rng = random.Random(seed)
    resolvers = [(policy, ClientResolver(policy)) for policy in FUZZ_POLICIES]
    compared = 0
    for _ in range(1000):
        lines = [_junk(rng) for _ in range(rng.choice([1, 1, 1, 2, 3]))]
        for policy, resolver in resolvers:
            name = policy.header if rng.random() < 0.9 else policy.header.upper()
            headers = [(name, line) for line in lines]
            if rng.random() < 0.3:
                headers.insert(rng.randint(0, len(headers)), ("accept", _junk(rng)))
            peer = rng.choice([PROXY, PROXY, "fd00::1%eth0", CLIENT, None, _junk(rng)])
            result = resolver.resolve(peer, headers)
            _check(result, policy)
            if (
                policy.header == "x-forwarded-for"
                and policy.trusted_proxies
                and peer == PROXY
                and all(len(line) < 2000 and line.count(",") < 40 for line in lines)
            ):
                expected = _reference_xff(lines)
                assert (result.ip.text if result.ip else None) == expected, (lines, result)
                compared += 1
    assert compared > 200  # the reference comparison really ran

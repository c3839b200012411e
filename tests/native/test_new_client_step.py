"""geofence.hotpath._miss.Miss, a new client's whole entry in C (geofence/hotpath/_newclient.py): an
engine with it must end up exactly where the same engine without it ends up.

Two engines on one policy decide the same seeded stream of requests, one with the compiled
step and one with it removed (Engine._entry alone, the Python path the step mirrors). Their
decisions, cache entries, per-network memo, verdict memo, events and metric counts must be
the same, and the step must really have served most new clients (else these tests would
pass vacuously). Then each case the step must leave to Python is checked to get None.

Skipped on the pure-Python build, where no engine has the step.
"""

from __future__ import annotations

import gc
import ipaddress
import random
from collections.abc import Iterator
from typing import Any

import maxminddb
import pytest
from tests_support import ANON_DB, ASN_DB, CITY_DB, COUNTRY_DB

from geofence import Engine, Event, RequestInfo
from geofence.hotpath._newclient import NATIVE
from geofence.testing import Kit

from .test_walk import _networks

pytestmark = pytest.mark.skipif(not NATIVE, reason="geofence.hotpath._miss is not built")

# Requests, per policy, in the seeded stream.
COUNT = 6000

EXAMPLE_RULES: list[dict[str, Any]] = [
    {
        "name": "unsupported",
        "action": "block",
        "regions": ["CN", "RU", "SE"],
        "paths": ["/v1/*", "/web/*"],
        "enforce_from": "2024-07-09T00:00:00Z",
    },
    {
        "name": "new",
        "action": "block",
        "regions": ["GB", "US"],
        "paths": ["/v1/*"],
        "warn_from": "2024-11-05T00:00:00+00:00",
        "enforce_from": "2099-02-03T00:00:00+00:00",
    },
]

POLICIES: dict[str, dict[str, Any]] = {
    # The example's shape: trusted proxies (so a peer may be one), an exempt path.
    "proxied": {
        "default": "allow",
        "geoip": {"country_db": COUNTRY_DB},
        "client_ip": {
            "trusted_proxies": ["127.0.0.0/8", "::1/128", "216.160.83.56/29", "2a02:d3c0::/30"]
        },
        "rules": EXAMPLE_RULES,
        "exempt": {"paths": ["/healthz"]},
    },
    # No trusted proxy: the client is always the peer. Subdivisions, exempt addresses.
    "direct": {
        "default": "block",
        "geoip": {"country_db": CITY_DB},
        "rules": [
            {"name": "england", "action": "allow", "regions": ["GB-ENG"]},
            {"name": "us", "action": "warn", "regions": ["US"], "paths": ["/v1/*"]},
            {"name": "dry", "action": "block", "regions": ["SE"], "mode": "report"},
        ],
        "exempt": {"ips": ["2.125.160.0/24", "2001:218::/40"], "paths": ["/static/*"]},
    },
    # Report mode, network types and ASNs asked of two more databases, metrics counted.
    "report": {
        "mode": "report",
        "default": "allow",
        "geoip": {"country_db": CITY_DB, "anonymous_db": ANON_DB, "asn_db": ASN_DB},
        "rules": [
            {"name": "vpn", "action": "block", "anonymizers": ["vpn", "hosting"]},
            {"name": "asn", "action": "warn", "asns": [1221, 237]},
            *EXAMPLE_RULES,
        ],
        "metrics": {"prometheus": True},
    },
}

METHODS = ["GET", "GET", "POST", "HEAD", "get", "Delete", "M" * 40]
PATHS = ["/", "/v1/items", "/web/x", "/healthz", "/static/a.css", "/v1/" + "x" * 1100]
ODD_PEERS = [
    None,
    "",
    "bad",
    "10.0.0.1",
    "192.168.1.1",
    "127.0.0.1",
    "::1",
    "fe80::1",
    "0.0.0.0",
    "224.1.1.1",
    "255.255.255.255",
    "::",
    "::2",
    "::ffff:81.2.69.160",
    "1.2.3.4%eth0",
    "[2001:db8::1]",
    " 1.2.3.4",
    "01.2.3.4",
    "2001:DB8::1",
    "ff02::1",
    "81.2.69.1",
    # IPv4 inside IPv6 (6to4, NAT64, IPv4-compatible), and the trusted IPv6 network's edges
    "2002:5102:45a0::1",
    "64:ff9b::5102:45a0",
    "::5102:45a0",
    "2a02:d3c0::1",
    "2a02:d3c3:ffff:ffff:ffff:ffff:ffff:ffff",
    "2a02:d3c4::1",
    "fe80::1%eth0",
    "::ffff:0:0",
]


def _peers(rng: random.Random, networks: list[Any]) -> Iterator[str | None]:
    """Peers: half inside the database's own networks (so most are found), the rest random
    IPv4 and IPv6, odd text, and repeats (a repeated client is a cache hit)."""
    seen: list[str | None] = []
    while True:
        roll = rng.random()
        if roll < 0.5 and networks:
            network = rng.choice(networks)
            bits = network.max_prefixlen - network.prefixlen
            value = int(network.network_address) | (rng.getrandbits(bits) if bits else 0)
            peer: str | None = str(ipaddress.ip_address(value))
        elif roll < 0.7:
            peer = str(ipaddress.IPv4Address(rng.getrandbits(32)))
        elif roll < 0.85:
            peer = str(ipaddress.IPv6Address(rng.getrandbits(128)))
        elif roll < 0.9:
            peer = rng.choice(ODD_PEERS)
        else:
            peer = rng.choice(seen) if seen else None
        seen.append(peer)
        yield peer


def _networks_of(path: str) -> list[Any]:
    with maxminddb.open_database(path) as reader:
        return list(_networks(reader))


def _answer(answer: Any, engine: Engine) -> object:
    if answer is None:
        return None
    warner = "its responder" if answer.warner is engine._responder else answer.warner
    return (type(answer).__name__, answer.decision, answer.response, warner)


def _entries(engine: Engine) -> dict[object, object]:
    # Not whether the collector tracks a decision: that depends on when a collection last ran
    # over the verdict's inner tuples, in each engine (test_the_steps_decisions_are_untracked).
    made = {}
    for key, (epoch, decision, attention, answer) in engine._cache.items():
        kind = attention if isinstance(attention, bool) else type(attention).__name__
        made[key] = (epoch, decision, kind, _answer(answer, engine))
    return made


def _event(event: Event) -> object:
    return (event.kind, event.decision, event.account, event.rule, dict(event.detail))


class Pair:
    """The same policy twice: ``fast`` with the compiled step, ``slow`` without."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.events: dict[str, list[object]] = {"fast": [], "slow": []}
        fast_events, slow_events = self.events["fast"], self.events["slow"]
        self.fast = Engine.from_config(config, on_event=lambda e: fast_events.append(_event(e)))
        self.slow = Engine.from_config(config, on_event=lambda e: slow_events.append(_event(e)))
        assert self.fast._miss is not None
        self.slow._miss = None
        self.served = 0
        step = self.fast._miss

        def counting(*args: Any) -> Any:
            made = step(*args)
            self.served += made is not None
            return made

        self.fast._miss = counting

    def decide(self, peer: str | None, method: str, path: str) -> None:
        fast = self.fast.decide(RequestInfo(peer, {}, method, path))
        slow = self.slow.decide(RequestInfo(peer, {}, method, path))
        assert fast == slow, (peer, method, path)
        # answer() of the same request (now a hit): the entry's answer, or a block's response
        fast_answer = self.fast.answer(RequestInfo(peer, {}, method, path))
        slow_answer = self.slow.answer(RequestInfo(peer, {}, method, path))
        assert _answer(fast_answer, self.fast) == _answer(slow_answer, self.slow)

    def check_same_state(self) -> None:
        fast, slow = self.fast, self.slow
        assert _entries(fast) == _entries(slow)
        assert [type(k) for k in fast._cache] == [type(k) for k in slow._cache]
        assert fast._finds[3] == slow._finds[3]
        assert fast._verdicts == slow._verdicts
        assert self.events["fast"] == self.events["slow"]


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_an_engine_with_the_step_ends_where_one_without_it_does(name: str) -> None:
    config = POLICIES[name]
    pair = Pair(config)
    rng = random.Random(f"new-client-step-{name}")
    peers = _peers(rng, _networks_of(config["geoip"]["country_db"]))
    for _ in range(COUNT):
        pair.decide(next(peers), rng.choice(METHODS), rng.choice(PATHS))
    pair.check_same_state()
    # Most new clients were the step's: the comparison above is not of Python with itself.
    assert pair.served > COUNT // 4, pair.served
    if name == "report":
        assert pair.fast._observer.tally is not None  # counted: the attention counters ran


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_a_step_given_python_objects_ends_where_python_does(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The step hands the address's halves from the compiled parser to the compiled finder
    (_native's capsule); given Python's parser and finders instead, it reads them from the
    IP and calls: the same decisions."""
    from geofence.clientip import _addresses

    monkeypatch.setattr(_addresses, "parse_peer", _addresses._parse_peer_text)
    config = POLICIES[name]
    pair = Pair(config)
    country, anonymizers, asn, networks = pair.fast._finds
    assert type(country).__name__ == "Finder"  # the compiled one, with its Python slow path
    pair.fast._finds = tuple(  # type: ignore[assignment]
        [getattr(find, "slow", find) for find in (country, anonymizers, asn)] + [networks]
    )
    rng = random.Random(f"python-objects-{name}")
    peers = _peers(rng, _networks_of(config["geoip"]["country_db"]))
    for _ in range(COUNT // 3):
        pair.decide(next(peers), rng.choice(METHODS), rng.choice(PATHS))
    pair.check_same_state()
    assert pair.served > COUNT // 12, pair.served


def test_counts_of_both_engines_are_the_same() -> None:
    pair = Pair(POLICIES["report"])
    rng = random.Random("counts")
    peers = _peers(rng, _networks_of(CITY_DB))
    for _ in range(2000):
        pair.decide(next(peers), "GET", rng.choice(PATHS[:3]))
    tally = pair.fast._observer.tally
    assert tally is not None and tally is pair.slow._observer.tally  # one per process
    # Each engine counted every decision once: twice the requests in all, step or not.
    assert pair.served > 200


def _warm(engine: Engine, peer: str, path: str = "/v1/items") -> None:
    """Decide once for another client with the same facts, so that the verdict is memoised."""
    engine.decide(RequestInfo(peer, {}, "GET", path))


def _step(engine: Engine, peer: str | None, method: str = "GET", path: str = "/v1/items") -> Any:
    """What the step gives for this request, asked as _entry asks it."""
    engine.decide(RequestInfo("198.51.100.1", {}, "GET", "/"))  # the window and epoch set
    start, end, epoch = engine._state
    wall = (start + end) / 2 if end != float("inf") else start + 1.0
    assert engine._miss is not None
    return engine._miss(engine, RequestInfo(peer, {}, method, path), epoch, wall)


@pytest.fixture
def proxied() -> Engine:
    engine = Engine.from_config(POLICIES["proxied"])
    _warm(engine, "81.2.69.142")  # GB: a warn of rule "new"
    return engine


def test_the_common_case_is_the_steps(proxied: Engine) -> None:
    entry = _step(proxied, "81.2.69.161")  # GB too, a new client of the same verdict
    assert entry is not None
    assert entry[1].action == "warn" and entry[1].client_ip == "81.2.69.161"
    assert proxied._cache[("81.2.69.161", "GET", "/v1/items")] is entry
    assert entry[1].ref is not None and entry[2] is True


@pytest.mark.parametrize(
    ("peer", "method", "path", "why"),
    [
        ("216.160.83.57", "GET", "/v1/items", "a trusted proxy"),
        ("2a02:d3c1::7", "GET", "/v1/items", "a trusted IPv6 proxy"),
        ("::ffff:216.160.83.57", "GET", "/v1/items", "a trusted proxy, IPv4-mapped"),
        ("10.1.2.3", "GET", "/v1/items", "a private address"),
        ("fc00::1", "GET", "/v1/items", "a private IPv6 address"),
        ("224.0.0.1", "GET", "/v1/items", "multicast: the resolver explains it"),
        ("0.0.0.0", "GET", "/v1/items", "unspecified"),
        ("::", "GET", "/v1/items", "unspecified IPv6"),
        ("ff02::1", "GET", "/v1/items", "multicast IPv6"),
        ("not an address", "GET", "/v1/items", "no address"),
        (None, "GET", "/v1/items", "no peer"),
        ("81.2.69.161", "get", "/v1/items", "a method Python upper-cases"),
        ("81.2.69.161", "M" * 33, "/v1/items", "a method too long to cache"),
        ("81.2.69.161", "GET", "/v1/" + "x" * 1025, "a path too long to cache"),
        ("81.2.69.161", "GET", "/healthz", "an exempt path"),
        (b"81.2.69.161", "GET", "/v1/items", "a peer that is not text"),
        ("81.2.69.161", b"GET", "/v1/items", "a method that is not text"),
        ("81.2.69.161", "GET", b"/v1/items", "a path that is not text"),
        ("81.2.69.161", "GËT", "/v1/items", "a method that is not ASCII"),
    ],
)
def test_what_the_step_leaves_to_python(
    proxied: Engine, peer: str | None, method: str, path: str, why: str
) -> None:
    assert _step(proxied, peer, method, path) is None, why


def test_the_first_client_of_a_verdict_is_the_steps_too(proxied: Engine) -> None:
    # Its verdict comes from Engine._verdict, called by the step and memoised as _evaluate
    # memoises it: the next client with these facts finds it.
    before = len(proxied._verdicts)
    entry = _step(proxied, "89.160.20.113")  # SE, blocked on /v1/*: no client of it yet
    assert entry is not None and entry[1].action == "block" and entry[1].rule == "unsupported"
    assert len(proxied._verdicts) == before + 1
    assert _step(proxied, "89.160.20.114") is not None
    assert len(proxied._verdicts) == before + 1


def test_a_request_already_cached_is_left_to_python(proxied: Engine) -> None:
    assert _step(proxied, "81.2.69.142") is None  # the warmed client itself


def test_an_exempt_address_is_left_to_python() -> None:
    engine = Engine.from_config(POLICIES["direct"])
    _warm(engine, "2.125.161.1", "/")  # GB-ENG, outside the exempt /24
    assert _step(engine, "2.125.162.7", path="/") is not None
    assert _step(engine, "2.125.160.7", path="/") is None  # inside 2.125.160.0/24


def test_a_testing_overlay_is_left_to_python(proxied: Engine) -> None:
    with Kit() as kit:
        kit.pretend(country="US")
        assert _step(proxied, "81.2.69.161") is None
        assert proxied.decide(RequestInfo("81.2.69.161", {}, "GET", "/v1/items")).country == "US"
    _warm(proxied, "81.2.69.163")  # the kit's end emptied the engine's memos
    assert _step(proxied, "81.2.69.162") is not None


def test_the_edge_of_the_window_is_left_to_python(proxied: Engine) -> None:
    proxied.decide(RequestInfo("198.51.100.1", {}, "GET", "/"))
    start, _, epoch = proxied._state
    assert proxied._miss is not None
    request = RequestInfo("81.2.69.161", {}, "GET", "/v1/items")
    assert proxied._miss(proxied, request, epoch, start) is None  # within _EXACT of a rule date
    assert proxied._miss(proxied, request, epoch, start - 10.0) is None  # outside the window
    other_segment = (epoch[0] + 1, epoch[1])
    assert proxied._miss(proxied, request, other_segment, start + 1.0) is None
    assert proxied._miss(proxied, request, "not an epoch", start + 1.0) is None
    assert proxied._miss(proxied, request, epoch, start + 1.0) is not None


def test_a_database_error_is_left_to_python(proxied: Engine) -> None:
    class Broken:
        def __call__(self, ip: object) -> tuple[object, int]:
            raise RuntimeError("the finder broke")

    _, anonymous, asn, networks = proxied._finds
    proxied._finds = (Broken(), anonymous, asn, networks)  # type: ignore[assignment]
    before = dict(networks)
    assert _step(proxied, "175.16.199.7") is None  # CN: a /24, memoised when looked up
    assert networks == before


def test_no_step_where_it_cannot_make_the_key() -> None:
    hops = {**POLICIES["direct"], "client_ip": {"hops": 1}}
    hosts = {
        **POLICIES["direct"],
        "rules": [{"name": "h", "action": "block", "regions": ["US"], "hosts": ["a.example"]}],
    }
    assert Engine.from_config(hops)._miss is None
    assert Engine.from_config(hosts)._miss is None


def test_the_step_refuses_bad_arguments(proxied: Engine) -> None:
    from geofence.hotpath import _miss  # type: ignore[attr-defined]

    with pytest.raises(TypeError):
        _miss.Miss()
    with pytest.raises(TypeError):
        _miss.Miss(*([None] * 19))
    assert proxied._miss is not None
    with pytest.raises(TypeError):
        proxied._miss(1, 2, 3)
    with pytest.raises(TypeError):
        proxied._miss(1, 2, 3, 4, x=5)
    with pytest.raises(TypeError):  # the three parts and ``absent`` go without a request
        proxied._miss(proxied, "request", 3, 4.0, "1.2.3.4", "GET", "/", True)
    with pytest.raises(TypeError):
        proxied._miss(proxied, None, 3, 4.0, "1.2.3.4", "GET", "/", True, 9)


def test_the_steps_decisions_and_entries_are_untracked(proxied: Engine) -> None:
    # What the step makes for an allowed client holds only immutable, untracked values: the
    # collector never visits it (as geofence.hotpath._tuples does for the Python path's decisions).
    gc.collect()  # the verdict's own inner tuples untracked, as they are in a long-lived engine
    _warm(proxied, "81.2.69.163")
    gc.collect()
    entry = _step(proxied, "81.2.69.164", path="/")  # GB on "/": an allow
    assert entry is not None and entry[1].action == "allow" and entry[2] is False
    assert not gc.is_tracked(entry[1]) and not gc.is_tracked(entry[3])
    assert not gc.is_tracked(entry)
    key = next(k for k in proxied._cache if k[0] == "81.2.69.164")
    assert not gc.is_tracked(key)


def test_the_step_is_collected_with_its_engine() -> None:
    import weakref

    engine = Engine.from_config(POLICIES["proxied"])
    ref = weakref.ref(engine)
    del engine
    gc.collect()
    assert ref() is None


def test_a_record_of_another_class_is_read_by_its_attributes(proxied: Engine) -> None:
    # The step reads a GeoRecord's fields from its slots (learnt from the first record it
    # sees); a record of any other class is read by getattr, with the same result.
    class Plain:
        def __init__(self) -> None:
            self.found, self.country, self.subdivisions = True, "SE", ()

    _, anonymous, asn, networks = proxied._finds
    proxied._finds = (lambda ip: (Plain(), 32), anonymous, asn, networks)  # type: ignore[assignment]
    entry = _step(proxied, "81.2.69.170")  # GB in the file; SE by this finder
    assert entry is not None
    assert (entry[1].country, entry[1].action, entry[1].rule) == ("SE", "block", "unsupported")


def test_a_first_record_of_another_class_is_read_by_attributes_for_good() -> None:
    class Plain:
        def __init__(self, country: str) -> None:
            self.found, self.country, self.subdivisions = True, country, ()

    engine = Engine.from_config(POLICIES["proxied"])
    _, anonymous, asn, networks = engine._finds
    countries = iter(["SE", "US", "SE"])
    engine._finds = (  # type: ignore[assignment]
        lambda ip: (Plain(next(countries)), 32),
        anonymous,
        asn,
        networks,
    )
    got = [_step(engine, peer) for peer in ["81.2.69.171", "81.2.69.172", "81.2.69.173"]]
    assert [e[1].country for e in got if e is not None] == ["SE", "US", "SE"]

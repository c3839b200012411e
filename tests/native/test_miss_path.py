"""The compiled pieces of a new client's path: they must give exactly what their Python twins
give, and hand everything unusual to them.

- geofence.hotpath._native.Finder: a database's find_prefix for the common case;
- geofence.hotpath._native.Peers: parse_peer for canonical text;
- geofence.hotpath._native.bounded_put: geofence._cache.bounded_put_python;
- geofence.hotpath._tuples.Builder: Answer(decision, response, warner) without the Python __init__;
- the collector: what geofence.hotpath._tuples makes is untracked only when it can hold no cycle.

Seeded fuzz plus hand-picked cases; the whole module is skipped on the pure-Python build (the
suite runs there too and checks the twins alone).
"""

from __future__ import annotations

import gc
import ipaddress
import random
import weakref
from array import array
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import maxminddb
import pytest
from tests_support import CITY_DB

import geofence
from geofence._cache import BoundedCache, bounded_put, bounded_put_python
from geofence._model import Decision, with_client
from geofence.clientip import _addresses
from geofence.clientip._addresses import IP, parse_ip_uncached, parse_peer
from geofence.geoip._tree import STRIDE, SearchTree
from geofence.hotpath import NATIVE, TUPLES
from geofence.http._answer import Answer, new_answer

from .test_walk import DATABASES, _load, _outcome
from .test_walk import _addresses as tree_addresses

pytestmark = pytest.mark.skipif(
    NATIVE is None or TUPLES is None,
    reason="geofence.hotpath._native is not loaded (not built, or GEOFENCE_PURE_PYTHON)",
)

CITY = Path(CITY_DB)


# -- Finder ------------------------------------------------------------------------------------


class Slow:
    """What MaxMindDB.find_prefix does, with the tree's Python-facing walk: decode (here, a
    marker) on first sight of a record, then remember it in ``answers``. Counts its calls."""

    def __init__(self, tree: SearchTree, answers: dict[int, Any]) -> None:
        self.tree, self.answers, self.calls = tree, answers, 0

    def __call__(self, ip: Any, *rest: Any, **named: Any) -> tuple[Any, int]:
        self.calls += 1
        if rest or named:
            return ("other call", (rest, tuple(sorted(named))))  # type: ignore[return-value]
        record, prefix = self.tree.leaf_prefix(ip)  # raises TreeError for a damaged tree
        answer = self.answers.setdefault(record, ("decoded", record))
        return answer, prefix


@pytest.mark.parametrize("path", DATABASES, ids=lambda p: p.name)
def test_finder_gives_what_the_python_lookup_gives(path: Path) -> None:
    loaded = _load(path)
    assert loaded is not None
    tree, reader = loaded
    with reader:
        addresses = tree_addresses(reader, path.name)[::3]
    answers: dict[int, Any] = {}
    slow = Slow(tree, answers)
    finder = tree.finder(answers, slow, ipv6=True)
    assert type(finder).__name__ == "Finder" and finder.slow is slow  # type: ignore[attr-defined]
    reference = Slow(tree, {})
    mismatches = []
    for ip in addresses:
        expected = _outcome(reference, ip)
        first = _outcome(finder, ip)  # the slow path decodes a record seen for the first time
        again = _outcome(finder, ip)  # from answers, in C, unless the tree is damaged there
        if not expected == first == again:
            mismatches.append((ip, expected, first, again))
    assert mismatches == []
    # Each record went through the slow path once (twice for a damaged walk, which C hands
    # on every time): everything else was answered in C.
    damaged = sum(1 for ip in addresses if isinstance(_outcome(reference, ip), str))
    assert slow.calls <= len(answers) + 2 * damaged


def test_finder_hands_ipv6_to_the_slow_path_without_an_ipv6_table() -> None:
    loaded = _load(CITY)
    assert loaded is not None
    tree, reader = loaded
    reader.close()
    answers: dict[int, Any] = {}
    slow = Slow(tree, answers)
    finder = tree.finder(answers, slow, ipv6=False)
    v6 = IP("2001:218::1", 6, int(ipaddress.IPv6Address("2001:218::1")))
    assert finder(v6) == slow(v6)
    calls = slow.calls
    assert finder(v6) == slow(v6) and slow.calls == calls + 2  # never answered in C
    v4 = IP("81.2.69.160", 4, int(ipaddress.IPv4Address("81.2.69.160")))
    first = finder(v4)
    calls = slow.calls
    record, prefix = tree.leaf_prefix(v4)
    assert finder(v4) == first == (answers[record], prefix)
    assert slow.calls == calls  # answered in C


@pytest.mark.parametrize(
    "args",
    [
        (),
        ("not an ip",),
        (("1.2.3.4", 4),),  # too short
        (("1.2.3.4", True, 1),),  # a bool is not exactly an int
        (("1.2.3.4", 5, 1),),
        (("1.2.3.4", 2**70, 1),),
        (("1.2.3.4", 4, -1),),
        (("1.2.3.4", 4, 2**32),),
        (("::1", 6, 2**128),),
        (("1.2.3.4", 4, "1"),),
        (IP("1.2.3.4", 4, 0x01020304), "extra"),
    ],
)
def test_finder_hands_other_calls_to_the_slow_path(args: tuple[Any, ...]) -> None:
    loaded = _load(CITY)
    assert loaded is not None
    tree, reader = loaded
    reader.close()
    seen: list[tuple[Any, ...]] = []

    def slow(*given: Any, **named: Any) -> Any:
        seen.append((given, named))
        return "slow"

    finder = tree.finder({}, slow, ipv6=True)
    assert finder(*args) == "slow"
    assert seen == [(args, {})]
    assert finder(ip=1) == "slow" and seen[-1] == ((), {"ip": 1})


def test_finder_checks_what_it_is_given_and_pins_the_arrays() -> None:
    assert NATIVE is not None
    left, right = array("I", [1, 1]), array("I", [1, 1])
    table = array("I", [0] * (1 << STRIDE))
    with pytest.raises(TypeError):
        NATIVE.Finder(left, right, table, None, 1, STRIDE, [], print)  # answers: not a dict
    with pytest.raises(TypeError):
        NATIVE.Finder(left, right, table, None, 1, STRIDE, {}, 42)  # slow: not callable
    with pytest.raises(TypeError):
        NATIVE.Finder(array("d", [0.0]), right, table, None, 1, STRIDE, {}, print)
    with pytest.raises(ValueError, match="shorter"):
        NATIVE.Finder(left, right, array("I", [0]), None, 1, STRIDE, {}, print)
    with pytest.raises(ValueError):
        NATIVE.Finder(left, right, table, None, 1, 0, {}, print)
    finder = NATIVE.Finder(left, right, table, None, 1, STRIDE, {}, print)
    with pytest.raises(BufferError):
        left.append(0)  # exported for the finder's life: never resized under a walk
    del finder
    gc.collect()
    left.append(0)


def test_a_finder_in_a_cycle_is_collected() -> None:
    assert NATIVE is not None
    table = array("I", [0] * (1 << STRIDE))

    class Holder:
        finder: Any = None

        def slow(self, ip: Any) -> Any:
            return None

    holder = Holder()
    holder.finder = NATIVE.Finder(
        array("I", [1]), array("I", [1]), table, None, 1, STRIDE, {}, holder.slow
    )
    gone = weakref.ref(holder)
    del holder
    gc.collect()
    assert gone() is None


def test_a_database_finder_answers_as_its_find_prefix() -> None:
    db = geofence.Engine.from_config({"geoip": {"country_db": CITY_DB}}).country_db
    finder = db.finder()  # type: ignore[union-attr]
    assert type(finder).__name__ == "Finder"
    rng = random.Random(7)
    texts = ["81.2.69.160", "2001:218::1", "89.160.20.112", "216.160.83.56", "2.125.160.216"]
    texts += [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(2000)]
    texts += [str(ipaddress.IPv6Address(rng.getrandbits(128))) for _ in range(2000)]
    for text in texts:
        ip = parse_ip_uncached(text)
        assert ip is not None
        assert finder(ip) == db.find_prefix(ip) == finder(ip), text


# -- Peers -------------------------------------------------------------------------------------


def test_parse_peer_is_the_python_parser() -> None:
    assert type(parse_peer).__name__ == "Peers"
    python = _addresses._parse_peer_text
    rng = random.Random(20261204)
    samples: list[Any] = [None, "", "1.2.3.4", "::1", "[::1]", "::ffff:1.2.3.4", "fe80::1%eth0"]
    samples += ["01.2.3.4", "1.2.3.4 ", "2001:DB8::1", "2001:db8:0:0:0:0:0:1", 7, b"1.2.3.4"]
    for _ in range(20_000):
        if rng.random() < 0.5:
            samples.append(str(ipaddress.IPv4Address(rng.getrandbits(32))))
        else:
            samples.append(str(ipaddress.IPv6Address(rng.getrandbits(rng.choice((16, 64, 128))))))
    for text in samples:
        made, expected = parse_peer(text), python(text)
        assert made == expected, text
        assert type(made) is type(expected)
        if made is not None:
            assert made.text is text or made.text == expected.text  # type: ignore[union-attr]


def test_parse_peer_makes_immutable_untracked_addresses() -> None:
    made = parse_peer("203.0.113.9")
    assert made == IP("203.0.113.9", 4, 0xCB007109) and not gc.is_tracked(made)
    with pytest.raises(TypeError):
        parse_peer()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        parse_peer("1.2.3.4", "x")  # type: ignore[call-arg]


# -- bounded_put -------------------------------------------------------------------------------


@pytest.mark.parametrize("make", [dict, lambda: BoundedCache(10_000)], ids=["dict", "subclass"])
def test_bounded_put_is_the_python_one(make: Any) -> None:
    assert bounded_put is not bounded_put_python
    rng = random.Random(3)
    compiled, python = make(), make()
    for _ in range(5_000):
        key, limit = rng.randrange(40), rng.randrange(1, 30)
        value = object()
        assert bounded_put(compiled, limit, key, value) is value
        assert bounded_put_python(python, limit, key, value) is value
        assert compiled == python
    with pytest.raises(TypeError):
        bounded_put({}, 3, "key")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        bounded_put({}, "3", "key", 1)
    with pytest.raises(TypeError):
        bounded_put({}, 3, [], 1)  # unhashable, as cache[key] = value says
    with pytest.raises(TypeError):
        bounded_put(42, 3, "key", 1)  # type: ignore[arg-type]


# -- Builder and the collector -----------------------------------------------------------------

ALLOW = Decision(action="allow", enforced=True, reason="default")


def test_new_answer_is_answer() -> None:
    decision = with_client(ALLOW, "1.2.3.4", "socket peer", None)
    for response, warner in ((None, None), ("a response", None), (None, "a warner")):
        made = new_answer(decision, response, warner)  # type: ignore[arg-type]
        plain = Answer(decision, response, warner)  # type: ignore[arg-type]
        assert type(made) is Answer
        assert (made.decision, made.response, made.warner) == (
            plain.decision,
            plain.response,
            plain.warner,
        )
        assert repr(made) == repr(plain) and made.amends is plain.amends
    with pytest.raises(TypeError):
        new_answer(decision)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        new_answer(decision, None, None, None)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        new_answer(decision, response=None, warner=None)  # type: ignore[call-arg]


def test_new_response_is_response() -> None:
    # A frozen dataclass with slots: the Builder sets its slots without its __init__, and the
    # instance is what the class makes (equal, hashed alike, replace() works on it).
    from dataclasses import fields, replace

    from geofence.http._responses import Response, new_response

    assert new_response is not Response
    context = MappingProxyType({"ref": "ABCDE-FGHIJ"})
    args = (451, (("Content-Type", "application/json"),), b"{}", False, context, b"")
    made, plain = new_response(*args), Response(*args)
    assert type(made) is Response and made == plain and repr(made) == repr(plain)
    assert [getattr(made, f.name) for f in fields(Response)] == list(args)
    assert gc.is_tracked(made) == gc.is_tracked(plain)
    assert replace(made, body=b"") == replace(plain, body=b"")
    with pytest.raises(TypeError):
        new_response(*args[:-1])


def test_builder_accepts_only_plain_slot_classes() -> None:
    assert TUPLES is not None

    class WithNew:
        __slots__ = ("a",)

        def __new__(cls) -> WithNew:
            return super().__new__(cls)

    class Plain:
        __slots__ = ("a", "b")

    with pytest.raises(TypeError):
        TUPLES.Builder(WithNew, ("a",))
    with pytest.raises(AttributeError):
        TUPLES.Builder(Plain, ("a", "missing"))
    with pytest.raises(TypeError):
        TUPLES.Builder(Plain, ("__class__",))
    with pytest.raises(TypeError):
        TUPLES.Builder(Plain, ["a"])
    made = TUPLES.Builder(Plain, ("b", "a"))(1, 2)
    assert (made.a, made.b) == (2, 1)


def test_only_what_can_hold_no_cycle_is_untracked() -> None:
    assert TUPLES is not None
    decision = with_client(ALLOW, "1.2.3.4", "peer", None)
    assert not gc.is_tracked(decision)
    assert not gc.is_tracked(new_answer(decision, None, None))
    # A value that can lead back to a container keeps the object tracked.
    assert gc.is_tracked(new_answer(decision, None, []))  # type: ignore[arg-type]
    assert gc.is_tracked(with_client(ALLOW, "1.2.3.4", "peer", []))  # type: ignore[arg-type]
    assert gc.is_tracked(TUPLES.new(Pair, (1, {})))
    assert gc.is_tracked(TUPLES.new(Pair, (1, (2, [])))) and gc.is_tracked(
        TUPLES.new(Pair, (1, Pair(2, 3)))  # made by Python: tracked until a collection
    )

    class Roomy(tuple):  # type: ignore[type-arg]  # has a __dict__: can gain references
        pass

    roomy = TUPLES.new(Roomy, (1, 2))
    assert gc.is_tracked(roomy)
    roomy.me = roomy
    roomy.marker = marker = Marker()
    gone = weakref.ref(marker)
    del roomy, marker
    gc.collect()
    assert gone() is None  # the cycle through the tuple's __dict__ was seen

    class Box:  # a class whose slots are not all it has (a __dict__): never untracked
        __slots__ = ("__dict__", "value")

    box = TUPLES.Builder(Box, ("value",))(1)
    assert gc.is_tracked(box)


def test_a_cycle_through_built_objects_is_still_collected() -> None:
    holder: list[Any] = []
    answer = new_answer(with_client(ALLOW, "1.2.3.4", "peer", None), None, holder)  # type: ignore[arg-type]
    holder.append(answer)
    marker = Marker()
    holder.append(marker)
    watched = weakref.ref(marker)
    del holder, answer, marker
    gc.collect()
    assert watched() is None


class Marker:
    pass


class Pair(NamedTuple):
    left: object
    right: object


# -- the engine ---------------------------------------------------------------------------------


def test_the_engine_uses_the_compiled_pieces() -> None:
    import geofence

    engine = geofence.Engine.from_config({"geoip": {"country_db": str(CITY)}})
    assert type(engine._finds[0]).__name__ == "Finder"
    first = engine.decide(geofence.RequestInfo(peer="81.2.69.160"))
    # Its subdivisions are a tuple the decoder made, tracked until a collection sees it: the
    # first decision holds it, so it stays tracked too; later ones in that network do not.
    assert first.country == "GB" and gc.is_tracked(first)
    gc.collect()
    later = engine.decide(geofence.RequestInfo(peer="81.2.69.161"))
    assert later.country == "GB" and not gc.is_tracked(later)
    assert not gc.is_tracked(engine._cache[("81.2.69.161", "GET", "/")][1])


def test_maxmind_reader_is_the_reference_for_a_real_file() -> None:
    """Through the engine's finder, every sampled address gets the reader's country."""
    db = geofence.Engine.from_config({"geoip": {"country_db": CITY_DB}}).country_db
    finder = db.finder()  # type: ignore[union-attr]
    with maxminddb.open_database(str(CITY)) as reader:
        for network, record in reader:
            for address in (network.network_address, network.broadcast_address):
                ip = parse_ip_uncached(str(address))
                assert ip is not None
                if ip.version != address.version:
                    continue  # an embedded IPv4 client: the IPv4 tree answers it
                answer, prefix = finder(ip)
                expected = ((record or {}).get("country") or {}).get("iso_code")  # type: ignore[union-attr]
                assert answer.country == expected, address
                assert prefix >= network.prefixlen or prefix == STRIDE

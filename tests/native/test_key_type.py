"""The decision cache's key type (geofence.hotpath._probe.key_type): on the compiled build a
subclass of DecisionKey whose == compares strings without the generic comparison. Whatever it is,
its keys must compare, hash and show exactly as DecisionKey's do, or a cache hit could answer a
request with another request's decision.
"""

from __future__ import annotations

import itertools
import pickle
import random
from typing import Any

import pytest

from geofence._engine import _Key
from geofence._model import DecisionKey
from geofence.hotpath import _probe


class Text(str):
    """A str subclass whose == is its own: the fast comparison must not skip it."""

    def __eq__(self, other: object) -> bool:
        return str.__eq__(self.lower(), other.lower() if isinstance(other, str) else other)

    __hash__ = str.__hash__


NAN = float("nan")
# Items that differ in length, in kind (latin-1, UCS-2, UCS-4), by one code point at either
# end, that are equal across types, or not equal to themselves.
ITEMS: list[Any] = [
    "",
    "1.2.3.4",
    "1.2.3.5",
    "2.2.3.4",
    "1.2.3.4 ",
    "é",
    "\u0100",
    "\U0001f600",
    "a\u0100",
    "a\U0001f600",
    "/v1/models",
    "/v1/Models",
    None,
    ("1.2.3.4", "via X-Forwarded-For"),
    ("1.2.3.4", "via Forwarded"),
    1,
    1.0,
    True,
    NAN,
    Text("GET"),
    "get",
    "GET",
]


def plain(*items: Any) -> DecisionKey:
    return tuple.__new__(DecisionKey, items)


def fast(*items: Any) -> Any:
    return tuple.__new__(_Key, items)


def copy(value: Any) -> Any:
    """An equal object that is not the same one (so that identity cannot decide)."""
    if type(value) is str:
        return (value + "x")[:-1]
    return value


def test_the_compiled_build_uses_its_own_key_type() -> None:
    if _probe.NATIVE:
        assert _Key is not DecisionKey and issubclass(_Key, DecisionKey)
    else:
        assert _Key is DecisionKey


def test_every_pair_of_small_keys_compares_as_decision_key_does() -> None:
    triples = [
        (a, b, c)
        for a, b, c in itertools.product(ITEMS[:14], ["GET", "get", Text("GET")], ITEMS[9:14])
    ]
    for left in triples:
        for right in triples:
            for other in (tuple(map(copy, right)), plain(*map(copy, right))):
                expected = plain(*left) == other
                key = fast(*left)
                assert (key == other) is expected, (left, right)
                assert (key != other) is (not expected), (left, right)
                assert (other == key) is expected, (left, right)
                if expected and not any(isinstance(item, Text) for item in (*left, *right)):
                    assert hash(key) == hash(other)  # (Text's hash does not follow its ==)


def test_random_keys_compare_hash_and_order_as_decision_key_does() -> None:
    rng = random.Random(20261205)
    for _ in range(20_000):
        size = rng.choice((2, 3, 3, 3, 4))
        left = [rng.choice(ITEMS) for _ in range(size)]
        right = [copy(item) if rng.random() < 0.7 else rng.choice(ITEMS) for item in left]
        if rng.random() < 0.1:
            right = right[:-1]
        expected = tuple(left) == tuple(right)
        key = fast(*left)
        assert (key == tuple(right)) is expected, (left, right)
        assert (key != tuple(right)) is (not expected), (left, right)
        if expected and not any(isinstance(item, Text) for item in (*left, *right)):
            assert hash(key) == hash(tuple(right)) == hash(plain(*left))
        try:
            order = tuple(left) < tuple(right)
        except TypeError:
            with pytest.raises(TypeError):
                _ = key < tuple(right)
        else:
            assert (key < tuple(right)) is order


def test_a_plain_tuple_finds_a_key_in_a_dict_and_back() -> None:
    cache = {fast("1.2.3.4", "GET", "/a"): 1, fast(("1.2.3.4", "via"), "GET", "/a"): 2}
    assert cache.get(("1.2.3.4", "GET", copy("/a"))) == 1
    assert cache.get((copy("1.2.3.4"), "GET", "/b")) is None
    assert cache.get((("1.2.3.4", "via"), "GET", "/a")) == 2
    assert {("1.2.3.4", "GET", "/a"): 3}.get(fast("1.2.3.4", "GET", "/a")) == 3


def test_it_reads_and_shows_as_decision_key() -> None:
    key = fast("1.2.3.4", "GET", "/a")
    assert repr(key) == repr(plain("1.2.3.4", "GET", "/a"))
    assert (key.client, key.method, key.path) == ("1.2.3.4", "GET", "/a")
    assert key._replace(path="/b") == ("1.2.3.4", "GET", "/b")
    assert key._asdict() == {"client": "1.2.3.4", "method": "GET", "path": "/a"}
    assert not hasattr(key, "__dict__")
    assert pickle.loads(pickle.dumps(plain(*key))) == key


def test_an_error_in_an_items_comparison_propagates() -> None:
    class Angry:
        def __eq__(self, other: object) -> bool:
            raise RuntimeError("no")

        __hash__ = object.__hash__

    with pytest.raises(RuntimeError):
        _ = fast(Angry(), "GET", "/a") == (Angry(), "GET", "/a")
    # as tuple's: the items are compared before the lengths
    for key in (plain(Angry(), "GET"), fast(Angry(), "GET")):
        with pytest.raises(RuntimeError):
            _ = key == (Angry(), "GET", "/a")
        with pytest.raises(RuntimeError):
            _ = key != (Angry(),)
    assert fast("a", "b") != ("a", "b", "c") and fast("a", "b", "c") != ("a", "b")
    assert not fast("a", "b") == ("a", "b", "c")  # noqa: SIM201 - the == itself is tested

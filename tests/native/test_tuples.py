"""geofence.hotpath._tuples (geofence/hotpath/_tuples.c): the C named-tuple builders give exactly
what tuple.__new__ and the Python with_client give."""

from __future__ import annotations

import gc
import random
import sys
from typing import Any, NamedTuple

import pytest

from geofence import _model
from geofence._model import Decision, DecisionKey, Facts
from geofence.clientip._addresses import IP
from geofence.hotpath import TUPLES

pytestmark = pytest.mark.skipif(TUPLES is None, reason="geofence.hotpath._tuples is not built here")


class Pair(NamedTuple):
    left: object
    right: object


CLASSES: list[tuple[type[tuple[Any, ...]], int]] = [
    (IP, 3),
    (DecisionKey, 3),
    (Facts, 9),
    (Decision, len(Decision._fields)),
    (Pair, 2),
    (tuple, 4),
]


@pytest.mark.parametrize(("cls", "size"), CLASSES)
def test_new_is_tuple_new(cls: type[tuple[Any, ...]], size: int) -> None:
    assert TUPLES is not None
    rng = random.Random(size)
    for _ in range(200):
        items = tuple(rng.choice([None, "x", 3, ("a",), frozenset({1})]) for _ in range(size))
        made, expected = TUPLES.new(cls, items), tuple.__new__(cls, items)
        assert type(made) is type(expected) is cls
        assert made == expected and hash(made) == hash(expected)
        assert tuple(made) == items
        if cls is not tuple:
            assert made._asdict() == expected._asdict()  # type: ignore[attr-defined]
    assert TUPLES.new(tuple, ()) == ()


def test_with_tail_is_the_python_with_client() -> None:
    assert TUPLES is not None
    verdict = Decision(action="block", enforced=True, reason="rule", rule="r", country="CN")
    for args in [
        ("1.2.3.4", "peer", None),
        ("::1", "x", "ABCDE-FGHJK"),
        (None, "unresolved", None),
    ]:
        made = _model.with_client(verdict, *args)
        expected = _model._with_client(verdict, *args)
        assert type(made) is Decision and made == expected
        assert (made.client_ip, made.client_detail, made.ref) == args
        assert made.rule == "r" and made.country == "CN"
    assert TUPLES.with_tail(Pair, (1, 2)) == Pair(1, 2)  # an empty tail: a copy
    assert TUPLES.with_tail(Pair, (1, 2), 3, 4) == Pair(3, 4)


@pytest.mark.parametrize(
    "call",
    [
        lambda t: t.new(int, ()),
        lambda t: t.new(Pair, [1, 2]),
        lambda t: t.new(Pair),
        lambda t: t.new("Pair", (1, 2)),
        lambda t: t.with_tail(Pair, [1, 2], 3),
        lambda t: t.with_tail(Pair, (1,), 2, 3),
        lambda t: t.with_tail(Pair),
    ],
)
def test_misuse_raises_and_never_crashes(call: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        call(TUPLES)


def test_references_are_counted() -> None:
    assert TUPLES is not None
    item, tail = object(), object()
    before = sys.getrefcount(item), sys.getrefcount(tail)
    made = [TUPLES.new(Pair, (item, item)) for _ in range(1000)]
    tailed = [TUPLES.with_tail(Pair, (item, item), tail) for _ in range(1000)]
    assert sys.getrefcount(item) == before[0] + 3000
    del made, tailed
    gc.collect()
    assert (sys.getrefcount(item), sys.getrefcount(tail)) == before


def test_instances_take_part_in_garbage_collection() -> None:
    assert TUPLES is not None
    holder: list[object] = []
    cycle = TUPLES.new(Pair, (holder, None))
    holder.append(cycle)  # a cycle through the named tuple
    assert gc.is_tracked(cycle)
    del holder, cycle
    assert gc.collect() >= 2

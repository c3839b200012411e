"""geofence/hotpath/_makers.py: each maker makes what calling its class makes, on both builds.

The C Maker skips the class's ``__init__``, so each class it is used for is held here to the promise
in geofence/hotpath/_makers.py: its ``__init__`` only stores its parameters (and fixed values) in
its slots. A change to one of these ``__init__`` methods fails these tests rather than being skipped
silently on the compiled build.
"""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import pytest

from geofence import RequestInfo
from geofence.hotpath._makers import maker, new_request_info
from geofence.hotpath._probe import NATIVE as NATIVE_PROBE
from geofence.http._asgi import Headers, new_headers
from geofence.http._environ import EnvironHeaders, new_environ_headers

native = pytest.mark.skipif(not NATIVE_PROBE, reason="the C probe is not built: no Maker")


def _slots(obj: object) -> dict[str, object]:
    """Every slot of ``obj``'s class and its bases, set or not (``...`` when unset)."""
    names = [name for cls in type(obj).__mro__ for name in getattr(cls, "__slots__", ())]
    assert "__dict__" not in names
    return {name: getattr(obj, name, ...) for name in names}


def _same(made: object, expected: object) -> None:
    assert type(made) is type(expected)
    assert _slots(made) == _slots(expected)
    assert gc.is_tracked(made) == gc.is_tracked(expected)


A, B, C, D, E = (object() for _ in range(5))

CASES: list[tuple[Callable[..., Any], type, list[tuple[object, ...]]]] = [
    (new_request_info, RequestInfo, [(A,), (A, B), (A, B, C), (A, B, C, D), (A, B, C, D, E)]),
    (new_environ_headers, EnvironHeaders, [(A,)]),
    (new_headers, Headers, [(A,)]),
]


@pytest.mark.parametrize(("make", "cls", "arities"), CASES)
def test_each_maker_makes_what_its_class_makes(
    make: Callable[..., Any], cls: type, arities: list[tuple[object, ...]]
) -> None:
    for args in arities:
        _same(make(*args), cls(*args))


def test_request_info_from_a_maker_is_the_dataclass() -> None:
    made = new_request_info("1.2.3.4", [("host", "a")], "POST", "/p", "a")
    assert made == RequestInfo("1.2.3.4", [("host", "a")], "POST", "/p", "a")
    made.host = "b"  # not frozen, as before
    assert made.host == "b"


@pytest.mark.parametrize(("make", "cls", "arities"), CASES)
def test_other_calls_are_the_class_s(
    make: Callable[..., Any], cls: type, arities: list[tuple[object, ...]]
) -> None:
    longest = arities[-1]
    for args in ((), (*longest, A)):
        with pytest.raises(TypeError) as expected:
            cls(*args)
        with pytest.raises(TypeError) as got:
            make(*args)
        assert str(got.value) == str(expected.value)
    keyword = {RequestInfo: "peer", EnvironHeaders: "environ", Headers: "raw"}[cls]
    _same(make(**{keyword: A}), cls(**{keyword: A}))


class _Plain:
    __slots__ = ("a", "b", "c")

    def __init__(self, a: object, b: object = "b") -> None:
        self.a = a
        self.b = b
        self.c = None


@native
def test_a_patched_init_is_called() -> None:
    class Patched(_Plain):
        __slots__ = ()

    make = maker(Patched, ("a", "b"), ("b",), (("c", None),))
    _same(make(A), Patched(A))
    calls: list[object] = []

    def init(self: Patched, a: object, b: object = "b") -> None:
        calls.append(a)
        _Plain.__init__(self, a, b)

    Patched.__init__ = init  # type: ignore[method-assign]
    _same(make(A), Patched(A))
    assert calls == [A, A]
    del Patched.__init__  # back to _Plain's: made in C again
    _same(make(B), Patched(B))
    assert calls == [A, A]


@native
def test_a_patched_base_is_seen() -> None:
    class Base:
        __slots__ = ("a",)

        def __init__(self, a: object) -> None:
            self.a = a

    class Child(Base):
        __slots__ = ()

    make = maker(Child, ("a",))
    _same(make(A), Child(A))
    seen: list[object] = []
    original = Base.__init__

    def init(self: Base, a: object) -> None:
        seen.append(a)
        original(self, a)

    Base.__init__ = init  # type: ignore[method-assign]
    make(B)
    assert seen == [B]


@native
def test_classes_it_cannot_make_are_called() -> None:
    made: list[str] = []

    class WithNew(_Plain):
        __slots__ = ()

        def __new__(cls, *args: object, **kwargs: object) -> WithNew:
            made.append("new")
            return super().__new__(cls)

    class WithSetattr(_Plain):
        __slots__ = ()

        def __setattr__(self, name: str, value: object) -> None:
            made.append(name)
            super().__setattr__(name, value)

    class WithDict:
        def __init__(self, a: object) -> None:
            self.a = a

    maker(WithNew, ("a", "b"), ("b",), (("c", None),))(A)
    maker(WithSetattr, ("a", "b"), ("b",), (("c", None),))(A)
    assert made == ["new", "a", "b", "c"]
    got = maker(WithDict, ("a",))(A)
    assert type(got) is WithDict and got.a is A
    missing = maker(_Plain, ("a", "nope"), ("b",), ())(A)
    assert _slots(missing) == {"a": A, "b": "b", "c": None}  # the class was called


@native
def test_bad_makers_are_refused() -> None:
    from geofence.hotpath import _hotpath

    with pytest.raises(TypeError):
        _hotpath.Maker(_Plain, ("a",), ("x", "y"), ())  # more defaults than parameters
    with pytest.raises(TypeError):
        _hotpath.Maker(_Plain, (1,), (), ())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _hotpath.Maker(_Plain, ("a",), (), (("c",),))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _hotpath.Maker("not a class", ("a",), (), ())  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        _hotpath.Maker(cls=_Plain)  # type: ignore[call-arg]
    assert "RequestInfo" in repr(new_request_info)


@native
def test_a_maker_in_a_cycle_is_collected() -> None:
    import weakref

    class Holder:
        __slots__ = ("__weakref__", "a")

        def __init__(self, a: object) -> None:
            self.a = a

    Holder.make = maker(Holder, ("a",))  # type: ignore[attr-defined]  # class -> maker -> class
    ref = weakref.ref(Holder)
    del Holder
    gc.collect()
    assert ref() is None

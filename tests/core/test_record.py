"""``geofence._record.record`` against ``dataclasses.dataclass``.

Each case is one class body, decorated once with ``@record`` and once with ``@dataclass``
with the same arguments; the two classes must behave the same to their users: the
``dataclasses`` functions (fields, replace, asdict, astuple, is_dataclass), ``__init__``'s
signature, repr, equality, hashing, frozenness, pickling, copying, slots and pattern matching.
Then every record type of the core is held to the same twin, made by ``dataclasses`` from its
own class body (``as_dataclass``).
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import inspect
import pickle
import weakref
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, InitVar, dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import pytest

import geofence
from geofence import _record
from geofence._record import as_dataclass

T = TypeVar("T")
LOADER = object()

# Pickle finds a class by its module and qualified name: each case's two classes are stored
# here under the names they were made with.
_MADE: dict[str, type] = {}


def _make(body: Callable[[Any, Any], type], decorator: Any, tag: str) -> type:
    made: type = body(decorator, _record.field if tag == "record" else field)
    name = f"{made.__name__}_{tag}"
    made.__name__ = made.__qualname__ = name
    globals()[name] = made
    _MADE[name] = made
    return made


def plain(dec: Any, fld: Any) -> type:
    @dec
    class Plain:
        name: str
        count: int = 0
        tags: tuple[str, ...] = ()

    return Plain


def frozen(dec: Any, fld: Any) -> type:
    @dec(frozen=True)
    class Frozen:
        status: int
        body: bytes = b""
        options: Mapping[str, str] = fld(default_factory=dict)

    return Frozen


def frozen_slots(dec: Any, fld: Any) -> type:
    @dec(frozen=True, slots=True)
    class FrozenSlots:
        """A documented record."""

        code: str
        limit: int | None = None
        kinds = ("a", "b")  # no annotation: a class attribute

        @property
        def upper(self) -> str:
            return self.code.upper()

    return FrozenSlots


def mutable_slots(dec: Any, fld: Any) -> type:
    @dec(slots=True)
    class MutableSlots:
        peer: str | None
        headers: tuple[tuple[str, str], ...] = ()
        method: str = "GET"

    return MutableSlots


def keyword_only(dec: Any, fld: Any) -> type:
    @dec(frozen=True)
    class KeywordOnly:
        mode: str = "enforce"
        items: list[int] = fld(default_factory=list)
        _: KW_ONLY
        made_by: InitVar[object] = None
        strict: bool = False

        def __post_init__(self, made_by: object) -> None:
            if made_by is not LOADER:
                raise TypeError("made by the loader only")

    return KeywordOnly


def own_methods(dec: Any, fld: Any) -> type:
    @dec(frozen=True)
    class OwnMethods:
        secret: str
        shown: str = "x"

        def __repr__(self) -> str:
            return f"OwnMethods(shown={self.shown!r})"

        def __hash__(self) -> int:
            return 7

    return OwnMethods


def own_eq(dec: Any, fld: Any) -> type:
    @dec(frozen=True)
    class OwnEq:  # noqa: PLW1641 - the decorators make its __hash__
        value: int

        def __eq__(self, other: object) -> bool:
            return isinstance(other, OwnEq) and abs(self.value - other.value) < 2

    return OwnEq


def generic(dec: Any, fld: Any) -> type:
    @dec(frozen=True)
    class Box(Generic[T]):
        name: str
        parse: Callable[[str], T] | None = None

    return Box


Arguments = list[tuple[tuple[Any, ...], dict[str, Any]]]
CASES: dict[str, tuple[Callable[[Any, Any], type], Arguments]] = {
    "plain": (plain, [(("a",), {}), (("b", 2, ("x", "y")), {}), ((), {"name": "c", "count": 3})]),
    "frozen": (frozen, [((200,), {}), ((451, b"no"), {"options": {"k": "v"}})]),
    "frozen_slots": (frozen_slots, [(("BLOCKED",), {}), (("x", 3), {})]),
    "mutable_slots": (mutable_slots, [(("1.2.3.4",), {}), ((None, (("a", "b"),), "POST"), {})]),
    "keyword_only": (
        keyword_only,
        [((), {"made_by": LOADER}), (("report", [1]), {"made_by": LOADER, "strict": True})],
    ),
    "own_methods": (own_methods, [(("s",), {}), (("s", "y"), {})]),
    "own_eq": (own_eq, [((1,), {}), ((5,), {})]),
    "generic": (generic, [(("n",), {}), (("n", int), {})]),
}


@pytest.fixture(params=sorted(CASES))
def pair(request: pytest.FixtureRequest) -> tuple[type, type, list[Any], list[Any]]:
    body, arguments = CASES[request.param]
    ours = _make(body, _record.record, "record")
    theirs = _make(body, dataclass, "dataclass")
    made = [(ours(*a, **k), theirs(*a, **k)) for a, k in arguments]
    return ours, theirs, [m[0] for m in made], [m[1] for m in made]


def _described(cls: type) -> list[tuple[Any, ...]]:
    return [
        (
            f.name,
            f.type,
            f.default,
            f.default_factory,
            f.init,
            f.repr,
            f.compare,
            f.hash,
            f.kw_only,
            f._field_type,  # type: ignore[attr-defined]
        )
        for f in cls.__dataclass_fields__.values()  # type: ignore[attr-defined]
    ]


def _renamed(text: str, ours: type, theirs: type) -> str:
    return text.replace(theirs.__qualname__, ours.__qualname__)


def test_the_dataclasses_functions_see_the_same_class(pair: Any) -> None:
    ours, theirs, _, _ = pair
    assert dataclasses.is_dataclass(ours)
    assert _described(ours) == _described(theirs)
    names = [f.name for f in dataclasses.fields(ours)]
    assert names == [f.name for f in dataclasses.fields(theirs)]
    assert repr(ours.__dataclass_params__) == repr(theirs.__dataclass_params__)
    assert ours.__match_args__ == theirs.__match_args__


def test_init_takes_the_same_parameters(pair: Any) -> None:
    ours, theirs, _, _ = pair
    mine = inspect.signature(ours).parameters
    real = inspect.signature(theirs).parameters
    assert [(p.name, p.kind) for p in mine.values()] == [(p.name, p.kind) for p in real.values()]
    for name, parameter in real.items():
        if parameter.default is not dataclasses.MISSING and type(parameter.default).__name__ != (
            "_HAS_DEFAULT_FACTORY_CLASS"
        ):
            assert mine[name].default == parameter.default
    with pytest.raises(TypeError) as raised:
        ours(1, 2, 3, 4, 5, 6)
    with pytest.raises(TypeError):
        theirs(1, 2, 3, 4, 5, 6)
    assert "positional argument" in str(raised.value)


def test_instances_show_compare_and_hash_the_same(pair: Any) -> None:
    ours, theirs, mine, real = pair
    for one, other in zip(mine, real, strict=True):
        assert repr(one) == _renamed(repr(other), ours, theirs)
        assert dataclasses.asdict(one) == dataclasses.asdict(other)
        assert dataclasses.astuple(one) == dataclasses.astuple(other)
        assert one != other  # instances of two classes never compare equal
        if theirs.__hash__ is None:
            assert ours.__hash__ is None
            with pytest.raises(TypeError, match="unhashable"):
                hash(one)
        else:
            assert _hashed(one) == _hashed(other)
    assert [a == b for a in mine for b in mine] == [a == b for a in real for b in real]


def _hashed(value: object) -> object:
    try:
        return hash(value)
    except TypeError as error:  # a field's value is unhashable: the same error
        return str(error)


def test_frozen_records_refuse_changes_the_same_way(pair: Any) -> None:
    _, theirs, mine, real = pair
    name = dataclasses.fields(theirs)[0].name
    for one, other in zip(mine, real, strict=True):
        for target in (one, other):
            if theirs.__dataclass_params__.frozen:
                with pytest.raises(dataclasses.FrozenInstanceError, match=f"'{name}'"):
                    setattr(target, name, 1)
                with pytest.raises(dataclasses.FrozenInstanceError, match=f"'{name}'"):
                    delattr(target, name)
            else:
                setattr(target, name, "changed")
                assert getattr(target, name) == "changed"


def test_a_frozen_record_refuses_new_attributes(pair: Any) -> None:
    # Not compared: CPython 3.12's frozen dataclass with slots raises TypeError from its
    # __setattr__'s super() here (it still names the class it replaced).
    ours, _, mine, _ = pair
    if ours.__dataclass_params__.frozen:
        with pytest.raises(dataclasses.FrozenInstanceError, match="'other'"):
            mine[0].other = 1


def test_slots_and_weak_references_are_the_same(pair: Any) -> None:
    ours, theirs, mine, real = pair
    assert ("__slots__" in vars(ours)) is ("__slots__" in vars(theirs))
    assert getattr(ours, "__slots__", None) == getattr(theirs, "__slots__", None)
    for one, other in zip(mine, real, strict=True):
        assert hasattr(one, "__dict__") is hasattr(other, "__dict__")
        try:
            weakref.ref(other)
        except TypeError:
            with pytest.raises(TypeError):
                weakref.ref(one)
        else:
            weakref.ref(one)
    assert ours.__doc__ is not None or theirs.__doc__ is not None
    assert vars(ours).get("kinds") == vars(theirs).get("kinds")


def test_replace_copy_and_pickle_keep_the_value(pair: Any) -> None:
    ours, theirs, mine, real = pair
    for one, other in zip(mine, real, strict=True):
        for target in (one, other):
            assert copy.copy(target) == target
            assert copy.deepcopy(target) == target
            assert pickle.loads(pickle.dumps(target)) == target
        try:
            changed = dataclasses.replace(other)
        except (TypeError, ValueError) as error:  # an InitVar without a default, say
            with pytest.raises(type(error), match=str(error).replace(theirs.__name__, ".*")):
                dataclasses.replace(one)
        else:
            assert repr(dataclasses.replace(one)) == _renamed(repr(changed), ours, theirs)


def test_pattern_matching_binds_the_same_fields(pair: Any) -> None:
    ours, _, mine, real = pair
    for one, other in zip(mine, real, strict=True):
        names = type(other).__match_args__
        if not names:
            continue
        match one:
            case ours(value):
                assert value == getattr(other, names[0])
            case _:
                pytest.fail("no match")


# -- what @record refuses rather than do differently from @dataclass --------------------------


def test_a_record_cannot_inherit_from_a_record() -> None:
    @_record.record(frozen=True)
    class Base:
        a: int

    with pytest.raises(TypeError, match="cannot inherit from a record"):

        @_record.record(frozen=True)
        class Child(Base):
            b: int


def test_a_mutable_default_needs_a_factory() -> None:
    with pytest.raises(TypeError, match="needs a default_factory"):

        @_record.record
        class Bad:
            items: list[int] = []  # noqa: RUF012


def test_a_frozen_record_cannot_define_setattr() -> None:
    with pytest.raises(TypeError, match="cannot define __setattr__"):

        @_record.record(frozen=True)
        class Bad:
            a: int

            def __setattr__(self, name: str, value: object) -> None:
                pass


def test_a_field_without_a_default_after_one_with_a_default_is_an_error() -> None:
    with pytest.raises(SyntaxError):

        @_record.record
        class Bad:
            a: int = 0
            b: int


# -- every record of the core ------------------------------------------------------------------


def _core_records() -> list[type]:
    """Every class made with ``@record`` in a module that uses it."""
    found: dict[str, type] = {}
    root = Path(geofence.__file__).parent
    for path in sorted(root.rglob("*.py")):
        if "@record" not in path.read_text(encoding="utf-8") or path.name == "_record.py":
            continue
        name = ".".join(("geofence", *path.relative_to(root).with_suffix("").parts))
        for value in vars(importlib.import_module(name)).values():
            if isinstance(value, type) and "__record__" in vars(value):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return [found[name] for name in sorted(found)]


CORE = _core_records()


def test_the_core_records_are_found() -> None:
    names = {cls.__name__ for cls in CORE}
    assert {"RequestInfo", "Event", "Policy", "Response", "Rule", "GeoRecord"} <= names
    assert len(CORE) >= 19


@pytest.mark.parametrize("cls", CORE, ids=lambda cls: cls.__qualname__)
def test_a_core_record_is_the_dataclass_its_body_makes(cls: type) -> None:
    twin = as_dataclass(cls)
    assert dataclasses.is_dataclass(cls)
    assert _described(cls) == _described(twin)
    assert cls.__match_args__ == twin.__match_args__  # type: ignore[attr-defined]
    mine = inspect.signature(cls).parameters
    real = inspect.signature(twin).parameters
    assert [(p.name, p.kind) for p in mine.values()] == [(p.name, p.kind) for p in real.values()]
    assert ("__slots__" in vars(cls)) is ("__slots__" in vars(twin))
    assert (cls.__hash__ is None) is (twin.__hash__ is None)


def test_the_public_types_stay_dataclasses_to_their_users() -> None:
    info = geofence.RequestInfo(peer="192.0.2.1", headers=(("Host", "h"),))
    changed = dataclasses.replace(info, path="/api")
    assert changed == geofence.RequestInfo("192.0.2.1", (("Host", "h"),), "GET", "/api", "")
    assert dataclasses.asdict(changed)["path"] == "/api"
    policy = geofence.load_policy({})
    with pytest.raises((TypeError, ValueError)):
        dataclasses.replace(policy, mode="off")
    with pytest.raises(TypeError, match="load_policy"):
        type(policy)()
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.mode = "off"  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(info)) == info

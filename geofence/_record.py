"""``@record``: the core's dataclasses, made without importing :mod:`dataclasses`.

Why: ``dataclasses`` imports ``inspect``, and with it ``ast``, ``dis`` and ``tokenize``: 1.2 MB
of the 7.3 MB that ``import geofence`` and an engine on the embedded default added to a fresh
process (issue 15 asks for at most 6 MB). The methods a record needs are a few lines each.

The types stay dataclasses to anyone who asks. ``__dataclass_fields__`` and
``__dataclass_params__`` are made by ``dataclasses`` itself the first time one is read (by
``dataclasses.fields``, ``replace``, ``asdict``, ``is_dataclass``, a serializer...), so those
see the same fields, defaults and parameters as if the class had been decorated with
``@dataclass``. Assigning to a frozen record raises ``dataclasses.FrozenInstanceError``. Type
checkers see ``dataclasses.dataclass`` (the ``TYPE_CHECKING`` branch below).

What ``@record`` supports is what the core uses: ``frozen``, ``slots``, defaults and
``field(default_factory=...)``, a ``KW_ONLY`` marker, ``InitVar`` parameters passed to
``__post_init__``, and methods the class defines itself (never replaced). No inheritance
between records, no ``order``, no per-field options: it raises ``TypeError`` rather than
behave differently from ``@dataclass``. ``tests/test_record.py`` holds each record type to
a real dataclass made from the same class body.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["KW_ONLY", "InitVar", "as_dataclass", "field", "record"]

if TYPE_CHECKING:
    from dataclasses import KW_ONLY, InitVar, field
    from dataclasses import dataclass as record
else:

    class KW_ONLY:
        """Marks the fields after it as keyword-only (only ever read as an annotation)."""

    class InitVar:
        """An ``__init__`` parameter that is no field (only ever read as an annotation)."""

    def field(*, default_factory: Any) -> Any:
        return _Factory(default_factory)

    def record(cls: Any = None, /, *, frozen: bool = False, slots: bool = False) -> Any:
        def make(cls: type) -> type:
            return _make(cls, frozen, slots)

        return make if cls is None else make(cls)


_NO_DEFAULT = object()
# The default of a field that has a default_factory, as dataclasses' own __init__ does.
_FROM_FACTORY = object()


class _Factory:
    __slots__ = ("factory",)

    def __init__(self, factory: Any) -> None:
        self.factory = factory


class Spec:
    """One class's fields as written: what ``__record__`` holds, and what the lazy dataclass
    fields are made from."""

    __slots__ = ("annotations", "defaults", "frozen", "init_vars", "keyword_only", "names", "slots")

    def __init__(self, cls: type, frozen: bool, slots: bool) -> None:
        self.frozen = frozen
        self.slots = slots
        self.names: list[str] = []
        self.keyword_only: set[str] = set()  # after the KW_ONLY marker
        self.init_vars: set[str] = set()  # __init__ parameters that are no attributes
        self.annotations: dict[str, str] = {}
        self.defaults: dict[str, Any] = {}
        for base in cls.__mro__[1:]:
            if "__record__" in base.__dict__ or "__dataclass_fields__" in base.__dict__:
                raise TypeError(f"@record: {cls.__name__} cannot inherit from a record")
        keyword_only = False
        # Only this class's own annotations: a record inherits no fields.
        written = cls.__dict__.get("__annotations__", {})  # noqa: RUF063
        for name, annotation in written.items():
            if not isinstance(annotation, str):
                raise TypeError(
                    f"@record: {cls.__name__} needs `from __future__ import annotations`"
                )
            head = annotation.split("[", 1)[0].strip()
            if head in ("ClassVar", "typing.ClassVar"):
                continue
            if head == "KW_ONLY":
                keyword_only = True
                continue
            self.names.append(name)
            self.annotations[name] = annotation
            if keyword_only:
                self.keyword_only.add(name)
            if head == "InitVar":
                self.init_vars.add(name)
            default = cls.__dict__.get(name, _NO_DEFAULT)
            if type(default) in (list, dict, set):
                raise TypeError(f"@record: {cls.__name__}.{name} needs a default_factory")
            self.defaults[name] = default

    @property
    def stored(self) -> list[str]:
        """The names that are attributes (an InitVar is only an ``__init__`` parameter)."""
        return [name for name in self.names if name not in self.init_vars]


def _make(cls: Any, frozen: bool, slots: bool) -> Any:
    spec = Spec(cls, frozen, slots)
    stored = spec.stored
    written = cls.__dict__
    # A class body with __eq__ and no __hash__ gets __hash__ = None from Python: not its own.
    own_hash = "__hash__" in written and not (written["__hash__"] is None and "__eq__" in written)
    if slots:
        cls = _with_slots(cls, stored)
    else:
        for name in spec.names:
            if isinstance(cls.__dict__.get(name), _Factory):
                delattr(cls, name)  # as dataclasses does: the instance always has its own
    namespace: dict[str, Any] = {"_FROM_FACTORY": _FROM_FACTORY, "_set": object.__setattr__}
    source = [_init(cls, spec, namespace), _repr(stored), _eq(stored)]
    if frozen:
        source.append(_hash(stored))
    exec("\n".join(source), namespace)  # noqa: S102 - source made here from field names
    for method in ("__init__", "__repr__", "__eq__"):
        if method not in cls.__dict__:
            _attach(cls, namespace[method])
    if not own_hash:
        if frozen:
            _attach(cls, namespace["__hash__"])
        else:
            cls.__hash__ = None  # mutable and compared by value: unhashable
    if frozen:
        _freeze(cls, stored)
    if slots and frozen:
        _pickle_slots(cls, stored)
    match_args = tuple(n for n in spec.names if n not in spec.keyword_only)
    setattr(cls, "__match_args__", match_args)  # noqa: B010 - mypy refuses the assignment
    cls.__record__ = spec
    cls.__dataclass_fields__ = _AsDataclass("__dataclass_fields__")
    cls.__dataclass_params__ = _AsDataclass("__dataclass_params__")
    return cls


def _attach(cls: type, function: Any) -> None:
    function.__qualname__ = f"{cls.__qualname__}.{function.__name__}"
    setattr(cls, function.__name__, function)


def _with_slots(cls: type, stored: list[str]) -> type:
    body = dict(cls.__dict__)
    for name in stored:
        body.pop(name, None)
    body.pop("__dict__", None)
    body.pop("__weakref__", None)
    body["__slots__"] = tuple(stored)
    made = type(cls)(cls.__name__, cls.__bases__, body)
    made.__qualname__ = cls.__qualname__
    return made


def _init(cls: type, spec: Spec, namespace: dict[str, Any]) -> str:
    setter = "_set(self, {0!r}, {1})" if spec.frozen else "self.{0} = {1}"
    parameters: list[str] = []
    keyword_only: list[str] = []
    lines: list[str] = []
    for name in spec.names:
        default = spec.defaults[name]
        value = name
        if isinstance(default, _Factory):
            namespace[f"_factory_{name}"] = default.factory
            parameter = f"{name}=_FROM_FACTORY"
            value = f"_factory_{name}() if {name} is _FROM_FACTORY else {name}"
        elif default is _NO_DEFAULT:
            parameter = name
        else:
            namespace[f"_default_{name}"] = default
            parameter = f"{name}=_default_{name}"
        (keyword_only if name in spec.keyword_only else parameters).append(parameter)
        if name not in spec.init_vars:
            lines.append(setter.format(name, value))
    if hasattr(cls, "__post_init__"):
        passed = [name for name in spec.names if name in spec.init_vars]
        lines.append(f"self.__post_init__({', '.join(passed)})")
    if keyword_only:
        parameters += ["*", *keyword_only]
    body = "\n    ".join(lines or ["pass"])
    return f"def __init__(self, {', '.join(parameters)}):\n    {body}\n"


def _repr(stored: list[str]) -> str:
    shown = ", ".join(f"{name}={{self.{name}!r}}" for name in stored)
    return f"def __repr__(self):\n    return f'{{type(self).__qualname__}}({shown})'\n"


def _values(stored: list[str], owner: str) -> str:
    return "(" + "".join(f"{owner}.{name}," for name in stored) + ")"


def _eq(stored: list[str]) -> str:
    return (
        "def __eq__(self, other):\n"
        "    if other.__class__ is self.__class__:\n"
        f"        return {_values(stored, 'self')} == {_values(stored, 'other')}\n"
        "    return NotImplemented\n"
    )


def _hash(stored: list[str]) -> str:
    return f"def __hash__(self):\n    return hash({_values(stored, 'self')})\n"


def _frozen_error(name: str) -> AttributeError:
    import dataclasses  # only on this programming error

    return dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")


def _freeze(cls: Any, stored: list[str]) -> None:
    if "__setattr__" in cls.__dict__ or "__delattr__" in cls.__dict__:
        raise TypeError(f"@record: frozen {cls.__name__} cannot define __setattr__/__delattr__")
    names = frozenset(stored)

    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is cls or name in names:
            raise _frozen_error(name)
        super(cls, self).__setattr__(name, value)

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in names:
            raise _frozen_error(name)
        super(cls, self).__delattr__(name)

    _attach(cls, __setattr__)
    _attach(cls, __delattr__)


def _pickle_slots(cls: type, stored: list[str]) -> None:
    # A frozen instance with slots has no __dict__ for pickle to fill, and refuses setattr.
    def __getstate__(self: Any) -> list[Any]:
        return [getattr(self, name) for name in stored]

    def __setstate__(self: Any, state: list[Any]) -> None:
        for name, value in zip(stored, state, strict=True):
            object.__setattr__(self, name, value)

    _attach(cls, __getstate__)
    _attach(cls, __setstate__)


class _AsDataclass:
    """Reads as ``dataclasses``' own description of the record, made on the first read and then
    stored on the class in place of this descriptor."""

    __slots__ = ("attribute",)

    def __init__(self, attribute: str) -> None:
        self.attribute = attribute

    def __get__(self, instance: object, owner: type) -> Any:
        made = as_dataclass(owner)
        for attribute in ("__dataclass_fields__", "__dataclass_params__"):
            setattr(owner, attribute, getattr(made, attribute))
        return getattr(made, self.attribute)


def as_dataclass(cls: type) -> Any:
    """A real dataclass made from the record's class body: the twin whose fields it shows."""
    import dataclasses

    spec: Spec = cls.__dict__["__record__"]
    annotations: dict[str, Any] = {}
    body: dict[str, Any] = {"__module__": cls.__module__, "__qualname__": cls.__qualname__}
    for name in spec.names:
        if name in spec.keyword_only and dataclasses.KW_ONLY not in annotations.values():
            annotations["_"] = dataclasses.KW_ONLY
        # The twin's module namespace is not searched for InitVar: say it with the object.
        written = spec.annotations[name]
        annotations[name] = dataclasses.InitVar(object) if name in spec.init_vars else written
        default = spec.defaults[name]
        if isinstance(default, _Factory):
            body[name] = dataclasses.field(default_factory=default.factory)
        elif default is not _NO_DEFAULT:
            body[name] = default
    body["__annotations__"] = annotations
    decorate = dataclasses.dataclass(frozen=spec.frozen, slots=spec.slots)
    twin: Any = decorate(type(cls.__name__, (), body))
    for name, described in twin.__dataclass_fields__.items():
        if name in spec.annotations:
            described.type = spec.annotations[name]  # the text, as @dataclass would show it
    return twin

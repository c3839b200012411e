"""geofence.hotpath._native.ref: a decision's reference (geofence/_refs.py) in C.

The rule it must keep: the same reference as the Python function for every input, which it
calls itself for anything but str and None (and a digest that is not 8 bytes). Checked on
hand-picked cases and on seeded fuzz; tests/core/test_refs.py checks references through the
engine on both builds.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from geofence._refs import _PROCESS_KEY, LENGTH, Refs, _make, blake2b
from geofence.hotpath import NATIVE

pytestmark = pytest.mark.skipif(
    NATIVE is None,
    reason="geofence.hotpath._native is not loaded (not built, or GEOFENCE_PURE_PYTHON): "
    "ref() is the compiled path only",
)

KEYED = blake2b(digest_size=8, key=b"k" * 16)


def _both(*args: Any, keyed: Any = KEYED) -> str:
    assert NATIVE is not None
    expected = _make(keyed, *args)
    got = NATIVE.ref(_make, keyed, *args)
    assert got == expected, args
    assert type(got) is str and len(got) == LENGTH
    return got


def test_refs_use_it() -> None:
    refs = Refs(b"k" * 16)
    assert getattr(refs.make, "func", None) is NATIVE.ref  # type: ignore[union-attr]
    assert refs.make("203.0.113.7", "cn", "rule") == _make(KEYED, "203.0.113.7", "cn", "rule")
    assert Refs().make("1.2.3.4", None, "db_error") == _make(
        blake2b(digest_size=8, key=_PROCESS_KEY), "1.2.3.4", None, "db_error"
    )


@pytest.mark.parametrize(
    "args",
    [
        ("203.0.113.7", "cn", "rule"),
        ("203.0.113.7", "cn", "rule", None),
        ("203.0.113.7", "cn", "rule", "org_a"),
        ("2001:db8::1", None, "db_error"),
        (None, None, "unresolved_client", None),
        ("", "", "", ""),  # empty parts hash as "-", as `x or "-"` makes them (reason as "")
        ("1.2.3.4", "règle-ü", "rule", "組織"),
        ("1.2.3.4", "a\x00b", "rule", "c"),
    ],
)
def test_hand_picked(args: tuple[Any, ...]) -> None:
    _both(*args)


class _Str(str):
    __slots__ = ()

    def __format__(self, spec: str) -> str:
        return "formatted"


@pytest.mark.parametrize(
    "args",
    [
        (_Str("1.2.3.4"), "cn", "rule"),
        ("1.2.3.4", _Str("cn"), "rule"),
        ("1.2.3.4", "cn", _Str("rule")),
        ("1.2.3.4", "cn", "rule", _Str("acct")),
        (5, "cn", "rule"),
        ("1.2.3.4", "cn", None),  # f"{None}" is "None": the Python function writes it
        ("1.2.3.4", "cn", 7, None),
    ],
)
def test_other_types_are_python_s(args: tuple[Any, ...]) -> None:
    _both(*args)


def test_a_lone_surrogate_raises_as_python_does() -> None:
    assert NATIVE is not None
    for args in (("\ud800", "cn", "rule"), ("1.2.3.4", "cn", "rule", "\udfff")):
        with pytest.raises(UnicodeEncodeError):
            _make(KEYED, *args)
        with pytest.raises(UnicodeEncodeError):
            NATIVE.ref(_make, KEYED, *args)


def test_another_digest_size_is_python_s() -> None:
    # Refs always hashes to 8 bytes; another size is the Python function's to answer (which
    # fails on it: the reference is made for 8 bytes).
    wide = blake2b(digest_size=16, key=b"k" * 16)
    assert NATIVE is not None
    with pytest.raises(IndexError):
        _make(wide, "1.2.3.4", "cn", "rule")
    with pytest.raises(IndexError):
        NATIVE.ref(_make, wide, "1.2.3.4", "cn", "rule")


def test_the_key_state_is_not_changed() -> None:
    keyed = blake2b(digest_size=8, key=b"j" * 16)
    before = keyed.copy().digest()
    _both("1.2.3.4", "cn", "rule", keyed=keyed)
    assert keyed.copy().digest() == before


def test_wrong_calls_raise() -> None:
    assert NATIVE is not None
    with pytest.raises(TypeError):
        NATIVE.ref(_make, KEYED, "1.2.3.4", "cn")
    with pytest.raises(TypeError):
        NATIVE.ref(_make, KEYED, "1.2.3.4", "cn", "rule", None, "extra")
    with pytest.raises(AttributeError):
        NATIVE.ref(_make, object(), "1.2.3.4", "cn", "rule")


def test_seeded_fuzz_agrees_with_python() -> None:
    rng = random.Random(20261205)
    alphabet = "0123456789abcdef.:-_ éü組\x00"

    def text() -> str | None:
        roll = rng.random()
        if roll < 0.15:
            return None
        if roll < 0.2:
            return ""
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 40)))

    for _ in range(5_000):
        reason = text() or "rule"
        key = bytes(rng.randrange(256) for _ in range(rng.choice((0, 16, 32))))
        keyed = blake2b(digest_size=8, key=key)
        _both(text(), text(), reason, text(), keyed=keyed)

"""geofence.hotpath._native.header_line: forwarded_line() of geofence/http/_asgi.py in C.

The rule it must keep: for every input, the same answer as the Python function (which it
calls itself for anything but lists or tuples of bytes pairs). Checked on hand-picked cases,
and on seeded fuzz over names, cases, duplicates and odd items. (The gate that reads it behind
a trusted proxy is tested on both builds in tests/core/test_proxied_adapters.py.)
"""

from __future__ import annotations

import random
from functools import partial
from typing import Any

import pytest

from geofence.hotpath import NATIVE
from geofence.http import _asgi
from geofence.http._asgi import _forwarded_line, forwarded_line

pytestmark = pytest.mark.skipif(
    NATIVE is None,
    reason="geofence.hotpath._native is not loaded (not built, or GEOFENCE_PURE_PYTHON): "
    "header_line() is the compiled path only",
)

NAME = b"x-forwarded-for"


def _both(raw: Any, name: Any = NAME) -> str | None:
    """header_line's answer, asserted equal to the Python function's."""
    assert NATIVE is not None
    expected = _forwarded_line(raw, name)
    got: str | None = NATIVE.header_line(_forwarded_line, raw, name)
    assert got == expected, (raw, name)
    assert type(got) is type(expected)
    return got


def test_the_gate_reads_the_header_through_it() -> None:
    assert isinstance(_asgi.forwarded_line, partial)
    assert forwarded_line([(NAME, b"1.2.3.4")], NAME) == "1.2.3.4"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ([(b"host", b"a"), (NAME, b"1.2.3.4")], "1.2.3.4"),
        ([(b"X-Forwarded-For", b"1.2.3.4")], "1.2.3.4"),  # ASCII case folded
        ([(b"X-FORWARDED-FOR", b"1.2.3.4, 5.6.7.8")], "1.2.3.4, 5.6.7.8"),
        ([(NAME, b"1.2.3.4"), (NAME, b"5.6.7.8")], None),  # two lines: never one of them
        ([(NAME, b"1"), (b"X-Forwarded-For", b"2")], None),
        ([(b"host", b"a")], None),
        ([], None),
        ((), None),
        ([(NAME, b"caf\xe9")], "caf\xe9"),  # latin-1, as Headers decodes
        ([(NAME, b"")], ""),
        ([(b"x-forwarded-fo", b"1")], None),  # a prefix is not the name
        ([(b"x-forwarded-forr", b"1")], None),
        ([(b"x\xc0forwarded-for", b"1")], None),  # no folding beyond ASCII letters
        ([[NAME, b"9"]], "9"),  # pairs as lists, as some servers send them
        (((NAME, b"8"),), "8"),
    ],
)
def test_what_servers_send(raw: Any, expected: str | None) -> None:
    assert _both(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        None,
        [("not", "bytes")],
        [(NAME, "text value")],
        [(NAME, bytearray(b"7"))],  # not exact bytes: the Python function decides
        [(NAME, memoryview(b"6"))],
        [(NAME, b"1", b"extra")],
        [(NAME,)],
        [NAME],
        [(NAME, b"1"), None],
        [(NAME, b"1"), (NAME, b"2"), None],  # the second line answers before the odd item
        [None, (NAME, b"1")],
        {NAME: b"4"},
        b"bytes",
    ],
)
def test_odd_input_is_answered_as_python_answers_it(raw: Any) -> None:
    _both(raw)


def test_an_iterator_goes_to_python() -> None:
    assert NATIVE is not None
    raw = [(NAME, b"5")]
    assert NATIVE.header_line(_forwarded_line, iter(raw), NAME) == "5"
    assert NATIVE.header_line(_forwarded_line, (pair for pair in raw), NAME) == "5"


def test_odd_names_are_answered_as_python_answers_them() -> None:
    _both([(b"host", b"a")], "x-forwarded-for")
    _both([(b"host", b"a")], None)
    _both([(b"host", b"a")], bytearray(NAME))


class _Bytes(bytes):
    pass


def test_a_bytes_subclass_goes_to_python() -> None:
    _both([(_Bytes(NAME), b"1")])
    _both([(NAME, _Bytes(b"1"))])
    _both([(NAME, b"1")], _Bytes(NAME))


def test_seeded_fuzz_agrees_with_python() -> None:
    rng = random.Random(20261205)
    names = [NAME, b"X-Forwarded-For", b"x-real-ip", b"host", b"forwarded", b"X-FORWARDED-FOR"]
    for _ in range(20_000):
        raw: list[Any] = []
        for _ in range(rng.randrange(0, 9)):
            roll = rng.random()
            if roll < 0.7:
                key = rng.choice(names)
            elif roll < 0.9:
                key = bytes(rng.choice(b"xX-forwadedFORWAD\xc0\xe9") for _ in range(15))
            else:
                key = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 20)))
            value = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 12)))
            pair: Any = (key, value) if rng.random() < 0.8 else [key, value]
            if rng.random() < 0.02:
                odd = [None, (key,), (key, value, value), (key, value.decode("latin-1"))]
                pair = rng.choice(odd)
            raw.append(pair)
        container: Any = raw if rng.random() < 0.8 else tuple(raw)
        name = NAME if rng.random() < 0.9 else rng.choice(names).lower()
        _both(container, name)

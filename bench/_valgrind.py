"""Callgrind from inside Python: client requests without a C extension, and reading the dumps.

Callgrind counts the instructions a program executes, which do not change with the machine's
load. To count only a measured loop, the program under valgrind asks callgrind itself, with
the "client requests" of ``<valgrind/callgrind.h>``: start instrumenting (the process runs
uninstrumented, and fast, until then), zero the counters, switch collection on, run the loop,
switch it off and dump the counters to a file labelled with the measurement.

A client request is a fixed instruction sequence that does nothing on a real CPU and that
valgrind recognises. Python cannot emit it, and a C extension would need a compiler and the
valgrind headers on every machine, so the ten-instruction function below is written into an
executable page and called through ctypes. (Callgrind's ``--toggle-collect=<function>`` needs
a C function name; CPython 3.10-3.11 functions have none, and a libc function called through
ctypes is not seen as a call by callgrind, because libffi enters it with a jump.)

Outside valgrind every request is a no-op returning 0, so :func:`on_valgrind` tells whether the
process runs under valgrind.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import mmap
import platform
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

# amd64: %rdi is rotated by 3+13+61+51 = 128 bits (unchanged) - the "special instruction
# preamble" - then ``xchg %rbx,%rbx`` performs the request whose 6-word block %rax points to;
# the answer comes back in %rdx (the default, 0, when not under valgrind).
_AMD64 = bytes.fromhex(
    "53"  # push %rbx
    "4889f8"  # mov %rdi,%rax          the request block
    "31d2"  # xor %edx,%edx           default answer: 0
    "48c1c703"  # rol $3,%rdi
    "48c1c70d"  # rol $13,%rdi
    "48c1c73d"  # rol $61,%rdi
    "48c1c733"  # rol $51,%rdi
    "4887db"  # xchg %rbx,%rbx
    "4889d0"  # mov %rdx,%rax
    "5b"  # pop %rbx
    "c3"  # ret
)
RUNNING_ON_VALGRIND = 0x1001
_CALLGRIND = (ord("C") << 24) | (ord("T") << 16)
DUMP_STATS = _CALLGRIND + 0
ZERO_STATS = _CALLGRIND + 1
TOGGLE_COLLECT = _CALLGRIND + 2
DUMP_STATS_AT = _CALLGRIND + 3
START_INSTRUMENTATION = _CALLGRIND + 4
STOP_INSTRUMENTATION = _CALLGRIND + 5

_Block = ctypes.c_uint64 * 6


class _Requests:
    def __init__(self) -> None:
        machine = platform.machine().lower()
        if machine not in ("x86_64", "amd64"):
            # Other CPUs have their own sequence (valgrind.h); add it here when needed.
            raise RuntimeError(f"callgrind client requests: x86-64 only, not {machine!r}")
        prot = mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC
        self._page = mmap.mmap(-1, mmap.PAGESIZE, prot=prot)
        self._page.write(_AMD64)
        address = ctypes.addressof(ctypes.c_char.from_buffer(self._page))
        self._call = ctypes.CFUNCTYPE(ctypes.c_uint64, ctypes.c_void_p)(address)

    def __call__(self, request: int, *args: int) -> int:
        block = _Block(request, *args)
        return int(self._call(ctypes.addressof(block)))


_request: _Requests | None = None


def request(code: int, *args: int) -> int:
    global _request  # noqa: PLW0603 - one executable page per process, made on first use
    if _request is None:
        _request = _Requests()
    return _request(code, *args)


def on_valgrind() -> bool:
    return request(RUNNING_ON_VALGRIND) != 0


def start_instrumentation() -> None:
    request(START_INSTRUMENTATION)


def begin() -> None:
    """Zero the counters and switch collection on (run with ``--collect-atstart=no``)."""
    request(ZERO_STATS)
    request(TOGGLE_COLLECT)


def end(label: str) -> None:
    """Switch collection off and dump the counters since :func:`begin`, labelled."""
    request(TOGGLE_COLLECT)
    text = ctypes.create_string_buffer(label.encode())
    request(DUMP_STATS_AT, ctypes.addressof(text))


# -- the parent side: the command line and the dumps ------------------------------------------

OPTIONS = (
    "--tool=callgrind",
    "--instr-atstart=no",
    "--collect-atstart=no",
    "--dump-instr=no",
    "--dump-line=no",
)

_DESC = re.compile(r"^desc: Trigger: Client Request: (.*)$", re.MULTILINE)
_TOTALS = re.compile(r"^(?:totals|summary): (\d+)", re.MULTILINE)


def command(out_file: Path) -> list[str]:
    return ["valgrind", *OPTIONS, f"--callgrind-out-file={out_file}"]


def read_dumps(out_file: Path) -> dict[str, int]:
    """label -> instructions, from the dumps ``out_file.1``, ``.2``, ... in order."""
    found: dict[str, int] = {}
    dumps = sorted(
        out_file.parent.glob(out_file.name + ".*"), key=lambda p: int(p.suffix.lstrip("."))
    )
    for dump in dumps:
        text = dump.read_text(errors="replace")
        label, total = _DESC.search(text), _TOTALS.search(text)
        if label is None or total is None:
            continue
        found[label.group(1)] = int(total.group(1))
    return found


# A measurement runs its loop between begin() and end(): (begin, end) -> None.
Measured = Callable[[Callable[[], None], Callable[[], None]], None]


def loop(call: Callable[[Any], object], inputs: Sequence[Any]) -> Measured:
    """``call(item)`` for each of ``inputs``, between begin() and end(): the inputs are made
    before begin(), so that only the calls are counted."""

    def go(begin: Callable[[], None], end: Callable[[], None]) -> None:
        items = list(inputs)
        begin()
        for item in items:
            call(item)
        end()

    return go


def run_plans(plans: Sequence[tuple[str | None, Measured]]) -> None:
    """Start instrumenting, then run each plan in order: a warm-up (label None) or a measured
    loop, dumped under its label. The collector is off inside each loop, as in timeit: when
    it runs depends on what came before, and one collection more or less would move a figure
    by more than the differences looked for."""
    gc.collect()
    gc.freeze()
    start_instrumentation()

    def noop() -> None:
        pass

    for label, go in plans:
        gc.collect()
        gc.disable()
        if label is None:
            go(noop, noop)
        else:
            go(begin, functools.partial(end, label))
        gc.enable()

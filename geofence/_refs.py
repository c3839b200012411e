"""``decision.ref``: the short reference a blocked or warned person can quote to support.

A keyed hash of who was answered and why (client address, rule, reason, account), so that:
- the same client, rule and account get the same reference in one process (workers forked
  from one parent share its key), and a support desk finds the log line even when later
  repeats were not logged (see geofence._logs);
- the reference says nothing about the client: without the engine's random key, no one can
  test candidate addresses against it (a bare hash of an IPv4 address is 2**32 guesses away).
"""

from __future__ import annotations

import os
from functools import partial
from typing import Any, Protocol

from geofence.hotpath import NATIVE

try:
    # The very function hashlib.blake2b is (hashlib never takes BLAKE2 from OpenSSL), without
    # importing hashlib, which loads OpenSSL's libcrypto (~3.5 MB resident) into every process.
    from _blake2 import blake2b
except ImportError:  # a Python built without its own BLAKE2
    from hashlib import blake2b

# Crockford's base32: no I, L, O or U, so a reference read aloud or retyped survives.
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Every pair of characters, by the 10 bits they stand for: a reference is five lookups and one
# format, with no loop and no base64 module (which would cost a process ~0.2 MB).
_PAIRS = tuple(a + b for a in _ALPHABET for b in _ALPHABET)
LENGTH = 11  # "7K2MQ-X9PTW": 50 bits, two groups of five; every reference has this length
_PROCESS_KEY = os.urandom(16)


class _Keyed(Protocol):
    """A BLAKE2b state after its key block (``_blake2.blake2b``)."""

    def copy(self) -> Any: ...


def _make(
    keyed: _Keyed,
    client_ip: str | None,
    rule: str | None,
    reason: str,
    account: str | None = None,
    /,
) -> str:
    """The reference of these facts under the key ``keyed`` holds (the Python twin of
    ``geofence.hotpath._native.ref``)."""
    text = f"{client_ip or '-'}\x00{rule or '-'}\x00{reason}\x00{account or '-'}"
    # The state after the key block, copied for each reference: a copy costs a few hundred
    # instructions, hashing the key block again about 1,500.
    hashed = keyed.copy()
    hashed.update(text.encode())
    digest = hashed.digest()
    # The first 50 bits in base32, as base64.b32encode(digest)[:10] would give them, in
    # Crockford's alphabet: each group of five characters is 25 bits.
    bits = int.from_bytes(digest, "big") >> 14
    first, second = bits >> 25, bits & 0x1FFFFFF
    pairs, alphabet = _PAIRS, _ALPHABET
    return (
        f"{pairs[first >> 15]}{pairs[first >> 5 & 1023]}{alphabet[first & 31]}-"
        f"{pairs[second >> 15]}{pairs[second >> 5 & 1023]}{alphabet[second & 31]}"
    )


class _Make(Protocol):
    def __call__(
        self, client_ip: str | None, rule: str | None, reason: str, account: str | None = None, /
    ) -> str: ...


class Refs:
    """Makes references with one random key (by default the process's):
    ``refs.make(client_ip, rule, reason, account=None)``."""

    __slots__ = ("make",)

    def __init__(self, key: bytes | None = None) -> None:
        keyed = blake2b(digest_size=8, key=key if key is not None else _PROCESS_KEY)
        # Compiled, geofence.hotpath._native.ref does what _make does around the hash in C (a new
        # blocked client's reference: about 14,700 instructions in Python, 6,700 in C, most of
        # them the hash itself), and calls _make for anything unusual.
        self.make: _Make = (
            partial(_make, keyed) if NATIVE is None else partial(NATIVE.ref, _make, keyed)
        )

"""What a lookup answers, and how a raw MaxMind record becomes that answer.

The decoders trust nothing: a record of the wrong shape raises :class:`DatabaseError`, so a
damaged database gives ``db_error`` (handled by ``on_error``) rather than a wrong country.
"""

from __future__ import annotations

import re
from typing import Any, TypeGuard

from geofence import _iso3166 as iso
from geofence._errors import DatabaseError
from geofence._record import record


@record(frozen=True, slots=True)
class GeoRecord:
    found: bool  # False: the address is not in the database
    country: str | None  # ISO 3166-1 alpha-2; None for a record without a country
    subdivisions: tuple[str, ...] = ()  # full ISO 3166-2 codes, e.g. ("GB-ENG",)


NOT_FOUND = GeoRecord(False, None)
NO_COUNTRY = GeoRecord(True, None)
NO_FLAGS: frozenset[str] = frozenset()
# The ASN answer for an address the database has no number for. 0 rather than None: caches
# treat None as a miss. AS0 is reserved (RFC 7607), and the config refuses it.
NO_ASN = 0
MAX_ASN = 4_294_967_295

# An ISO 3166-2 code is the country code, "-", and one to three letters or digits.
_SUBDIVISION = re.compile(r"[A-Z0-9]{1,3}")
# Anonymous-IP record keys and the network types a rule's `anonymizers` names.
ANONYMOUS_FLAGS = (
    ("is_anonymous_vpn", "vpn"),
    ("is_tor_exit_node", "tor"),
    ("is_public_proxy", "public_proxy"),
    ("is_residential_proxy", "residential_proxy"),
    ("is_hosting_provider", "hosting"),
)


def iso_countries() -> frozenset[str]:
    """Every country code a record can carry: the list the config is checked against too."""
    return iso.countries()


def is_well_formed_country(code: object) -> TypeGuard[str]:
    """Two upper-case ASCII characters, a letter first: an ISO 3166-1 alpha-2 code or a
    pseudo-code of that shape ("EU", "AP", "XX", MaxMind's legacy "A1", "A2", "O1")."""
    return (
        isinstance(code, str)
        and len(code) == 2
        and code.isascii()
        and code[0].isupper()
        and (code[1].isupper() or code[1].isdigit())
    )


class RecordDecoder:
    """Turns raw records into shared, immutable answers (one object per distinct answer)."""

    def __init__(self) -> None:
        self._iso = iso.countries()
        self._records: dict[tuple[str, tuple[str, ...]], GeoRecord] = {}
        self._flags: dict[tuple[str, ...], frozenset[str]] = {}

    def country(self, record: Any) -> GeoRecord:
        if record is None:
            return NOT_FOUND
        if not isinstance(record, dict):
            raise DatabaseError(f"malformed record: a {type(record).__name__}, not a map")
        country = record.get("country")
        if country is None:
            return NO_COUNTRY
        if not isinstance(country, dict):
            raise DatabaseError("malformed record: 'country' is not a map")
        code = country.get("iso_code")
        if not is_well_formed_country(code):
            raise DatabaseError(f"malformed record: country iso_code {code!r}")
        if code not in self._iso:
            # Pseudo-codes name no country: RIR regions ("EU", "AP"), placeholders ("XX",
            # "ZZ"), MaxMind's legacy anonymous proxy, satellite and other ("A1", "A2", "O1").
            return NO_COUNTRY
        subdivisions = self._subdivisions(code, record.get("subdivisions"))
        key = (code, subdivisions)
        answer = self._records.get(key)
        if answer is None:
            answer = self._records.setdefault(key, GeoRecord(True, code, subdivisions))
        return answer

    @staticmethod
    def _subdivisions(country: str, raw: Any) -> tuple[str, ...]:
        if raw is None:
            return ()
        if not isinstance(raw, list):
            raise DatabaseError("malformed record: 'subdivisions' is not a list")
        codes = []
        for entry in raw:
            if not isinstance(entry, dict):
                raise DatabaseError("malformed record: a subdivision is not a map")
            code = entry.get("iso_code")
            if code is None:
                # Some records name a subdivision without a code; no rule can name it either.
                continue
            if not isinstance(code, str) or _SUBDIVISION.fullmatch(code) is None:
                raise DatabaseError(f"malformed record: subdivision iso_code {code!r}")
            codes.append(f"{country}-{code}")
        return tuple(codes)

    def asn(self, record: Any) -> int:
        """``autonomous_system_number`` of a GeoLite2-ASN / GeoIP2-ISP record; NO_ASN (0)
        for an address without one."""
        if record is None:
            return NO_ASN
        if not isinstance(record, dict):
            raise DatabaseError(f"malformed record: a {type(record).__name__}, not a map")
        number = record.get("autonomous_system_number")
        if number is None:
            return NO_ASN
        if number.__class__ is not int or not 0 <= number <= MAX_ASN:
            raise DatabaseError(f"malformed record: autonomous_system_number {number!r}")
        return int(number)

    def anonymous(self, record: Any) -> frozenset[str]:
        if record is None:
            return NO_FLAGS
        if not isinstance(record, dict):
            raise DatabaseError(f"malformed record: a {type(record).__name__}, not a map")
        names = []
        for key, name in ANONYMOUS_FLAGS:
            value = record.get(key)
            if value is True:
                names.append(name)
            elif value is not None and value is not False:
                raise DatabaseError(f"malformed record: {key} is {value!r}, not a boolean")
        key_names = tuple(names)
        answer = self._flags.get(key_names)
        if answer is None:
            answer = self._flags.setdefault(key_names, frozenset(key_names))
        return answer

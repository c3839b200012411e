"""Cloudflare Rules language text for the parts of an edge rule.

Everything here is a pure function from policy values to expression text, so that the tests can
parse each piece with Cloudflare's own parser (wirefilter) and compare the literals it finds with
the policy. Operators are chosen to work on every plan: ``in``, ``eq``, ``strict wildcard``
(case-sensitive, for paths) and ``wildcard`` (case-insensitive, for hosts); ``matches`` (regular
expressions, Business plan and up) only for path globs with ``?`` or ``[...]``.
"""

from __future__ import annotations

from collections.abc import Iterable

from geofence.export._edge import EdgeMatch, path_regex

COUNTRY = "ip.src.country"
SUBDIVISION_FIELDS = ("ip.src.subdivision_1_iso_code", "ip.src.subdivision_2_iso_code")
PATH = "http.request.uri.path"
METHOD = "http.request.method"
HOST = "http.host"
SOURCE = "ip.src"
ASN = "ip.src.asnum"
#: Cloudflare's country for an address it cannot place ("T1" is Tor, which is a known client).
NO_COUNTRY = "XX"
#: Every address: the Rules language has no ``true`` literal in custom rules' parser.
EVERYTHING = f"{SOURCE} in {{0.0.0.0/0 ::/0}}"


def string(text: str) -> str:
    """A string literal: backslash and double quote escaped, control characters as ``\\xHH``."""
    out: list[str] = []
    for ch in text:
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def string_set(values: Iterable[str]) -> str:
    return "{" + " ".join(string(v) for v in sorted(values)) + "}"


def ip_set(cidrs: Iterable[str]) -> str:
    return "{" + " ".join(cidrs) + "}"


def any_of(parts: list[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return "(" + " or ".join(parts) + ")"


def all_of(parts: list[str]) -> str:
    return " and ".join(parts)


def wildcard_pattern(glob: str) -> str:
    """A policy glob made only of literals and ``*`` as a wildcard pattern: the wildcard
    operators read ``\\`` as an escape, so a literal backslash is doubled."""
    return glob.replace("\\", "\\\\")


def needs_regex(glob: str) -> bool:
    """Whether a path glob needs ``matches``: ``?`` and ``[...]`` have no wildcard form."""
    return "?" in glob or "[" in glob


def path_condition(glob: str) -> str:
    if needs_regex(glob):
        # path_regex starts with (?s): the policy's "*" also runs over a decoded newline.
        return f"{PATH} matches {string(path_regex((glob,)))}"
    if "*" not in glob:
        return f"{PATH} eq {string(glob)}"
    return f"{PATH} strict wildcard {string(wildcard_pattern(glob))}"


def paths_condition(globs: Iterable[str]) -> str:
    return any_of([path_condition(g) for g in globs])


def host_condition(glob: str) -> str:
    """``http.host`` is the Host header as sent: the port (and an IPv6 literal's brackets) is
    matched around the glob, as the engine drops it. ``wildcard`` is case-insensitive, as the
    engine's match on the lower-cased host; its ``*`` runs over dots, which is the policy's
    "one or more whole labels" for every valid name."""
    name = f"[{glob}]" if ":" in glob else glob  # an IPv6 literal
    pattern = wildcard_pattern(name)
    return any_of(
        [f"{HOST} wildcard {string(pattern)}", f"{HOST} wildcard {string(pattern + ':*')}"]
    )


def dot_segment_condition() -> str:
    """A path with a ``.`` or ``..`` segment (never exempt in the engine)."""
    return any_of(
        [
            f'{PATH} contains "/./"',
            f'{PATH} contains "/../"',
            f'ends_with({PATH}, "/.")',
            f'ends_with({PATH}, "/..")',
        ]
    )


def exempt_paths_condition(globs: Iterable[str]) -> str:
    return f"{paths_condition(globs)} and not {dot_segment_condition()}"


def region_terms(
    countries: frozenset[str],
    subdivisions: frozenset[str],
    any_country: bool,
    unknown: bool,
) -> list[str]:
    """One term per kind of region; the client is covered when any term holds."""
    if any_country and unknown:
        return [EVERYTHING]
    terms: list[str] = []
    if any_country:
        terms.append(f"{COUNTRY} ne {string(NO_COUNTRY)}")
    elif countries:
        terms.append(f"{COUNTRY} in {string_set(countries)}")
    if unknown:
        terms.append(f"{COUNTRY} eq {string(NO_COUNTRY)}")
    if subdivisions and not any_country:
        # The engine matches a code at any level of the record: both levels are asked.
        terms.extend(f"{name} in {string_set(subdivisions)}" for name in SUBDIVISION_FIELDS)
    return terms


def match_condition(match: EdgeMatch, *, subdivisions: bool = True) -> str:
    """The rule's conditions as one expression (``EVERYTHING`` when it places none).

    ``subdivisions=False`` leaves the subdivision terms out (a plan without those fields, with
    ``--lossy``); the caller makes sure a region condition does not vanish with them.
    """
    parts: list[str] = []
    regions = region_terms(
        match.countries,
        match.subdivisions if subdivisions else frozenset(),
        match.any_country,
        match.unknown,
    )
    if regions:
        parts.append(any_of(regions))
    excepted = region_terms(
        match.except_countries,
        match.except_subdivisions if subdivisions else frozenset(),
        match.except_any_country,
        match.except_unknown,
    )
    if excepted:
        parts.append("not " + any_of(excepted) if len(excepted) > 1 else f"not {excepted[0]}")
    if match.asns:
        parts.append(f"{ASN} in {{{' '.join(str(n) for n in sorted(match.asns))}}}")
    if match.methods:
        parts.append(f"{METHOD} in {string_set(match.methods)}")
    if match.hosts:
        parts.append(any_of([host_condition(h) for h in match.hosts]))
    if match.paths:
        parts.append(paths_condition(match.paths))
    return all_of(parts) if parts else EVERYTHING


def negate(expression: str) -> str:
    return f"not ({expression})"

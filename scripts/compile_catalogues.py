#!/usr/bin/env python3
"""Compile the page's gettext catalogues: geofence/http/locale/*/LC_MESSAGES/*.po -> .mo.

geofence's own small msgfmt, so that neither the build nor a contributor needs Babel or GNU
gettext. The output is deterministic (entries sorted by msgid, no timestamps, no hash table),
so the committed .mo files can be checked against their sources (it is byte for byte what
GNU ``msgfmt --no-hash`` writes):

    python scripts/compile_catalogues.py           # write every .mo that differs
    python scripts/compile_catalogues.py --check   # exit 1 if any .mo is missing or stale

Like msgfmt, it leaves out fuzzy and untranslated entries (the header entry excepted) and
refuses a catalogue it cannot read exactly (an unknown keyword, a bad escape, a duplicate
msgid), naming the file and line.
"""

from __future__ import annotations

import argparse
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCALE_DIR = ROOT / "geofence" / "http" / "locale"
MAGIC = 0x950412DE
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "a": "\a", "b": "\b"}
_ESCAPES.update({"f": "\f", "v": "\v"})


class CatalogueError(Exception):
    """A .po file that this compiler will not guess about."""


@dataclass
class Entry:
    """One message of a .po file."""

    msgid: str = ""
    msgid_plural: str | None = None
    msgctxt: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    line: int = 0

    @property
    def key(self) -> str:
        """The original string as stored in the .mo file."""
        key = self.msgid if self.msgid_plural is None else f"{self.msgid}\0{self.msgid_plural}"
        return key if self.msgctxt is None else f"{self.msgctxt}\x04{key}"

    @property
    def value(self) -> str:
        """The translation as stored in the .mo file (plural forms joined by NUL)."""
        return "\0".join(self.msgstr[index] for index in sorted(self.msgstr))

    @property
    def translated(self) -> bool:
        return bool(self.msgstr) and all(self.msgstr.values())


def parse_po(text: str, name: str = "<po>") -> list[Entry]:
    """The entries of a .po file, in file order (obsolete ``#~`` entries dropped)."""
    entries: list[Entry] = []
    entry: Entry | None = None
    pending_flags: set[str] = set()
    # The field the next continuation string ("...") belongs to.
    current: tuple[str, int] | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith("#"):
            if line.startswith("#,"):
                pending_flags.update(flag.strip() for flag in line[2:].split(",") if flag.strip())
            continue
        keyword, _, rest = line.partition(" ")
        if line.startswith('"'):
            if entry is None or current is None:
                raise CatalogueError(f"{name}:{number}: a string outside any message")
            _append(entry, current, _unquote(line, name, number))
            continue
        rest = rest.strip()
        # A message starts with msgctxt, or with msgid unless a msgctxt just opened it.
        if keyword == "msgctxt" or (keyword == "msgid" and (current or ("",))[0] != "msgctxt"):
            if entry is not None:
                entries.append(_finished(entry, name))
            entry = Entry(line=number, flags=pending_flags)
            pending_flags = set()
        elif entry is None:
            raise CatalogueError(f"{name}:{number}: {keyword!r} before any msgid")
        if keyword == "msgctxt":
            entry.msgctxt = ""
            current = ("msgctxt", 0)
        elif keyword == "msgid":
            current = ("msgid", 0)
        elif keyword == "msgid_plural":
            entry.msgid_plural = ""
            current = ("msgid_plural", 0)
        elif keyword == "msgstr":
            current = ("msgstr", 0)
            entry.msgstr[0] = ""
        elif keyword.startswith("msgstr[") and keyword.endswith("]") and keyword[7:-1].isdigit():
            current = ("msgstr", int(keyword[7:-1]))
            entry.msgstr[current[1]] = ""
        else:
            raise CatalogueError(f"{name}:{number}: unknown keyword {keyword!r}")
        _append(entry, current, _unquote(rest, name, number))
    if entry is not None:
        entries.append(_finished(entry, name))
    seen: set[str] = set()
    for item in entries:
        if item.key in seen:
            raise CatalogueError(f"{name}:{item.line}: duplicate msgid {item.msgid!r}")
        seen.add(item.key)
    return entries


def _finished(entry: Entry, name: str) -> Entry:
    if not entry.msgstr:
        raise CatalogueError(f"{name}:{entry.line}: msgid without msgstr")
    return entry


def _append(entry: Entry, current: tuple[str, int], text: str) -> None:
    kind, index = current
    if kind == "msgstr":
        entry.msgstr[index] += text
    elif kind == "msgid":
        entry.msgid += text
    elif kind == "msgid_plural":
        entry.msgid_plural = (entry.msgid_plural or "") + text
    else:
        entry.msgctxt = (entry.msgctxt or "") + text


def _unquote(token: str, name: str, number: int) -> str:
    if len(token) < 2 or not token.startswith('"') or not token.endswith('"'):
        raise CatalogueError(f"{name}:{number}: expected a quoted string, got {token!r}")
    body = token[1:-1]
    out: list[str] = []
    index = 0
    while index < len(body):
        char = body[index]
        if char == '"':
            raise CatalogueError(f"{name}:{number}: unescaped quote in {token!r}")
        if char == "\\":
            index += 1
            escaped = body[index : index + 1]
            if escaped not in _ESCAPES:
                raise CatalogueError(f"{name}:{number}: unknown escape \\{escaped} in {token!r}")
            out.append(_ESCAPES[escaped])
        else:
            out.append(char)
        index += 1
    return "".join(out)


def header_fields(entries: list[Entry]) -> dict[str, str]:
    """The header entry's ``Name: value`` lines (empty when there is no header)."""
    for entry in entries:
        if entry.msgid == "" and entry.msgctxt is None:
            fields: dict[str, str] = {}
            for line in entry.value.splitlines():
                name, colon, value = line.partition(":")
                if colon:
                    fields[name.strip()] = value.strip()
            return fields
    return {}


def compile_mo(entries: list[Entry]) -> bytes:
    """The GNU .mo image of ``entries``: fuzzy and untranslated messages are left out (the
    header is kept even when fuzzy, as msgfmt does); every string is UTF-8 (the header must
    say so, checked by :func:`check_header`)."""
    kept = {
        entry.key.encode(): _stored_value(entry).encode()
        for entry in entries
        if entry.key == "" or (entry.translated and "fuzzy" not in entry.flags)
    }
    keys = sorted(kept)
    count = len(keys)
    header_size = 7 * 4
    originals_at = header_size
    translations_at = originals_at + count * 8
    strings_at = translations_at + count * 8
    table: list[tuple[int, int]] = []
    blob = bytearray()
    for key in keys:
        table.append((len(key), strings_at + len(blob)))
        blob += key + b"\0"
    for key in keys:
        value = kept[key]
        table.append((len(value), strings_at + len(blob)))
        blob += value + b"\0"
    # No hash table (size 0); its offset is where it would start, as GNU msgfmt --no-hash
    # writes it, so that the two tools' output is byte for byte the same.
    out = bytearray(
        struct.pack("<7I", MAGIC, 0, count, originals_at, translations_at, 0, strings_at)
    )
    for length, offset in table:
        out += struct.pack("<2I", length, offset)
    return bytes(out + blob)


def _stored_value(entry: Entry) -> str:
    if entry.key:
        return entry.value
    # The template's creation date says nothing at run time and would make a rebuilt template
    # change every .mo; GNU msgfmt drops it too.
    lines = entry.value.splitlines(keepends=True)
    return "".join(line for line in lines if not line.startswith("POT-Creation-Date:"))


def check_header(entries: list[Entry], name: str) -> None:
    """The header fields every shipped catalogue must have."""
    fields = header_fields(entries)
    content_type = fields.get("Content-Type", "").replace(" ", "").lower()
    if "charset=utf-8" not in content_type:
        raise CatalogueError(f"{name}: the header must declare Content-Type charset=UTF-8")
    for required in ("Language", "Plural-Forms"):
        if not fields.get(required):
            raise CatalogueError(f"{name}: the header has no {required}")


def sources(locale_dir: Path = LOCALE_DIR) -> list[Path]:
    """Every .po file under ``locale_dir``, sorted."""
    return sorted(locale_dir.glob("*/LC_MESSAGES/*.po"))


def build(po_path: Path) -> bytes:
    """The .mo image of one .po file."""
    name = str(po_path)
    entries = parse_po(po_path.read_text(encoding="utf-8"), name)
    check_header(entries, name)
    # Refuse a format string the translation broke (a .po edited by hand, outside msgfmt -c).
    for entry in entries:
        if "python-format" in entry.flags and entry.translated:
            wanted = _format_names(entry.msgid)
            for text in entry.msgstr.values():
                if _format_names(text) != wanted:
                    raise CatalogueError(
                        f"{name}:{entry.line}: the translation of {entry.msgid!r} does not keep "
                        f"its placeholders {sorted(wanted)}"
                    )
    return compile_mo(entries)


def _format_names(text: str) -> set[str]:
    names: set[str] = set()
    start = text.find("%(")
    while start != -1:
        end = text.find(")", start)
        if end == -1:
            break
        names.add(text[start + 2 : end])
        start = text.find("%(", end)
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--check", action="store_true", help="change nothing; exit 1 if any .mo is stale"
    )
    parser.add_argument("--locale-dir", type=Path, default=LOCALE_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    found = sources(args.locale_dir)
    if not found:
        print(f"no .po files under {args.locale_dir}", file=sys.stderr)
        return 1
    stale: list[Path] = []
    for po_path in found:
        try:
            image = build(po_path)
        except (CatalogueError, UnicodeDecodeError) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        mo_path = po_path.with_suffix(".mo")
        if mo_path.is_file() and mo_path.read_bytes() == image:
            continue
        stale.append(mo_path)
        if not args.check:
            mo_path.write_bytes(image)
            print(f"wrote {mo_path.relative_to(args.locale_dir.parent)}")
    if args.check and stale:
        for mo_path in stale:
            print(f"stale or missing: {mo_path}", file=sys.stderr)
        print("run: python scripts/compile_catalogues.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

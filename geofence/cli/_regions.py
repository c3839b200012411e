"""``geofence regions [NAME]``: the built-in region groups, with their source and check date."""

from __future__ import annotations

import argparse
import difflib
import json
from typing import Any

from geofence.cli._common import UsageError
from geofence.rules._groups import BUILTIN_GROUPS, BuiltinGroup, builtin_group
from geofence.rules._regions import region_name

DESCRIPTION = """\
Without NAME, list the built-in region groups a policy can use as "@name" (in a rule's
regions, except_regions and home_regions, and in its own [regions] groups): each with the
number of codes, where they come from and when they were last checked. With NAME ("eu" or
"@eu"), print that group's codes with their names. Exit status 2 for an unknown name."""


def add_parser(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    """``geofence regions [NAME]`` under the top-level ``commands``."""
    regions = commands.add_parser(
        "regions",
        help="built-in region groups (@eu, @europe, ...), with source and date",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    regions.add_argument("name", nargs="?", metavar="NAME", help='a group, e.g. "eu" or "@eu"')
    regions.add_argument("--json", action="store_true", help="print JSON")
    regions.set_defaults(func=_regions)


def _regions(args: argparse.Namespace) -> int:
    if args.name is None:
        _list(args.json)
    else:
        _show(_find(args.name), args.json)
    return 0


def _find(name: str) -> BuiltinGroup:
    group = builtin_group(name.strip())
    if group is not None:
        return group
    wanted = name.strip().lstrip("@").lower()
    # A word of the name ("sanctions", "america") first, then a near spelling ("urope").
    close = [g for g in BUILTIN_GROUPS if len(wanted) >= 3 and wanted in g][:1]
    if not close:
        close = difflib.get_close_matches(wanted, list(BUILTIN_GROUPS), n=1, cutoff=0.5)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    known = ", ".join(BUILTIN_GROUPS)
    raise UsageError(f"regions: no built-in group {name!r}{hint}; built-in groups: {known}")


def _document(group: BuiltinGroup, *, codes: bool) -> dict[str, Any]:
    document: dict[str, Any] = {
        "name": "@" + group.name,
        "title": group.title,
        "count": len(group.codes),
        "source": group.source,
        "checked": group.checked,
        "note": group.note,
    }
    if codes:
        document["codes"] = [{"code": c, "name": region_name(c)} for c in group.codes]
    return document


def _list(as_json: bool) -> None:
    groups = list(BUILTIN_GROUPS.values())
    if as_json:
        print(json.dumps([_document(g, codes=False) for g in groups], indent=2))
        return
    width = max(len(g.name) for g in groups) + 1
    for group in groups:
        print(f"@{group.name:<{width}} {len(group.codes):>3} codes  checked {group.checked}")
        print(f"  {group.title}")
        print(f"  source: {group.source}")
    print()
    print('Use one in a policy as "@name"; `geofence regions NAME` prints its codes.')


def _show(group: BuiltinGroup, as_json: bool) -> None:
    if as_json:
        print(json.dumps(_document(group, codes=True), indent=2))
        return
    print(f"@{group.name}: {group.title} ({len(group.codes)} codes)")
    print(f"source:  {group.source}")
    print(f"checked: {group.checked}")
    if group.note:
        print(f"note:    {group.note}")
    print()
    for code in group.codes:
        print(f"{code:<6} {region_name(code) or ''}".rstrip())

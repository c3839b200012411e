"""``geofence export``: the policy as a Cloudflare ruleset, an AWS WAF web ACL or nginx
configuration (DESIGN "Export"), through :mod:`geofence.export`.

Nothing is written unless the whole export succeeded: every file is rendered first, then
written beside its destination under a temporary name and renamed into place.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from geofence._engine import Engine
from geofence.cli._common import PROG, UsageError
from geofence.cli._example import example_policy
from geofence.export import FORMATS, TARGETS, ExportError, Rendered, plan, render_edge
from geofence.export._targets import OPTIONS

DESCRIPTION = """\
Translate the policy (the example policy without --config) into edge configuration:
a Cloudflare ruleset (--format api: Rulesets API JSON, or terraform: Terraform JSON), an
AWS WAF web ACL (api or terraform), or nginx configuration for ngx_http_geoip2_module
(conf). Each exported rule carries the geofence rule's name.

--at (default: now) picks each dated rule's phase: a rule not started yet is left out, one
in its grace window exports its warning (or is an error where the target cannot warn), an
enforced one its block. The export is only valid until the next date of a rule: export
again then. --mode report (the default) only logs at the edge (Cloudflare "log", AWS
"Count", nginx a log line); --mode enforce blocks.

nginx: with -o FILE, FILE is the part to include in http {} (the databases, the client
address, the maps) and FILE.server.conf the part to include first in each server {} (the
answers). Without -o both are printed, one after the other, each under a header line. The
policy's geoip.country_db must be a MaxMind .mmdb file (nginx cannot read the embedded
default).

What the target cannot express exactly is an error naming the rule and the reason: exit
status 2 and nothing is written. --lossy turns those errors into warnings on stderr. A
block rule that matches every client is always refused. Exit status 0 on success, 2 for a
usage, configuration or export error."""


def add_parser(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    """``geofence export`` under the top-level ``commands``."""
    command = commands.add_parser(
        "export",
        help="translate the policy for Cloudflare, AWS WAF or nginx",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    command.add_argument("--target", required=True, choices=TARGETS, help="where the policy runs")
    command.add_argument(
        "--config", metavar="FILE", help=".toml or .json policy (default: example)"
    )
    formats = sorted({f for fs in FORMATS.values() for f in fs})
    command.add_argument(
        "--format",
        choices=formats,
        help="api or terraform (Cloudflare, AWS WAF; default api), conf (nginx)",
    )
    command.add_argument(
        "--mode",
        choices=("report", "enforce"),
        default="report",
        help="report (default): the edge only logs; enforce: it blocks and warns",
    )
    command.add_argument(
        "--at",
        metavar="TIME",
        help="take each rule's phase at this ISO 8601 time with a zone (default: now)",
    )
    command.add_argument(
        "--lossy",
        action="store_true",
        help="export what the target cannot express exactly anyway, with warnings on stderr",
    )
    command.add_argument(
        "-o", "--output", metavar="FILE", help="write to FILE (nginx: and FILE.server.conf)"
    )
    command.add_argument(
        "--plan",
        choices=OPTIONS["plan"][1],
        help="Cloudflare: the zone's plan; what the export needs beyond it is an error",
    )
    command.add_argument(
        "--aws-client",
        dest="client",
        choices=OPTIONS["client"][1],
        help="AWS WAF: the client is the source address (default) or [client_ip]'s header",
    )
    command.add_argument(
        "--aws-scope",
        dest="scope",
        choices=OPTIONS["scope"][1],
        help="AWS WAF: the web ACL's scope (default CLOUDFRONT)",
    )
    command.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from geofence.cli._main import _parse_time  # _main imports this module

    moment = (
        _parse_time(args.at).astimezone(timezone.utc)
        if args.at is not None
        else datetime.now(timezone.utc)
    )
    # The engine checks what loading the policy alone does not (its databases).
    engine = Engine.from_config(example_policy() if args.config is None else args.config)
    try:
        edge = plan(engine.policy, at=moment, mode=args.mode)
        options = {k: v for k in OPTIONS if (v := getattr(args, k)) is not None}
        rendered = render_edge(
            edge, target=args.target, format=args.format, lossy=args.lossy, **options
        )
    except ExportError as error:
        raise UsageError(f"export to {args.target}: {error}") from None
    for note in edge.notes:
        _stderr(f"{PROG}: note: {note}")
    for warning in rendered.warnings:
        _stderr(f"{PROG}: warning: not exact: {warning}")
    if args.output is None:
        _print(args.target, rendered)
    else:
        _write(Path(args.output), rendered)
    return 0


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _print(target: str, rendered: Rendered) -> None:
    if not rendered.files:
        sys.stdout.write(rendered.text)
        return
    # nginx: both parts, each under a comment line naming where it goes.
    sys.stdout.write(
        "# ===== geofence export: the http {} part (-o FILE writes it to FILE) =====\n"
    )
    sys.stdout.write(rendered.text)
    for suffix, text in rendered.files.items():
        sys.stdout.write(
            f"\n# ===== geofence export: the server {{}} part (-o FILE writes it to FILE{suffix})"
            " =====\n"
        )
        sys.stdout.write(text)


def _mode_of(target: Path) -> int:
    """The mode a rewritten ``target`` keeps, or a new file gets under the umask."""
    try:
        return target.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _write(path: Path, rendered: Rendered) -> None:
    """Write every file of the export, or none: temporary files first, then renames."""
    outputs = [(path, rendered.text)] + [
        (path.with_name(path.name + suffix), text) for suffix, text in rendered.files.items()
    ]
    staged: list[tuple[str, Path]] = []
    try:
        for target, text in outputs:
            if target.is_dir():
                raise UsageError(f"-o {target}: is a directory")
            descriptor, temporary = tempfile.mkstemp(
                dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"
            )
            staged.append((temporary, target))
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(text)
            # mkstemp makes the file private; give it what a plain open() would have.
            os.chmod(temporary, _mode_of(target))
        for temporary, target in staged:
            os.replace(temporary, target)
    except OSError as error:
        raise UsageError(f"-o {path}: {error.strerror or error}") from None
    finally:
        for temporary, _ in staged:
            if os.path.exists(temporary):
                os.unlink(temporary)

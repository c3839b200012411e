"""The ``geofence`` command: ``check`` explains one decision; ``demo`` serves the example app.

Exit status: 0 whatever the decision; 2 for a usage or configuration error (one line on stderr,
no traceback); 141 (128 + SIGPIPE) when the reader of stdout went away, e.g. ``| head``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TextIO

from geofence import __version__
from geofence._engine import Engine
from geofence._errors import ConfigError
from geofence._model import Decision, RequestInfo
from geofence.cli._example import example_policy
from geofence.clientip._addresses import parse_peer
from geofence.config._loader import _parse_time as parse_config_time

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

PROG = "geofence"
EXIT_USAGE = 2
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a writer ended by SIGPIPE

REASONS = {
    "rule": "a rule matched (rules are tried in order; the first match decides)",
    "default": "no rule matched, so the policy's `default` applies",
    "exempt_ip": "the client IP is in exempt.ips",
    "exempt_path": "the path is in exempt.paths",
    "private": "the client IP is private, loopback, link-local, CGNAT or documentation space",
    "unresolved_client": "the real client IP could not be determined",
    "not_found": "the client IP is not in the country database; no rule matched",
    "no_country": "the database record has no country; no rule matched",
    "db_error": "the database lookup failed; on_error decides",
    "off": "the policy's mode is off",
}

# A date, with or without a zone, where a time is expected: "2024-07-01", "2024-07-01Z".
_DATE_WITH_ZONE = re.compile(r"(\d{4}-\d{2}-\d{2})([Zz]|[+-]\d{2}:?\d{2})?\Z")


class UsageError(Exception):
    """A bad argument: exit status 2, the message on stderr."""


def _parse_ip(text: str) -> str:
    # The socket peer, in the forms a server reports it (brackets and a zone id are tolerated).
    if parse_peer(text) is None:
        raise UsageError(
            f"IP {text!r} is not an IP address; give the socket peer, e.g. 175.16.199.1 or "
            "2a02:d0c0::1 (for a client behind a proxy, the proxy's address and "
            "--header 'X-Forwarded-For: ...')"
        )
    return text


def _parse_path(text: str) -> str:
    if not text.startswith("/"):
        raise UsageError(f"--path {text!r}: a path starts with '/', e.g. /{text.lstrip('/')}")
    return text


def _parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip() or name != name.strip():
        raise UsageError(f"--header {text!r}: expected 'Name: value'")
    return name, value.strip()


def _parse_time(text: str) -> datetime:
    """``--at``: an ISO 8601 time with a zone, read exactly as the config's dates are."""
    date = _DATE_WITH_ZONE.match(text)
    if date is not None:
        day, zone = date.groups()
        zone = "Z" if zone is None or zone in "Zz" else zone
        raise UsageError(f"--at {text!r} is a date without a time; write e.g. {day}T00:00:00{zone}")
    try:
        return parse_config_time(text, "--at")
    except ConfigError as error:
        reason = error.reason
    try:
        parse_config_time(text + "Z", "--at")
    except ConfigError:
        raise UsageError(f"--at {reason}") from None
    # Only the zone is missing.
    utc, offset = shlex.quote(f"{text}Z"), shlex.quote(f"{text}+02:00")
    raise UsageError(f"--at {text!r} has no zone; add one, e.g. {utc} (UTC) or {offset}")


def decision_dict(decision: Decision) -> dict[str, Any]:
    def when(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment else None

    return {
        "action": decision.action,
        "enforced": decision.enforced,
        "reason": decision.reason,
        "rule": decision.rule,
        "client_ip": decision.client_ip,
        "country": decision.country,
        "subdivisions": list(decision.subdivisions),
        "anonymizers": list(decision.anonymizers),
        "status": decision.status if decision.action == "block" else None,
        "phase": decision.phase or None,
        "warn_from": when(decision.warn_from),
        "enforce_from": when(decision.enforce_from),
        "client_detail": decision.client_detail,
        "report_rules": list(decision.report_rules),
    }


def explain(decision: Decision, passed: Sequence[tuple[str, str]] = ()) -> str:
    """``geofence check``'s text: the decision, and why each earlier rule did not decide."""
    verdict = decision.action.upper()
    if decision.action != "allow":
        verdict += " (enforced)" if decision.enforced else " (report only: nothing is blocked)"
    if decision.action == "block":
        verdict += f", HTTP {decision.status}"
    region = decision.country or "unknown"
    if decision.subdivisions:
        region += " (" + ", ".join(decision.subdivisions) + ")"
    lines = [
        verdict,
        f"  client IP  {decision.client_ip or '-'}: {decision.client_detail or '-'}",
        f"  region     {region}",
    ]
    if decision.anonymizers:
        lines.append(f"  network    {', '.join(decision.anonymizers)}")
    for name, why in passed:
        lines.append(f"  tried      rule {name!r}: {why}")
    if decision.rule:
        lines.append(f"  rule       {decision.rule} ({decision.phase})")
    lines.append(f"  reason     {decision.reason}: {REASONS.get(decision.reason, '')}")
    for name in decision.report_rules:
        lines.append(f"  dry run    rule {name!r} is in report mode and matched")
    return "\n".join(lines)


def _check(args: argparse.Namespace) -> int:
    peer = _parse_ip(args.ip)
    path = _parse_path(args.path)
    headers = [_parse_header(h) for h in args.header]
    # One moment for the decision and its explanation.
    now = _parse_time(args.at) if args.at is not None else datetime.now(timezone.utc)
    engine = Engine.from_config(example_policy() if args.config is None else args.config)
    request = RequestInfo(peer=peer, headers=headers, method=args.method, path=path, host="cli")
    decision = engine.decide(request, now=now)
    passed = engine.explain(request, now=now)
    if args.json:
        document = decision_dict(decision)
        document["rules_passed"] = [{"rule": name, "why": why} for name, why in passed]
        print(json.dumps(document, indent=2))
    else:
        print(explain(decision, passed))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from geofence.cli import demo

    return demo.run(host=args.host, port=args.port)


class _Parser(argparse.ArgumentParser):
    def _print_message(self, message: str, file: SupportsWrite[str] | None = None) -> None:
        # argparse swallows a failed write; on stdout (--help, --version) that would turn a
        # closed pipe into exit status 0. Let main() see it. (Subcommand parsers are of this
        # class too: add_subparsers makes them with the parent's class.)
        if message and file is sys.stdout:
            file.write(message)
        else:
            super()._print_message(message, file)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Apply one region policy to web traffic.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    check = commands.add_parser("check", help="show the decision for one request, and why")
    check.add_argument("ip", metavar="IP", help="the socket peer address, e.g. 175.16.199.1")
    check.add_argument("--config", metavar="FILE", help=".toml or .json policy (default: example)")
    check.add_argument("--path", default="/", help="request path (default /)")
    check.add_argument("--method", default="GET", help="request method (default GET)")
    check.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="'Name: value'",
        help="a request header; repeat for more",
    )
    check.add_argument(
        "--at",
        metavar="TIME",
        help="decide at this ISO 8601 time with a zone, e.g. 2024-07-09T00:00:00Z (default: now)",
    )
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.set_defaults(func=_check)
    demo = commands.add_parser("demo", help="serve the example app on the example policy")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--host", default="127.0.0.1")
    demo.set_defaults(func=_demo)
    return parser


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version, or a usage error argparse reported
        code = exit_.code
        return 0 if code is None else code if isinstance(code, int) else EXIT_USAGE
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (ConfigError, UsageError) as error:
        try:
            print(f"{PROG}: {error}", file=sys.stderr, flush=True)
        except BrokenPipeError:  # nobody reads stderr either: the status still tells
            _silence()
        return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; the exit status. A closed stdout (``| head``) ends it quietly."""
    try:
        status = _run(argv)
        # Flushed here, not at interpreter exit, so that a closed pipe is caught below.
        _flush(sys.stdout)
        _flush(sys.stderr)
    except BrokenPipeError:
        _silence()
        return EXIT_BROKEN_PIPE
    return status


def _flush(stream: TextIO | None) -> None:
    if stream is not None:
        stream.flush()


def _silence() -> None:
    """Point stdout and stderr at devnull: Python's flush at exit would fail on them again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    for stream in (sys.stdout, sys.stderr):
        try:
            fd = stream.fileno()
        except (AttributeError, ValueError, OSError):  # replaced or closed streams (tests)
            continue
        os.dup2(devnull, fd)
    os.close(devnull)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

"""The ``geofence`` command: ``check`` explains one decision; ``accounts`` shows, clears and
lists accounts' state in the shared store; ``demo`` serves the example app.

Exit status: 0 whatever the decision; 1 when the account store failed (``accounts``); 2 for a
usage or configuration error (one line on stderr, no traceback); 141 (128 + SIGPIPE) when the
reader of stdout went away, e.g. ``| head``.
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
from geofence.accounts._account import Account
from geofence.cli import _accounts, _export, _regions, _replay, _validate
from geofence.cli._common import (
    EXIT_BROKEN_PIPE,
    EXIT_STORE,
    EXIT_USAGE,
    PROG,
    StoreFailed,
    UsageError,
)
from geofence.cli._example import example_policy
from geofence.clientip._addresses import parse_peer
from geofence.config._loader import _parse_time as parse_config_time
from geofence.rules._regions import RegionCodeError, check_code, is_country

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

__all__ = ["EXIT_BROKEN_PIPE", "EXIT_STORE", "EXIT_USAGE", "PROG", "UsageError", "main"]

REASONS = {
    "rule": "a rule matched (rules are tried in order; the first match decides)",
    "default": "no rule matched, so the policy's `default` applies",
    "exempt_ip": "the client IP is in exempt.ips",
    "exempt_path": "the path is in exempt.paths",
    "exempt_account": "the account (or one of its @groups) is in exempt.accounts",
    "account_grace": "the account is in its own grace period for the rule (warned until its date)",
    "account_suspended": "the account is suspended after too many strikes ([strikes])",
    "store_error": 'the account store failed and on_store_error = "block" answers 503',
    "private": "the client IP is private, loopback, link-local, CGNAT or documentation space",
    "unresolved_client": "the real client IP could not be determined",
    "not_found": "the client IP is not in the country database; no rule matched",
    "no_country": "the database record has no country; no rule matched",
    "db_error": "the database lookup failed; on_error decides",
    "off": "the policy's mode is off",
}

CHECK_DESCRIPTION = """\
Show the decision for one request, and why: which rule, which region, which client IP, and
for every rule before the match why it did not match. Exit status 0 whatever the decision,
2 for a usage or configuration error.

--account ID decides for that account as the app would decide its next request: the
account's state (grace, strikes, suspension) is read from the policy's account store, and
the request is applied to a private copy of it. check never writes to the store: it starts
no account's grace, counts no strike and suspends no one; it says what the request would
record in the app. With accounts.store = memory:// this fresh process has no history for
the account (each app process keeps its own), so it is decided as its first request. When
the store fails, on_store_error decides, as in the app, and the output says so. Without an
[accounts] table the account changes no decision. With --at, the account's state is the one
the store holds now, seen at that time."""

# A date, with or without a zone, where a time is expected: "2024-07-01", "2024-07-01Z".
_DATE_WITH_ZONE = re.compile(r"(\d{4}-\d{2}-\d{2})([Zz]|[+-]\d{2}:?\d{2})?\Z")


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
        "asn": decision.asn,
        "account": decision.account,
        "status": decision.status if decision.action == "block" else None,
        "phase": decision.phase or None,
        "warn_from": when(decision.warn_from),
        "enforce_from": when(decision.enforce_from),
        "client_detail": decision.client_detail,
        "report_rules": list(decision.report_rules),
    }


def explain(
    decision: Decision,
    passed: Sequence[tuple[str, str]] = (),
    account: Sequence[str] = (),
    effect: Sequence[str] = (),
) -> str:
    """``geofence check``'s text: the decision, and why each earlier rule did not decide.
    ``account`` and ``effect`` are the lines of ``--account`` (after the region, after the
    reason)."""
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
    if decision.asn is not None:
        lines.append(f"  ASN        AS{decision.asn}")
    lines.extend(account)
    for name, why in passed:
        lines.append(f"  tried      rule {name!r}: {why}")
    if decision.rule:
        lines.append(f"  rule       {decision.rule} ({decision.phase})")
    lines.append(f"  reason     {decision.reason}: {REASONS.get(decision.reason, '')}")
    lines.extend(effect)
    for name in decision.report_rules:
        lines.append(f"  dry run    rule {name!r} is in report mode and matched")
    return "\n".join(lines)


def _parse_account(text: str) -> str:
    if not text:
        raise UsageError("--account: an account id is a non-empty string")
    return text


def _parse_home(text: str) -> str:
    code = text.strip().upper()
    if is_country(code):
        return code
    try:
        check_code(text)
    except RegionCodeError as error:
        raise UsageError(f"--home-country {error}") from None
    example = code.partition("-")[0] if is_country(code.partition("-")[0]) else "GB"
    raise UsageError(
        f"--home-country {text!r} is not a country; give the ISO 3166-1 alpha-2 code of the "
        f"country the account is registered in, e.g. {example}"
    )


def _check(args: argparse.Namespace) -> int:
    peer = _parse_ip(args.ip)
    path = _parse_path(args.path)
    headers = [_parse_header(h) for h in args.header]
    account = None
    if args.account is not None:
        home = _parse_home(args.home_country) if args.home_country is not None else None
        account = Account(_parse_account(args.account), home_country=home)
    elif args.home_country is not None:
        raise UsageError("--home-country needs --account ID: it is the account's home country")
    # One moment for the decision and its explanation.
    now = _parse_time(args.at) if args.at is not None else datetime.now(timezone.utc)
    engine = Engine.from_config(example_policy() if args.config is None else args.config)
    request = RequestInfo(peer=peer, headers=headers, method=args.method, path=path, host=args.host)
    # With an account, the engine reads the account store and never writes to it.
    view = _accounts.read_only(engine) if account is not None else None
    try:
        decision = engine.decide(request, now=now, account=account)
        passed = _validate.why_not(
            engine.policy, engine.explain(request, now=now, account=account), now
        )
        added = None
        if account is not None:
            added = _accounts.checked_account(
                engine.policy, view, account.id, account.home_country, now.timestamp()
            )
    finally:
        if view is not None:
            view.close()
    if args.json:
        document = decision_dict(decision)
        if added is not None:
            document["account"] = account.id if account is not None else None
            document.update(added.document)
        # The engine's words (the rule's lists and dates are in the policy).
        document["rules_passed"] = [{"rule": w.rule, "why": w.why} for w in passed]
        print(json.dumps(document, indent=2))
    elif added is not None:
        print(explain(decision, [(w.rule, w.text) for w in passed], added.lines, added.effect))
    else:
        print(explain(decision, [(w.rule, w.text) for w in passed]))
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
    check = commands.add_parser(
        "check",
        help="show the decision for one request, and why",
        description=CHECK_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
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
    check.add_argument(
        "--account",
        metavar="ID",
        help="decide for this account, as the app would for its next request (read only)",
    )
    check.add_argument(
        "--home-country",
        metavar="CC",
        help="the account's home country (ISO 3166-1 alpha-2, e.g. CN); needs --account",
    )
    check.add_argument(
        "--host", default="", help="the request's Host, for rules with hosts (e.g. api.example.com)"
    )
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.set_defaults(func=_check)
    _validate.add_parser(commands, _Parser)
    _export.add_parser(commands, _Parser)
    _accounts.add_parser(commands, _Parser)
    _regions.add_parser(commands, _Parser)
    _replay.add_parser(commands, _Parser)
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
        _error(str(error))
        return EXIT_USAGE
    except StoreFailed as error:
        _error(str(error))
        return EXIT_STORE


def _error(text: str) -> None:
    try:
        print(f"{PROG}: {text}", file=sys.stderr, flush=True)
    except BrokenPipeError:  # nobody reads stderr either: the status still tells
        _silence()


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

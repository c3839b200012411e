"""``geofence check`` explains one decision; ``geofence demo`` serves the example app."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from geofence._engine import Engine
from geofence._errors import ConfigError
from geofence._model import Decision, RequestInfo
from geofence.cli._example import example_policy

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


class UsageError(Exception):
    pass


def _parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip() or name != name.strip():
        raise UsageError(f"--header {text!r}: expected 'Name: value'")
    return name, value.strip()


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UsageError(f"--at {text!r}: not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise UsageError(f"--at {text!r}: add a zone, e.g. {text}Z or {text}+02:00")
    return moment


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


def explain(decision: Decision) -> str:
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
    if decision.rule:
        lines.append(f"  rule       {decision.rule} ({decision.phase})")
    lines.append(f"  reason     {decision.reason}: {REASONS.get(decision.reason, '')}")
    for name in decision.report_rules:
        lines.append(f"  dry run    rule {name!r} is in report mode and matched")
    return "\n".join(lines)


def _check(args: argparse.Namespace) -> int:
    headers = [_parse_header(h) for h in args.header]
    now = _parse_time(args.at) if args.at else None
    engine = Engine.from_config(args.config if args.config else example_policy())
    request = RequestInfo(
        peer=args.ip, headers=headers, method=args.method, path=args.path, host="cli"
    )
    decision = engine.decide(request, now=now)
    if args.json:
        print(json.dumps(decision_dict(decision), indent=2))
    else:
        print(explain(decision))
    return 0


def _demo(args: argparse.Namespace) -> int:
    from geofence.cli import demo

    return demo.run(host=args.host, port=args.port)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="geofence", description="Apply one region policy to web traffic."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="show the decision for one request")
    check.add_argument("ip", metavar="IP", help="the socket peer address")
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
    check.add_argument("--at", metavar="TIME", help="decide at this ISO 8601 time (with a zone)")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.set_defaults(func=_check)
    demo = commands.add_parser("demo", help="serve the example app on the example policy")
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--host", default="127.0.0.1")
    demo.set_defaults(func=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result: int = args.func(args)
    except (ConfigError, UsageError) as error:
        print(f"geofence: {error}", file=sys.stderr)
        return 2
    return result


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())

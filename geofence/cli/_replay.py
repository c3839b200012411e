"""``geofence replay LOG...``: decide access logs with a policy (and a baseline), print the
report; ``--max-newly-blocked`` makes it a CI gate (exit status 1)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from geofence.cli._common import PROG, UsageError
from geofence.replay import FORMATS, ReplayError, replay
from geofence.replay._accounts import write_csv
from geofence.replay._progress import Progress, wants_progress
from geofence.replay._text import render

EXIT_GUARD = 1  # a --max-* guard was exceeded

DESCRIPTION = """\
Decide every line of access logs (plain or gzip) with a policy, at the line's own time (or
--at), through the same engine and client-IP rules as the app: the log's client address is
the socket peer, its X-Forwarded-For column (when the format has one) the header the policy
reads. Prints totals by action, rule, country and path; with --baseline, the transitions
(allow/warn/block before -> after) and what would newly be blocked.

Formats: combined (nginx/Apache combined and common, nginx "main" with
$http_x_forwarded_for), alb (AWS ALB), cloudfront (CloudFront standard logs), cloudflare
(Logpush http_requests JSON), jsonl and csv (fields named as nginx variables: time_iso8601
or msec, remote_addr, http_x_forwarded_for, request_method, request_uri, host).
Unparsable lines are counted and the first 5 shown, never fatal.

Exit status: 0; 1 when --max-newly-blocked is exceeded; 2 for a usage or configuration
error, or a log that cannot be read or recognised."""


def add_parser(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    """``geofence replay`` under the top-level ``commands``."""
    command = commands.add_parser(
        "replay",
        help="decide access logs with a policy: who would it block?",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    command.add_argument(
        "logs", nargs="+", metavar="LOG", help="access logs, plain or gzip (- for standard input)"
    )
    command.add_argument(
        "--config", metavar="NEW", help="the policy to replay (.toml or .json; default: example)"
    )
    command.add_argument("--baseline", metavar="OLD", help="the policy to compare with")
    command.add_argument(
        "--format",
        default="auto",
        choices=["auto", *FORMATS],
        help="the logs' format (default: auto-detected per file)",
    )
    command.add_argument(
        "--at",
        metavar="TIME",
        help="decide every line at this ISO 8601 time with a zone instead of its own",
    )
    command.add_argument("--json", metavar="OUT", help="write the report as JSON ('-': stdout)")
    command.add_argument(
        "--accounts",
        metavar="OUT.csv",
        help="run the account rules (on a memory store, with the log's clock) for lines with an "
        "account and write one CSV row per account warned, in account grace, blocked or "
        "suspended ('-': stdout)",
    )
    command.add_argument(
        "--account-field",
        metavar="NAME",
        help="the field that holds the account id (JSON lines, CSV, Cloudflare: any field; "
        "default: the format's user field, remote_user)",
    )
    command.add_argument(
        "--html",
        metavar="OUT",
        help="write the report as one self-contained HTML page with charts (no script, "
        "nothing loaded from elsewhere)",
    )
    command.add_argument(
        "--max-newly-blocked",
        metavar="SHARE",
        type=_share,
        help="exit 1 when more than SHARE (0.05 or 5%%) of the lines would be newly blocked "
        "(blocked by the policy and not by --baseline; without one, every block)",
    )
    command.add_argument(
        "--top", type=int, default=10, metavar="N", help="rows of the country and path tables"
    )
    command.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="replay in N processes (a plain log is split by byte ranges, a gzip, CSV or "
        "CloudFront log per file); not with --accounts or standard input",
    )
    command.set_defaults(func=_run)


def _share(text: str) -> float:
    raw = text.strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a share (e.g. 0.05 or 5%)") from None
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not between 0 and 1 (0 %% and 100 %%)")
    return value


def _write_html(path: str, document: Any) -> None:
    # From the same dict as --json: the page's figures are the JSON's.
    from geofence.replay._html import render_html

    try:
        with open(path, "w", encoding="utf-8") as out:
            out.write(render_html(document))
    except OSError as error:
        raise UsageError(f"--html {path}: {error.strerror or error}") from None


def _progress(args: argparse.Namespace) -> Progress | None:
    # A terminal only: never in a pipe, nor when a report goes to standard output.
    if not wants_progress(sys.stderr) or "-" in (args.json, args.accounts):
        return None
    return Progress(sys.stderr)


def _write_accounts(path: str, report: Any) -> None:
    rows = report.accounts.rows() if report.accounts is not None else []
    if path == "-":
        write_csv(rows, sys.stdout)
        return
    try:
        with open(path, "w", encoding="utf-8", newline="") as out:
            write_csv(rows, out)
    except OSError as error:
        raise UsageError(f"--accounts {path}: {error.strerror or error}") from None


def _run(args: argparse.Namespace) -> int:
    # Imported here: the main module imports every command, and these pull in the engine.
    from geofence.cli._example import example_policy
    from geofence.cli._main import _parse_time
    from geofence.replay._jobs import replay_jobs

    at = _parse_time(args.at) if args.at is not None else None
    if args.top < 1:
        raise UsageError("--top N: N is at least 1")
    if args.json == "-" and args.accounts == "-":
        raise UsageError("--json - and --accounts -: only one of them can go to standard output")
    if args.account_field is not None and args.accounts is None:
        raise UsageError("--account-field NAME needs --accounts OUT.csv")
    if args.jobs < 1:
        raise UsageError("--jobs N: N is at least 1")
    if args.jobs > 1 and args.accounts is not None:
        raise UsageError("--accounts follows each account line by line: use --jobs 1")
    try:
        if args.jobs > 1:
            report = replay_jobs(
                args.logs,
                policy=args.config if args.config is not None else example_policy(),
                baseline=args.baseline,
                at=at,
                format=args.format,
                jobs=args.jobs,
            )
        else:
            report = replay(
                args.logs,
                policy=args.config if args.config is not None else example_policy(),
                baseline=args.baseline,
                at=at,
                format=args.format,
                accounts=args.accounts is not None,
                account_field=args.account_field,
                progress=_progress(args),
            )
    except ReplayError as error:
        raise UsageError(str(error)) from None
    if args.accounts is not None:
        _write_accounts(args.accounts, report)
    document = report.to_dict(args.top) if args.json is not None or args.html else None
    if args.html:
        _write_html(args.html, document)
    if args.json == "-":
        print(json.dumps(document, indent=2))
    else:
        if args.json is not None:
            try:
                with open(args.json, "w", encoding="utf-8") as out:
                    json.dump(document, out, indent=2)
                    out.write("\n")
            except OSError as error:
                raise UsageError(f"--json {args.json}: {error.strerror or error}") from None
        if args.accounts != "-":  # the CSV went to standard output: the text would spoil it
            print(render(report, args.top))
    limit = args.max_newly_blocked
    if limit is not None and report.newly_blocked_share > limit:
        print(
            f"{PROG}: {100 * report.newly_blocked_share:.2f} % of the lines would be newly "
            f"blocked, more than --max-newly-blocked {100 * limit:g} %",
            file=sys.stderr,
        )
        return EXIT_GUARD
    return 0

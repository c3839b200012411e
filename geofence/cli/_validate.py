"""``geofence validate``: registered here; being built (issue 12)."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    """``geofence validate`` under the top-level ``commands``."""
    command = commands.add_parser("validate", help="(validate: not built yet)")
    command.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    print("geofence validate is not built yet")
    return 2

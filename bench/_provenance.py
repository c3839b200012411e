"""What a benchmark ran on: the commit of the code measured and the versions around it."""

from __future__ import annotations

import platform
import subprocess
from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent


def versions(packages: Iterable[str]) -> dict[str, str]:
    """Python's version and each installed package's ("-" for one that is not)."""
    found = {"python": platform.python_version()}
    for name in packages:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "-"
    return found


def commit() -> str:
    """The short commit of the checkout, "+uncommitted" when geofence or the adapters differ
    from it (the figures are then of code no commit holds)."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(PROJECT), *args], capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    found = git("rev-parse", "--short", "HEAD") or "unknown"
    if git("status", "--porcelain", "--", "geofence", "adapters"):
        found += "+uncommitted"
    return found

"""Memory: what ``import geofence`` + an engine on the embedded default + one decision add to
a process's resident set (issue 15: at most 6 MB; MB here is 2**20 bytes, as in memory.py).

Each figure is the median over fresh processes (``python -c``), each of which reads its own
``VmRSS`` (``/proc/self/status``, Linux) before importing geofence and after the decision.
The interpreter, ``site`` and the virtualenv's start-up are in both readings, so they cancel.
The processes share a bytecode cache (PYTHONPYCACHEPREFIX in a temporary folder, filled by a
first, unmeasured process), as an installed package has its .pyc files: with
PYTHONDONTWRITEBYTECODE set and no cache, every process would compile geofence and the reading
would include the compiler's memory (11 MB instead of 7 on CPython 3.12).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile

from trees import Tree

MB = 1024 * 1024
TARGET_MB = 6.0

_CODE = """
def rss():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")

before = rss()
import geofence

engine = geofence.Engine.from_config({})
decision = engine.decide(
    geofence.RequestInfo(peer="216.160.83.56", headers=(), method="GET", path="/", host="h")
)
after = rss()
assert decision.country == "US", decision
print(after - before)
"""


def added(tree: Tree, build: str, processes: int = 5) -> list[int]:
    """Bytes added in each of ``processes`` fresh processes."""
    found: list[int] = []
    with tempfile.TemporaryDirectory(prefix="geofence-rss-pyc-") as cache:
        env = {k: v for k, v in tree.env(build).items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        for index in range(processes + 1):  # the first fills the bytecode cache: not counted
            done = subprocess.run(
                [sys.executable, "-c", _CODE],
                env=env,
                cwd=tree.paths,  # `python -c` puts the working directory first on sys.path
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise RuntimeError(f"RSS of {tree.name} {build} failed:\n{done.stderr[-2000:]}")
            if index:
                found.append(int(done.stdout.strip()))
    return found


def median_mb(values: list[int]) -> float:
    return statistics.median(values) / MB

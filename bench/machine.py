"""What the figures were measured on: CPU, load, Python, package versions, clock cost."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from typing import Any

PACKAGES = (
    "geofence-middleware",
    "Django",
    "Flask",
    "Werkzeug",
    "starlette",
    "uvicorn",
    "gunicorn",
    "maxminddb",
    "iptocc",
    "mmdb-writer",
)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def clock_cost_ns(clock: Any = time.time_ns, count: int = 100_000) -> float:
    """Nanoseconds per read of ``clock``: geofence reads the wall clock once per decision."""
    started = time.perf_counter_ns()
    for _ in range(count):
        clock()
    return (time.perf_counter_ns() - started) / count


def reference_ns(count: int = 50_000) -> float:
    """Nanoseconds per ``ipaddress.ip_address("81.2.69.142")``: a yardstick for comparing
    machines (the performance issue quotes about 2 us on the project's machines)."""
    import ipaddress

    parse = ipaddress.ip_address
    parse("81.2.69.142")
    started = time.perf_counter_ns()
    for _ in range(count):
        parse("81.2.69.142")
    return (time.perf_counter_ns() - started) / count


def info() -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    try:
        from maxminddb import extension

        versions["maxminddb"] += " (C extension)" if hasattr(extension, "Reader") else ""
    except ImportError:
        versions["maxminddb"] += " (pure Python: no C extension)"
    wrk = shutil.which("wrk")
    if wrk:
        out = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False).stdout
        versions["wrk"] = out.split()[1] if out.split()[1:] else "installed"
    else:
        versions["wrk"] = "not installed (bench/loadgen.py used)"
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "load_average_start": load_average(),
        "time_ns_cost_ns": round(clock_cost_ns(), 1),
        "monotonic_cost_ns": round(clock_cost_ns(time.monotonic), 1),
        "ip_address_ns": round(reference_ns(), 1),
        "packages": versions,
        "executable": sys.executable,
    }


def describe(machine: dict[str, Any]) -> str:
    packages = ", ".join(f"{k} {v}" for k, v in machine["packages"].items())
    return "\n".join(
        [
            f"CPU: {machine['cpu']}, {machine['cores']} cores; {machine['platform']}",
            f"Python: {machine['python']}",
            f"Packages: {packages}",
            f"Load average at start (1/5/15 min): {machine['load_average_start']}",
            f"Clock read cost: time.time_ns {machine['time_ns_cost_ns']:.0f} ns, "
            f"time.monotonic {machine['monotonic_cost_ns']:.0f} ns "
            "(geofence reads the clock on every decision)",
            f"Yardstick: ipaddress.ip_address() {machine['ip_address_ns'] / 1000:.2f} us per call "
            "(compare machines by it)",
        ]
    )

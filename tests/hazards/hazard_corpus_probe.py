"""Load each corpus file with Engine.from_config in each reader mode and decide a fixed list
of addresses; print one JSON object with every outcome.

Run as a child process (``python hazard_corpus_probe.py CORPUS.json``) because a corrupt file
could crash a C extension or hang an open(): the parent then sees a signal or a timeout
instead of losing the whole test session. Before each load the probe writes the file and
mode to stderr, so a crash names its culprit.

Input: {"files": {id: path}, "modes": [...], "addresses": [...], "policy": {...}}.
Output: {id: {mode: outcome}}, where an outcome is one of
  {"outcome": "config_error", "key": ..., "message": ...}
  {"outcome": "loaded", "decisions": [[action, enforced, reason, rule, client_ip, country,
                                        [subdivisions...], status], ...], "stable": bool}
  {"outcome": "raised", "type": ..., "message": ...}   (never acceptable)
"""

from __future__ import annotations

import json
import sys
from typing import Any

import geofence


def decision_row(decision: geofence.Decision) -> list[Any]:
    return [
        decision.action,
        decision.enforced,
        decision.reason,
        decision.rule,
        decision.client_ip,
        decision.country,
        list(decision.subdivisions),
        decision.status,
    ]


def probe(path: str, mode: str, addresses: list[str], policy: dict[str, Any]) -> dict[str, Any]:
    config = {**policy, "geoip": {"country_db": path, "reader": mode, "reload_interval": 0}}
    try:
        engine = geofence.Engine.from_config(config)
    except geofence.ConfigError as error:
        return {"outcome": "config_error", "key": error.key, "message": str(error)}
    except BaseException as error:  # reporting exactly this is the point
        return {"outcome": "raised", "type": type(error).__qualname__, "message": str(error)}
    rows = []
    stable = True
    try:
        for address in addresses:
            first = engine.decide(geofence.RequestInfo(peer=address))
            again = engine.decide(geofence.RequestInfo(peer=address))  # the cached path
            stable = stable and first == again
            rows.append(decision_row(first))
    except BaseException as error:
        return {"outcome": "raised", "type": type(error).__qualname__, "message": str(error)}
    return {"outcome": "loaded", "decisions": rows, "stable": stable}


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as file:
        spec = json.load(file)
    results: dict[str, dict[str, Any]] = {}
    for name, path in spec["files"].items():
        results[name] = {}
        for mode in spec["modes"]:
            print(f"probing {name} {mode}", file=sys.stderr, flush=True)
            results[name][mode] = probe(path, mode, spec["addresses"], spec["policy"])
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()

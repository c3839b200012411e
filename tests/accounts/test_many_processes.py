"""Many processes, one Redis: transitions happen once and every strike counts (issue 10,
"Numbers to reach": 8 processes x 200 blocked requests for one account, exactly one
``account_suspended`` event, exactly 1,600 strikes).

Real processes (multiprocessing, spawn: nothing inherited but the arguments), each with its
own engine and its own ``on_event``, which sends every event to the test through a queue as
it fires. The processes start their requests together (they wait for the test's signal),
so the strikes of all eight interleave on the server. The policy blocks every request: the
rule's block until the threshold, then the suspension's; both are enforced blocks, and every
enforced block is a strike.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from redis_servers import redis_server
from tests_support import CITY_DB

PROCESSES = 8
REQUESTS = 200  # per process
THRESHOLD = 50
ACCOUNT = "org_many"
RU = "2a02:d0c0::1"
DEADLINE = 180.0  # seconds for the whole run: spawning 8 interpreters on a loaded machine

ROOT = Path(__file__).resolve().parents[2]  # where `tests.accounts.<this module>` imports from


def config(url: str, prefix: str) -> dict[str, Any]:
    return {
        "geoip": {"country_db": CITY_DB},
        # A generous timeout: this test is about counting, not about time; a call that
        # timed out would be a store_error (asserted absent), not a lost strike in silence.
        "accounts": {"store": url, "key_prefix": prefix, "timeout": "5s"},
        "strikes": {"threshold": THRESHOLD, "window": "1h", "suspend_for": "1d"},
        "rules": [{"name": "sanctioned", "action": "block", "regions": ["RU"]}],
    }


def worker(index: int, url: str, prefix: str, go: Any, out: Any) -> None:
    """One process of the app: its own engine, ``REQUESTS`` blocked requests of ACCOUNT."""
    import geofence
    from geofence import Account, Event, RequestInfo

    def on_event(event: Event) -> None:
        strikes = event.detail.get("strikes")
        out.put(("event", index, event.kind, event.account, strikes))

    try:
        engine = geofence.Engine.from_config(config(url, prefix), on_event=on_event)
        info = RequestInfo(peer=RU, method="GET", path="/v1/models")
        account = Account(ACCOUNT)
        out.put(("ready", index))
        if not go.wait(DEADLINE):
            raise RuntimeError("no start signal")
        decisions: Counter[tuple[str, bool, str, int | None]] = Counter()
        for _ in range(REQUESTS):
            d = engine.decide(info, account=account)
            decisions[(d.action, d.enforced, d.reason, d.status)] += 1
        out.put(("done", index, dict(decisions)))
    except BaseException as error:  # reported, so the test fails with the reason
        out.put(("error", index, repr(error)))
        raise


@pytest.mark.slow
def test_eight_processes_one_suspension_every_strike_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A spawned process imports this module by its name, tests.accounts.test_many_processes,
    # wherever pytest runs from (an installed wheel does not put the checkout on sys.path).
    monkeypatch.syspath_prepend(str(ROOT))
    context = multiprocessing.get_context("spawn")
    prefix = f"many-{uuid.uuid4().hex[:10]}"
    with redis_server(tmp_path / "redis") as server:
        out = context.Queue()
        go = context.Event()
        processes = [
            context.Process(target=worker, args=(i, server.url, prefix, go, out), daemon=True)
            for i in range(PROCESSES)
        ]
        for process in processes:
            process.start()
        try:
            events: list[tuple[int, str, str | None, int | None]] = []
            done: dict[int, dict[tuple[str, bool, str, int | None], int]] = {}
            ready: set[int] = set()
            deadline = time.monotonic() + DEADLINE
            while len(done) < PROCESSES:
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"timed out: ready {sorted(ready)}, done {sorted(done)}")
                try:
                    message = out.get(timeout=min(left, 1.0))
                except queue.Empty:
                    dead = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
                    assert not dead, f"a process died: exit codes {dead}"
                    continue
                kind, index, *rest = message
                if kind == "ready":
                    ready.add(index)
                    if len(ready) == PROCESSES:
                        go.set()  # all engines built: start together
                elif kind == "event":
                    events.append((index, *rest))
                elif kind == "done":
                    done[index] = rest[0]
                else:
                    pytest.fail(f"process {index} failed: {rest[0]}")
            for process in processes:
                process.join(DEADLINE)
                assert process.exitcode == 0
            # Every event put before "done" by its process is in the queue already; events
            # come from the request's own thread, so none can follow "done".
            while True:
                try:
                    kind, index, *rest = out.get_nowait()
                except queue.Empty:
                    break
                assert kind == "event"
                events.append((index, *rest))

            from geofence.accounts._redis import RedisStore
            from geofence.accounts._store import Limits

            store = RedisStore(
                server.url,
                key_prefix=prefix,
                timeout=5.0,
                limits=Limits(THRESHOLD, 3600.0, "suspend", 86400.0),
            )
            state = store.fetch(ACCOUNT, time.time())
            store.close()
        finally:
            go.set()
            for process in processes:
                if process.is_alive():
                    process.kill()
                    process.join(10)

    total = PROCESSES * REQUESTS
    kinds = Counter(kind for _, kind, _, _ in events)
    assert kinds["store_error"] == 0, "a store call failed: strikes may be missing"
    assert kinds["account_suspended"] == 1, kinds
    assert kinds["account_strike"] == total, kinds
    assert {account for _, _, account, _ in events} == {ACCOUNT}
    # The store's own count, read back.
    assert state.strikes == total
    assert state.suspension == "suspend" and state.suspended(time.time())
    # The strike counts the events carry are every number from 1 to 1,600, once each: the
    # server counted them one at a time, whichever process sent them.
    strike_numbers = sorted(n or 0 for _, kind, _, n in events if kind == "account_strike")
    assert strike_numbers == list(range(1, total + 1))
    # The suspension started with the strike that made `threshold` strikes in the window,
    # whichever process's clock stamped it (strikes stamped a little after a request's own
    # time count too), so exactly the 50th.
    tripping = next(n or 0 for _, kind, _, n in events if kind == "account_suspended")
    assert tripping == THRESHOLD
    # Every request was an enforced block: the rule's before the suspension, then the
    # suspension's (the request whose strike started it is the first one suspended).
    decisions: Counter[tuple[str, bool, str, int | None]] = Counter()
    for counted in done.values():
        decisions.update(counted)
    assert decisions == {
        ("block", True, "rule", 451): tripping - 1,
        ("block", True, "account_suspended", 403): total - (tripping - 1),
    }

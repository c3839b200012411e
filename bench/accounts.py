"""geofence with accounts: the figures of issue 10's "Numbers to reach", measured.

    python bench/accounts.py                    # 1-2 minutes on 2 cores
    python bench/accounts.py --json OUT.json    # and every figure as JSON
    python bench/accounts.py --no-callgrind     # the wall-clock parts only (no valgrind)

Needs redis-server (started here on a free loopback port, persistence off, stopped by its
PID), the ``redis`` package (extra ``accounts``) and, for the instruction counts, valgrind.

1. Instructions (callgrind, as ``callgrind.py`` counts them: only the measured loop, in
   processes of different memory layouts) of a repeated allowed ``Engine.decide()`` and
   ``Engine.answer()``: without ``[accounts]``; with ``[accounts]`` but no account; with an
   account on ``memory://``; with an account on Redis. A process trusts its copy of an
   account for ``refresh``, so the repeated request makes no store call: counted (every call
   of the engine's store object, and the Redis server's ``INFO commandstats``).
2. A request that needs the store (a blocked request of an account: a strike to count):
   round trips per request from ``INFO commandstats`` (EVALSHA per request; the commands a
   script runs inside Redis are no round trips), and its latency on loopback Redis (wall
   clock, per request: noisy on a shared machine).
3. The store down, ``timeout = 50ms``: (a) nothing listening, (b) a SIGSTOPped redis-server
   (a black hole). The latency the store adds to each request before the circuit breaker
   opens (target: at most timeout + 5 ms) and after (target: under 50 us), each request
   timed with ``time.perf_counter_ns``, against the same request on an engine without
   ``[accounts]``.
4. Per adapter (callgrind): a repeated allowed request with an account hook against the same
   request through geofence without one (target: at most 5 % more instructions). An adapter
   without an account hook is named and skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import functools
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
sys.path.extend([str(PROJECT), str(PROJECT / "adapters")])

import _provenance  # noqa: E402
import _valgrind  # noqa: E402
from _redisserver import RedisProcess, free_port, redis_server  # noqa: E402

TIMEOUT_MS = 50  # accounts.timeout in the outage measurements
ACCOUNT = "org_1"
BLOCKED = "114.114.114.114"  # CN in the embedded database: blocked on /v1/* by the policy
PACKAGES = ("geofence-middleware", "redis", "Django", "Flask", "starlette")
# Commands the account scripts run inside Redis: counted by INFO commandstats, but no
# round trip. Anything else the client sends besides EVALSHA / EVAL would be one.
SCRIPT_COMMANDS = frozenset(
    {
        "hsetnx", "hget", "hset", "hmget", "hincrby", "hgetall", "hdel", "exists", "del",
        "zadd", "zremrangebyscore", "zcount", "expire", "persist",
    }
)  # fmt: skip
OUR_COMMANDS = frozenset({"info", "config|resetstat", "script|flush"})  # the bench's own


def config(store: str | None, **accounts: Any) -> dict[str, Any]:
    """The example policy (``geofence demo``) on the embedded database; with ``[accounts]``
    on ``store`` and the default ``[strikes]`` when ``store`` is given."""
    from workload import policy

    cfg = copy.deepcopy(policy(None))
    if store is not None:
        cfg["accounts"] = {"store": store, **accounts}
        cfg["strikes"] = {"threshold": 50, "window": "24h", "suspend_for": "30d"}
    return cfg


def request_info(peer: str) -> Any:
    from workload import HEADERS, HOST, PATH

    from geofence import RequestInfo

    return RequestInfo(peer=peer, headers=HEADERS, method="GET", path=PATH, host=HOST)


class StoreCalls:
    """Counts the calls an engine makes to its store object (which they still reach). A
    call made inside another (MemoryStore.arecord calls record) is not counted again."""

    def __init__(self, engine: Any) -> None:
        store = engine.store
        self.count = 0
        self._inside = False
        for name in ("record", "fetch"):
            setattr(store, name, self._counted(getattr(store, name)))
        for name in ("arecord", "afetch"):
            setattr(store, name, self._acounted(getattr(store, name)))

    def _counted(self, method: Callable[..., Any]) -> Callable[..., Any]:
        def counted(*args: Any) -> Any:
            if self._inside:
                return method(*args)
            self.count += 1
            self._inside = True
            try:
                return method(*args)
            finally:
                self._inside = False

        return counted

    def _acounted(self, method: Callable[..., Any]) -> Callable[..., Any]:
        async def counted(*args: Any) -> Any:
            if self._inside:
                return await method(*args)
            self.count += 1
            self._inside = True
            try:
                return await method(*args)
            finally:
                self._inside = False

        return counted


def commandstats(client: Any) -> dict[str, int]:
    """command -> calls, from INFO commandstats."""
    stats = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}


def round_trips(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """What the client sent between two snapshots, per command, leaving out the commands
    scripts ran inside the server and the bench's own."""
    sent: dict[str, int] = {}
    for name, calls in after.items():
        delta = calls - before.get(name, 0)
        if delta and name not in SCRIPT_COMMANDS and name not in OUR_COMMANDS:
            sent[name] = delta
    return sent


# -- 1. instructions, in processes under callgrind --------------------------------------------


@dataclass(frozen=True)
class Sizes:
    calls: int = 2000  # calls per measured loop
    warmup: int = 300  # calls in each of the two warm-up loops (the interpreter specialises)
    rounds: int = 3  # measurements of each case, one after another
    layouts: int = 3  # processes, each with its memory laid out differently


ENGINE_SIZES = Sizes()
ADAPTER_SIZES = Sizes(calls=40, warmup=30)  # a request is ~100 times a decide()


# (engine, whether the call passes the account)
VARIANTS = {
    "plain": "without [accounts], no account",
    "memory-none": "[accounts] memory://, no account",
    "memory": "[accounts] memory://, with an account",
    "redis": "[accounts] Redis, with an account",
}
CALLS = ("decide", "answer")
Measured = _valgrind.Measured


def _account_loop(call: Callable[..., object], items: Sequence[Any], account: Any) -> Measured:
    def go(begin: Callable[[], None], end: Callable[[], None]) -> None:
        inputs = list(items)
        begin()
        for item in inputs:
            call(item, None, account)
        end()

    return go


def child(redis_url: str, layout: int, sizes: Sizes, meta_out: Path) -> None:
    """Runs under valgrind: set up, check, then one dump per (case, number of calls)."""
    from callgrind import _shift_layout

    _shift_layout(layout)
    import redis

    import geofence
    from geofence import Account

    if not _valgrind.on_valgrind():
        raise SystemExit("this mode runs under valgrind: use `python bench/accounts.py`")
    prefix = f"bench-callgrind-{layout}-{uuid.uuid4().hex[:8]}"
    # refresh: a process trusts its copy for this long. Under valgrind the run is slow;
    # 10 minutes keeps the copy fresh through it (a copy read again every 5 s, the default,
    # is one store call per account and process every 5 s: nothing per request).
    engines = {
        "plain": geofence.Engine.from_config(config(None)),
        "memory": geofence.Engine.from_config(config("memory://", refresh="10m")),
        "redis": geofence.Engine.from_config(
            config(redis_url, refresh="10m", timeout="2s", key_prefix=prefix)
        ),
    }
    info = request_info(_repeated())
    account = Account(ACCOUNT)
    counters = {name: StoreCalls(engines[name]) for name in ("memory", "redis")}
    # The account's first request reads the store, once: made here, before counting.
    plain = engines["plain"].decide(info)
    for name in ("memory", "redis"):
        got = engines[name].decide(info, None, account)
        if (got.action, got.reason, got.account) != ("allow", "default", ACCOUNT):
            raise RuntimeError(f"{name}: unexpected decision {got!r}")
        if engines[name].answer(info, None, account).response is not None:
            raise RuntimeError(f"{name}: the answer sends a response")
    if (plain.action, plain.reason) != ("allow", "default"):
        raise RuntimeError(f"unexpected decision {plain!r}")
    calls_before = {name: c.count for name, c in counters.items()}
    server = redis.Redis.from_url(redis_url)
    stats_before = commandstats(server)

    def plain_case(method: Callable[[Any], object]) -> Callable[[int], Measured]:
        return lambda n: _valgrind.loop(method, [info] * n)

    def account_case(method: Callable[..., object]) -> Callable[[int], Measured]:
        return lambda n: _account_loop(method, [info] * n, account)

    cases: dict[str, Callable[[int], Measured]] = {"loop": plain_case(callable)}
    for call in CALLS:
        for variant in VARIANTS:
            method = getattr(engines[variant.split("-")[0]], call)
            with_account = variant not in ("plain", "memory-none")
            cases[f"{call}/{variant}"] = (account_case if with_account else plain_case)(method)

    plans: list[tuple[str | None, Measured]] = []
    for label, prepare in cases.items():
        plans.append((None, prepare(sizes.warmup)))
        plans.append((None, prepare(sizes.warmup)))
        for index in range(sizes.rounds):
            plans.append((f"{label}|{index}|0", prepare(0)))
            plans.append((f"{label}|{index}|{sizes.calls}", prepare(sizes.calls)))
    _valgrind.run_plans(plans)

    sent = round_trips(stats_before, commandstats(server))
    server.close()
    for engine in engines.values():
        store = engine.store
        if store is not None:
            store.close()
    meta_out.write_text(
        json.dumps(
            {
                "labels": list(cases),
                "calls": sizes.calls,
                "rounds": sizes.rounds,
                "store_calls": {n: c.count - calls_before[n] for n, c in counters.items()},
                # requests of each store's engine: decide() and answer(), with an account
                "requests_with_account": 2 * (2 * sizes.warmup + sizes.rounds * sizes.calls),
                "redis_commands": sent,
            }
        )
    )


def _repeated() -> str:
    from workload import REPEATED

    return REPEATED


def _run_child(extra: Sequence[str], layout: int, sizes: Sizes, work: Path) -> dict[str, Any]:
    """Run one child under callgrind, with a redis-server of its own (the server's command
    statistics then count this child's commands only); its figures per call, per round."""
    with redis_server() as server:
        return _run_child_on(extra, server.url, layout, sizes, work)


def _run_child_on(
    extra: Sequence[str], redis_url: str, layout: int, sizes: Sizes, work: Path
) -> dict[str, Any]:
    folder = work / f"{'-'.join(extra) or 'engine'}-layout-{layout}"
    folder.mkdir()
    out_file = folder / "callgrind.out"
    meta = folder / "meta.json"
    argv = [
        *_valgrind.command(out_file),
        f"--log-file={folder / 'valgrind.log'}",
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        redis_url,
        *extra,
        "--layout",
        str(layout),
        "--sizes",
        json.dumps(sizes.__dict__),
        "--meta",
        str(meta),
    ]
    env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0 or not meta.exists():
        log = (folder / "valgrind.log").read_text(errors="replace")[-3000:]
        raise RuntimeError(
            f"{' '.join(extra)} layout {layout} failed (exit {done.returncode}):\n"
            f"{done.stderr[-5000:]}\n{log}"
        )
    written: dict[str, Any] = json.loads(meta.read_text())
    dumps = _valgrind.read_dumps(out_file)
    n = written["calls"]
    written["per_call"] = {
        label: [
            (dumps[f"{label}|{i}|{n}"] - dumps[f"{label}|{i}|0"]) / n
            for i in range(written["rounds"])
        ]
        for label in written["labels"]
    }
    return written


def instructions(sizes: Sizes, jobs: int, progress: Callable[[str], None]) -> dict[str, Any]:
    """Every layout's rounds, and the figures: the median over them, minus the loop."""
    with tempfile.TemporaryDirectory(prefix="geofence-accounts-callgrind-") as tmp:

        def one(layout: int) -> tuple[dict[str, Any], float]:
            started = time.perf_counter()
            found = _run_child([], layout, sizes, Path(tmp))
            return found, time.perf_counter() - started

        layouts = []
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for layout, (found, took) in enumerate(pool.map(one, range(sizes.layouts))):
                progress(f"  callgrind, layout {layout + 1}: {took:.0f} s")
                layouts.append(found)

    def median_of(label: str) -> float:
        return float(statistics.median(v for found in layouts for v in found["per_call"][label]))

    loop = median_of("loop")
    figures: dict[str, Any] = {"loop": round(loop), "calls": {}}
    for call in CALLS:
        plain = median_of(f"{call}/plain") - loop
        rows = {}
        for variant in VARIANTS:
            label = f"{call}/{variant}"
            value = median_of(label) - loop
            # The difference is taken in each process (both share its layout), then the
            # median of those.
            added = statistics.median(
                statistics.median(found["per_call"][label])
                - statistics.median(found["per_call"][f"{call}/plain"])
                for found in layouts
            )
            rows[variant] = {
                "instructions": round(value),
                "added": round(added),
                "pct": round(added / plain * 100, 2),
            }
        figures["calls"][call] = rows
    figures["store_calls"] = {
        name: sum(found["store_calls"][name] for found in layouts) for name in ("memory", "redis")
    }
    figures["redis_commands"] = {}
    for found in layouts:
        for name, calls in found["redis_commands"].items():
            figures["redis_commands"][name] = figures["redis_commands"].get(name, 0) + calls
    figures["requests_with_account"] = sum(found["requests_with_account"] for found in layouts)
    figures["layouts"] = [found["per_call"] for found in layouts]
    return figures


# -- 2. a request that needs the store ---------------------------------------------------------


def _percentiles(samples_ns: Sequence[int]) -> dict[str, float]:
    """median, p90, p99 and max, in microseconds."""
    ordered = sorted(samples_ns)

    def at(share: float) -> float:
        return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))] / 1000

    return {
        "median_us": statistics.median(ordered) / 1000,
        "p90_us": at(0.90),
        "p99_us": at(0.99),
        "max_us": ordered[-1] / 1000,
        "n": len(ordered),
    }


def _added(samples_ns: Sequence[int], baseline_ns: float) -> dict[str, float]:
    return _percentiles([round(s - baseline_ns) for s in samples_ns])


def _timed(call: Callable[[Any], object], items: Sequence[Any]) -> list[int]:
    """The time of each ``call(item)``, in ns (the items are made before)."""
    clock = time.perf_counter_ns
    samples = []
    for item in items:
        started = clock()
        call(item)
        samples.append(clock() - started)
    return samples


async def _atimed(call: Callable[[Any], Any], items: Sequence[Any]) -> list[int]:
    clock = time.perf_counter_ns
    samples = []
    for item in items:
        started = clock()
        await call(item)
        samples.append(clock() - started)
    return samples


def _baseline(n: int) -> dict[str, float]:
    """The blocked request on an engine without [accounts]: median ns, sync and async."""
    import geofence

    plain = geofence.Engine.from_config(config(None))
    info = request_info(BLOCKED)
    if plain.decide(info).action != "block":
        raise RuntimeError(f"{BLOCKED} is not blocked by the policy")
    _timed(lambda _: plain.decide(info), [None] * 500)
    sync = statistics.median(_timed(lambda _: plain.decide(info), [None] * n))

    async def run() -> float:
        await _atimed(lambda _: plain.adecide(info), [None] * 500)
        return statistics.median(await _atimed(lambda _: plain.adecide(info), [None] * n))

    return {"sync_ns": sync, "async_ns": asyncio.run(run())}


class Accounts:
    """Accounts never used before: each request is its account's first, a strike to count
    (made before the clock starts)."""

    def __init__(self, prefix: str) -> None:
        from geofence import Account

        self._make = Account
        self._prefix = prefix
        self._n = 0

    def __call__(self) -> Any:
        return self.take(1)[0]

    def take(self, n: int) -> list[Any]:
        self._n += n
        return [self._make(f"{self._prefix}-{i}") for i in range(self._n - n, self._n)]


def needs_store(server: RedisProcess, n: int, baseline: dict[str, float]) -> dict[str, Any]:
    import redis

    import geofence

    prefix = f"bench-store-{uuid.uuid4().hex[:8]}"
    engine = geofence.Engine.from_config(
        config(server.url, timeout=f"{TIMEOUT_MS}ms", key_prefix=prefix)
    )
    calls = StoreCalls(engine)
    client = redis.Redis(port=server.port)
    info = request_info(BLOCKED)
    accounts = Accounts("needs")
    first = engine.decide(info, account=accounts())
    if (first.action, first.reason, first.status) != ("block", "rule", 451):
        raise RuntimeError(f"unexpected decision {first!r}")
    results: dict[str, Any] = {}

    # The first call after a server start, a failover or SCRIPT FLUSH: the server does not
    # know the script yet (NOSCRIPT), so EVAL follows EVALSHA.
    client.script_flush()
    before = commandstats(client)
    engine.decide(info, account=accounts())
    results["first_after_script_flush"] = round_trips(before, commandstats(client))

    _timed(lambda a: engine.decide(info, account=a), accounts.take(200))  # warm-up
    before, calls_before = commandstats(client), calls.count
    samples = _timed(lambda a: engine.decide(info, account=a), accounts.take(n))
    sent = round_trips(before, commandstats(client))
    results["sync"] = {
        "requests": n,
        "store_calls": calls.count - calls_before,
        "sent": sent,
        "round_trips_per_request": sum(sent.values()) / n,
        "latency": _percentiles(samples),
        "added": _added(samples, baseline["sync_ns"]),
    }

    async def run() -> dict[str, Any]:
        await _atimed(lambda a: engine.adecide(info, account=a), accounts.take(200))
        before, calls_before = commandstats(client), calls.count
        samples = await _atimed(lambda a: engine.adecide(info, account=a), accounts.take(n))
        sent = round_trips(before, commandstats(client))
        return {
            "requests": n,
            "store_calls": calls.count - calls_before,
            "sent": sent,
            "round_trips_per_request": sum(sent.values()) / n,
            "latency": _percentiles(samples),
            "added": _added(samples, baseline["async_ns"]),
        }

    results["async"] = asyncio.run(run())

    # A repeated allowed request with an account, on Redis: no store call (the wall-clock
    # twin of the callgrind check).
    repeated = request_info(_repeated())
    account = geofence.Account(ACCOUNT)
    engine.decide(repeated, account=account)
    before, calls_before = commandstats(client), calls.count
    for _ in range(n):
        engine.decide(repeated, account=account)
    results["repeated_allowed"] = {
        "requests": n,
        "store_calls": calls.count - calls_before,
        "sent": round_trips(before, commandstats(client)),
    }
    client.close()
    if engine.store is not None:
        engine.store.close()
    return results


# -- 3. the store down ---------------------------------------------------------------------


class _Clock:
    """The engines' monotonic clock, which drives the breaker's cooldown: held still, so
    that an open breaker stays open for the whole measurement (in a real outage one request
    per cooldown, 5 s, probes the store and pays the timeout again)."""

    def __call__(self) -> float:
        return 1000.0


@contextmanager
def _quiet_geofence_logger() -> Iterator[list[str]]:
    """The warnings an outage logs (one per engine and breaker opening), kept, not shown."""
    logger = logging.getLogger("geofence")
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record.getMessage())

    handler = Keep(logging.WARNING)
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield seen
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


FAILURES = 3  # consecutive failures that open the breaker (geofence/accounts/_breaker.py)


class _Down:
    """An engine on a store that is down, and the events it emitted."""

    def __init__(self, url: str) -> None:
        import geofence

        self.events: list[Any] = []
        self.engine = geofence.Engine.from_config(
            config(url, timeout=f"{TIMEOUT_MS}ms", key_prefix=f"bench-down-{uuid.uuid4().hex[:8]}"),
            clock=_Clock(),
            on_event=self.events.append,
        )

    def check_open(self) -> None:
        """The breaker opened once (one store_error event), after FAILURES failures."""
        kinds = [e.kind for e in self.events]
        if kinds != ["store_error"]:
            raise RuntimeError(f"expected one store_error (the breaker opening), got {kinds}")

    def close(self) -> None:
        store = self.engine.store
        if store is not None:
            store.close()


def store_down(
    url: str,
    baseline: dict[str, float],
    *,
    engines: int,
    after_open: int,
    pause: Callable[[], None] | None = None,
    resume: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Requests that need the store (a blocked request, a strike) while it is down, with
    ``on_store_error = "local"``: ``engines`` fresh engines x FAILURES requests before the
    breaker opens, sync and async, then ``after_open`` requests on an engine whose breaker
    is open. ``pause``/``resume`` make the black hole once the engines are built (each has
    connected once, as a running app has)."""
    info = request_info(BLOCKED)
    accounts = Accounts("down")
    with _quiet_geofence_logger() as warnings:
        sync_engines = [_Down(url) for _ in range(engines)]
        async_engines = [_Down(url) for _ in range(engines)]
        open_sync, open_async = _Down(url), _Down(url)
        built = len(warnings)
        if pause is not None:
            pause()
        try:
            pre_sync: list[int] = []
            for down in sync_engines:
                decide = down.engine.decide
                for _ in range(FAILURES):
                    pre_sync += _timed(functools.partial(decide, info, None), [accounts()])
                down.check_open()
            decide = open_sync.engine.decide
            for _ in range(FAILURES):
                decide(info, account=accounts())
            open_sync.check_open()
            post_sync = _timed(lambda a: decide(info, account=a), accounts.take(after_open))
            decision = decide(info, account=accounts())

            async def run() -> tuple[list[int], list[int]]:
                pre: list[int] = []
                for down in async_engines:
                    adecide = down.engine.adecide
                    for _ in range(FAILURES):
                        pre += await _atimed(functools.partial(adecide, info, None), [accounts()])
                    down.check_open()
                adecide = open_async.engine.adecide
                for _ in range(FAILURES):
                    await adecide(info, account=accounts())
                open_async.check_open()
                post = await _atimed(lambda a: adecide(info, account=a), accounts.take(after_open))
                return pre, post

            pre_async, post_async = asyncio.run(run())
        finally:
            if resume is not None:
                resume()
        for down in [*sync_engines, *async_engines, open_sync, open_async]:
            down.close()
    return {
        "decision_after_open": [decision.action, decision.reason, decision.status],
        "warnings_at_build": built,
        "warnings": len(warnings),
        "sync": {
            "before_open": _percentiles(pre_sync),
            "before_open_added": _added(pre_sync, baseline["sync_ns"]),
            "after_open": _percentiles(post_sync),
            "after_open_added": _added(post_sync, baseline["sync_ns"]),
        },
        "async": {
            "before_open": _percentiles(pre_async),
            "before_open_added": _added(pre_async, baseline["async_ns"]),
            "after_open": _percentiles(post_async),
            "after_open_added": _added(post_async, baseline["async_ns"]),
        },
    }


# -- 4. adapters, in processes under callgrind ------------------------------------------------

ADAPTERS = ("Django", "Flask", "Starlette")
ADAPTER_VARIANTS = {
    "bare": "the bare app",
    "geofence": "geofence without [accounts] or a hook",
    "memory": "with an account hook, memory://",
    "redis": "with an account hook, Redis",
}


def adapter_hooks() -> dict[str, bool]:
    """Which adapters take an account hook (DESIGN "Accounts")."""
    import inspect

    found: dict[str, bool] = {}
    try:
        from geofence_flask import Geofence

        found["Flask"] = "account" in inspect.signature(Geofence.__init__).parameters
    except ImportError:
        found["Flask"] = False
    try:
        from geofence_asgi import GeofenceMiddleware

        parameters = inspect.signature(GeofenceMiddleware.__init__).parameters
        found["Starlette"] = "account" in parameters
    except ImportError:
        found["Starlette"] = False
    try:
        from geofence_django import conf

        found["Django"] = hasattr(conf, "account_hook")
    except ImportError:
        found["Django"] = False
    return found


def _adapter_apps(
    kind: str, configs: dict[str, dict[str, Any]], account: Any
) -> tuple[dict[str, Any], dict[str, Any], asyncio.AbstractEventLoop | None]:
    """(variant -> app, variant -> engine, the event loop of an ASGI app). The hook returns
    one prebuilt Account: what the adapter adds, not what the app's own lookup costs."""
    import apps

    apps_made: dict[str, Any] = {}
    engines: dict[str, Any] = {}
    loop = None
    if kind == "Django":
        from django.conf import settings
        from django.core.handlers.wsgi import WSGIHandler

        from geofence_django.conf import get_engine

        apps_made["bare"], apps_made["geofence"] = apps.django_handlers(configs["geofence"])
        engines["geofence"] = get_engine()
        settings.GEOFENCE_ACCOUNT = lambda request: account
        for variant in ("memory", "redis"):
            settings.GEOFENCE = configs[variant]
            settings.MIDDLEWARE = ["geofence_django.middleware.GeofenceMiddleware"]
            apps_made[variant] = WSGIHandler()
            engines[variant] = get_engine()
        settings.MIDDLEWARE = []
        settings.GEOFENCE_ACCOUNT = None
    elif kind == "Flask":
        from geofence_flask import Geofence

        apps_made["bare"] = apps.flask_app(None).wsgi_app
        for variant in ("geofence", "memory", "redis"):
            app = apps.flask_app(None)
            hook = None if variant == "geofence" else (lambda: account)
            Geofence(app, config=configs[variant], account=hook)
            apps_made[variant] = app.wsgi_app
            engines[variant] = app.extensions["geofence"].engine
    else:
        from geofence_asgi import GeofenceMiddleware

        loop = asyncio.new_event_loop()
        apps_made["bare"] = apps.starlette_app(None)
        for variant in ("geofence", "memory", "redis"):
            scope_hook = None if variant == "geofence" else (lambda scope: account)
            middleware = GeofenceMiddleware(
                apps.starlette_app(None), config=configs[variant], account=scope_hook
            )
            apps_made[variant] = middleware
            engines[variant] = middleware.engine
    return apps_made, engines, loop


def adapter_child(kind: str, redis_url: str, layout: int, sizes: Sizes, meta_out: Path) -> None:
    """Runs under valgrind: one adapter's bare app, without and with an account."""
    from callgrind import _asgi, _shift_layout, _wsgi

    _shift_layout(layout)
    import redis
    from inprocess import _asgi_status, _wsgi_status

    from geofence import Account

    if not _valgrind.on_valgrind():
        raise SystemExit("this mode runs under valgrind: use `python bench/accounts.py`")
    prefix = f"bench-adapter-{kind}-{layout}-{uuid.uuid4().hex[:8]}"
    configs = {
        "geofence": config(None),
        "memory": config("memory://", refresh="10m"),
        "redis": config(redis_url, refresh="10m", timeout="2s", key_prefix=prefix),
    }
    made, engines, loop = _adapter_apps(kind, configs, Account(ACCOUNT))
    counters = {variant: StoreCalls(engines[variant]) for variant in ("memory", "redis")}
    client = (_repeated(), None)
    blocked = (BLOCKED, None)

    def status(app: Any, who: tuple[str, None]) -> int:
        return _wsgi_status(app, who) if loop is None else _asgi_status(app, who, loop)

    got = {variant: status(app, client) for variant, app in made.items()}
    got["blocked"] = status(made["memory"], blocked)
    if set(got.values()) - {200} != {451} or got["blocked"] != 451:
        raise RuntimeError(f"{kind}: statuses {got}")
    # The repeated client's first request read the store once (the hook's account reached
    # the engine); the blocked one recorded a strike. Nothing more from here on.
    first = {variant: c.count for variant, c in counters.items()}
    if first != {"memory": 2, "redis": 1}:
        raise RuntimeError(f"{kind}: store calls after the first requests {first}")
    server = redis.Redis.from_url(redis_url)
    stats_before = commandstats(server)

    def case(app: Any) -> Callable[[int], Measured]:
        def prepare(n: int) -> Measured:
            clients = [client] * n
            return _wsgi(app, clients) if loop is None else _asgi(app, clients, loop)

        return prepare

    cases = {f"{kind}/{variant}": case(app) for variant, app in made.items()}
    plans: list[tuple[str | None, Measured]] = []
    for label, prepare in cases.items():
        plans.append((None, prepare(sizes.warmup)))
        plans.append((None, prepare(sizes.warmup)))
        for index in range(sizes.rounds):
            plans.append((f"{label}|{index}|0", prepare(0)))
            plans.append((f"{label}|{index}|{sizes.calls}", prepare(sizes.calls)))
    _valgrind.run_plans(plans)
    sent = round_trips(stats_before, commandstats(server))
    server.close()
    if loop is not None:
        loop.close()
    meta_out.write_text(
        json.dumps(
            {
                "labels": list(cases),
                "calls": sizes.calls,
                "rounds": sizes.rounds,
                "store_calls": {v: c.count - first[v] for v, c in counters.items()},
                # requests of each store's app (memory://, Redis)
                "requests_with_account": 2 * sizes.warmup + sizes.rounds * sizes.calls,
                "redis_commands": sent,
            }
        )
    )


def adapter_instructions(
    kinds: Sequence[str], sizes: Sizes, jobs: int, progress: Callable[[str], None]
) -> dict[str, Any]:
    runs = [(kind, layout) for kind in kinds for layout in range(sizes.layouts)]
    with tempfile.TemporaryDirectory(prefix="geofence-accounts-adapters-") as tmp:

        def one(run: tuple[str, int]) -> tuple[dict[str, Any], float]:
            started = time.perf_counter()
            kind, layout = run
            found = _run_child(["--adapter", kind], layout, sizes, Path(tmp))
            return found, time.perf_counter() - started

        by_kind: dict[str, list[dict[str, Any]]] = {kind: [] for kind in kinds}
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for (kind, layout), (found, took) in zip(runs, pool.map(one, runs), strict=True):
                progress(f"  callgrind, {kind}, layout {layout + 1}: {took:.0f} s")
                by_kind[kind].append(found)

    figures: dict[str, Any] = {}
    for kind, layouts in by_kind.items():

        def median_of(label: str, layouts: list[dict[str, Any]] = layouts) -> float:
            return float(
                statistics.median(v for found in layouts for v in found["per_call"][label])
            )

        def paired(label: str, base: str, layouts: list[dict[str, Any]] = layouts) -> float:
            return float(
                statistics.median(
                    statistics.median(found["per_call"][label])
                    - statistics.median(found["per_call"][base])
                    for found in layouts
                )
            )

        bare = median_of(f"{kind}/bare")
        fenced = bare + paired(f"{kind}/geofence", f"{kind}/bare")
        rows: dict[str, Any] = {
            "bare": round(bare),
            "geofence": round(fenced),
            "geofence_pct_of_bare": round((fenced - bare) / bare * 100, 2),
        }
        for variant in ("memory", "redis"):
            added = paired(f"{kind}/{variant}", f"{kind}/geofence")
            rows[variant] = {
                "instructions": round(fenced + added),
                "added": round(added),
                "pct": round(added / fenced * 100, 2),
            }
        rows["store_calls"] = {
            v: sum(found["store_calls"][v] for found in layouts) for v in ("memory", "redis")
        }
        rows["requests_with_account"] = sum(found["requests_with_account"] for found in layouts)
        rows["redis_commands"] = {}
        for found in layouts:
            for name, calls in found["redis_commands"].items():
                rows["redis_commands"][name] = rows["redis_commands"].get(name, 0) + calls
        rows["layouts"] = [found["per_call"] for found in layouts]
        figures[kind] = rows
    return figures


# -- the parent: run everything, one table ---------------------------------------------------


def _versions() -> dict[str, str]:
    found = _provenance.versions(PACKAGES)
    try:
        done = subprocess.run(
            ["redis-server", "--version"], capture_output=True, text=True, check=False
        )
        found["redis-server"] = done.stdout.split(" v=")[1].split()[0]
    except (OSError, IndexError):
        found["redis-server"] = "-"
    return found


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _us(value: float) -> str:
    return f"{value:,.1f} µs" if value < 1000 else f"{value / 1000:,.2f} ms"


def _ok(met: bool) -> str:
    return "yes" if met else "**no**"


def instruction_table(figures: dict[str, Any]) -> str:
    lines = [
        "| repeated allowed request (instructions) | `decide()` | `answer()` |",
        "|---|---:|---:|",
    ]
    for variant, title in VARIANTS.items():
        cells = []
        for call in CALLS:
            row = figures["calls"][call][variant]
            if variant == "plain":
                cells.append(_n(row["instructions"]))
            else:
                cells.append(f"{_n(row['instructions'])} ({row['added']:+,} = {row['pct']:+.1f} %)")
        lines.append(f"| {title} | {' | '.join(cells)} |")
    calls = figures["store_calls"]
    sent = figures["redis_commands"]
    lines.append(
        f"| store calls in {_n(figures['requests_with_account'])} requests with an account "
        f"on each store (memory:// / Redis) | {calls['memory']} / {calls['redis']} | |"
    )
    lines.append(
        "| commands sent to Redis meanwhile (INFO commandstats) | "
        f"{', '.join(f'{k} {v}' for k, v in sent.items()) or 'none'} | |"
    )
    lines.append(f"| loop overhead, subtracted from every row | {_n(figures['loop'])} | |")
    return "\n".join(lines)


def store_table(store: dict[str, Any], down: dict[str, dict[str, Any]], timeout_ms: int) -> str:
    lines = ["| figure | measured | target | met |", "|---|---:|---:|:---:|"]
    for mode, call in (("sync", "decide()"), ("async", "adecide()")):
        found = store[mode]
        sent = ", ".join(f"{k} x{v}" for k, v in found["sent"].items())
        trips = found["round_trips_per_request"]
        lines.append(
            f"| needs the store, `{call}`: round trips per request "
            f"({_n(found['requests'])} requests: {sent}) | {trips:.3f} | ≤ 1 | "
            f"{_ok(trips <= 1 and found['store_calls'] == found['requests'])} |"
        )
    first = store["first_after_script_flush"]
    lines.append(
        "| the first such request after SCRIPT FLUSH (or a server restart): commands | "
        f"{', '.join(f'{k} x{v}' for k, v in first.items())} | ≤ 1 | "
        f"{_ok(sum(first.values()) <= 1)} |"
    )
    for mode, call in (("sync", "decide()"), ("async", "adecide()")):
        latency, added = store[mode]["latency"], store[mode]["added"]
        lines.append(
            f"| needs the store, `{call}` on loopback Redis: median / p99 "
            f"(added to the request without [accounts]) | {_us(latency['median_us'])} / "
            f"{_us(latency['p99_us'])} (+{_us(added['median_us'])} / +{_us(added['p99_us'])}) "
            "| | |"
        )
    repeated = store["repeated_allowed"]
    lines.append(
        f"| repeated allowed request with an account on Redis: store calls, commands in "
        f"{_n(repeated['requests'])} | {repeated['store_calls']}, "
        f"{sum(repeated['sent'].values())} | 0 | "
        f"{_ok(repeated['store_calls'] == 0 and not repeated['sent'])} |"
    )
    limit_ms = timeout_ms + 5
    for kind, title in (("refused", "nothing listening"), ("black hole", "SIGSTOPped server")):
        found = down[kind]
        for mode, call in (("sync", "decide()"), ("async", "adecide()")):
            before = found[mode]["before_open_added"]
            after = found[mode]["after_open_added"]
            lines.append(
                f"| {title}, `{call}`: added before the breaker opens, median / p90 / max "
                f"({before['n']} requests) | {_us(before['median_us'])} / "
                f"{_us(before['p90_us'])} / {_us(before['max_us'])} | ≤ {limit_ms} ms | "
                f"{_ok(before['p90_us'] <= limit_ms * 1000)} |"
            )
            lines.append(
                f"| {title}, `{call}`: added after it opens, median / p90 / p99 / max "
                f"({_n(after['n'])} requests) | {_us(after['median_us'])} / "
                f"{_us(after['p90_us'])} / {_us(after['p99_us'])} / {_us(after['max_us'])} "
                f"| < 50 µs | {_ok(after['p90_us'] < 50)} |"
            )
    return "\n".join(lines)


def adapter_table(figures: dict[str, Any]) -> str:
    lines = [
        "| repeated allowed request (instructions) | bare app | geofence, no account "
        "| with an account, memory:// | with an account, Redis | ≤ 5 % |",
        "|---|---:|---:|---:|---:|:---:|",
    ]
    for kind, rows in figures.items():
        cells = [
            _n(rows["bare"]),
            f"{_n(rows['geofence'])} ({rows['geofence_pct_of_bare']:+.2f} % of bare)",
        ]
        for variant in ("memory", "redis"):
            row = rows[variant]
            cells.append(f"{_n(row['instructions'])} ({row['added']:+,} = {row['pct']:+.2f} %)")
        met = all(rows[v]["pct"] <= 5 for v in ("memory", "redis"))
        lines.append(f"| {kind} | {' | '.join(cells)} | {_ok(met)} |")
    calls = [
        f"{kind} {rows['store_calls']['memory']} / {rows['store_calls']['redis']} in "
        f"{_n(rows['requests_with_account'])} each"
        for kind, rows in figures.items()
    ]
    sent = sum(sum(rows["redis_commands"].values()) for rows in figures.values())
    lines.append(
        f"| store calls (memory:// / Redis), requests with an account | {'; '.join(calls)} "
        "| | | | |"
    )
    lines.append(f"| commands sent to Redis meanwhile | {sent} | | | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    parser.add_argument("--no-callgrind", action="store_true", help="skip the instructions")
    parser.add_argument(
        "--no-adapters", action="store_true", help="skip the adapters' instructions"
    )
    parser.add_argument(
        "--jobs", type=int, default=min(2, os.cpu_count() or 1), help="processes at once"
    )
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per figure")
    parser.add_argument("--child", metavar="REDIS_URL", help=argparse.SUPPRESS)
    parser.add_argument("--adapter", choices=ADAPTERS, help=argparse.SUPPRESS)
    parser.add_argument("--layout", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sizes", help=argparse.SUPPRESS)
    parser.add_argument("--meta", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_sizes = Sizes(**json.loads(args.sizes))
        if args.adapter:
            adapter_child(args.adapter, args.child, args.layout, child_sizes, args.meta)
        else:
            child(args.child, args.layout, child_sizes, args.meta)
        return 0

    started = time.perf_counter()
    commit, versions = _provenance.commit(), _versions()
    print(f"geofence {commit}; " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    results: dict[str, Any] = {"commit": commit, "versions": versions, "timeout_ms": TIMEOUT_MS}
    hooks = adapter_hooks()
    results["adapter_hooks"] = hooks
    kinds = [kind for kind in ADAPTERS if hooks[kind]]
    figures = adapters = None
    progress: Callable[[str], None] = lambda text: print(text, flush=True)  # noqa: E731
    with redis_server() as server:
        print(f"redis-server pid {server.process.pid} on {server.url}", flush=True)
        if args.no_callgrind:
            print("instructions: skipped (--no-callgrind)")
        elif shutil.which("valgrind") is None:
            print("instructions: skipped, valgrind is not installed (apt-get install valgrind)")
        else:
            print(f"valgrind callgrind, {ENGINE_SIZES.layouts} processes ...", flush=True)
            figures = instructions(ENGINE_SIZES, args.jobs, progress)
            results["instructions"] = figures
            if kinds and not args.no_adapters:
                count = len(kinds) * ADAPTER_SIZES.layouts
                print(f"valgrind callgrind, adapters, {count} processes ...", flush=True)
                adapters = adapter_instructions(kinds, ADAPTER_SIZES, args.jobs, progress)
                results["adapters"] = adapters
        print("a request that needs the store ...", flush=True)
        baseline = _baseline(args.requests)
        results["baseline_ns"] = baseline
        results["store"] = needs_store(server, args.requests, baseline)
        print("the store down: nothing listening ...", flush=True)
        down = {
            "refused": store_down(
                f"redis://127.0.0.1:{free_port()}/0",
                baseline,
                engines=20,
                after_open=args.requests * 5,
            )
        }
        print("the store down: a SIGSTOPped redis-server ...", flush=True)
        down["black hole"] = store_down(
            server.url,
            baseline,
            engines=20,
            after_open=args.requests * 5,
            pause=server.pause,
            resume=server.resume,
        )
        results["down"] = down

    print()
    if figures is not None:
        print(instruction_table(figures))
        print(
            f"\nInstructions per call: the median of {ENGINE_SIZES.rounds} rounds of "
            f"{_n(ENGINE_SIZES.calls)} calls in each of {ENGINE_SIZES.layouts} processes laid "
            "out differently, the loop's own cost subtracted; added = the same process's "
            "figure without [accounts] subtracted, median over processes. Embedded database, "
            'example policy, accounts.refresh = "10m" (the run is slow under valgrind).\n'
        )
    if adapters is not None:
        print(adapter_table(adapters))
        print(
            f"\nInstructions per request, in-process as callgrind.py calls each app (a fresh "
            f"environ or scope per request), median of {ADAPTER_SIZES.rounds} rounds of "
            f"{ADAPTER_SIZES.calls} requests in each of {ADAPTER_SIZES.layouts} processes; "
            "added and % against the same request through geofence without an account, "
            "taken in each process. The hook returns a prebuilt Account (what the app's own "
            "lookup costs is the app's).\n"
        )
    missing = [name for name in ADAPTERS if not hooks[name]]
    if missing:
        print(
            f"Per-adapter request with an account: not measured for {', '.join(missing)}: no "
            "account hook there yet (target: at most 5 % more instructions than the same "
            "request without an account).\n"
        )
    print(store_table(results["store"], down, TIMEOUT_MS))
    print(
        f"\nWall clock on this machine (noisy when it is shared), accounts.timeout = "
        f"{TIMEOUT_MS}ms, on_store_error = local; added = the time minus the median of the "
        "same request on an engine without [accounts]. A request that needs the store: a "
        "blocked request of a new account (a strike to count). Store down: 'met' judges "
        "p90 (the max is this machine's scheduling: a request cannot wait for more than "
        "one socket timeout, as nothing is retried). After the breaker opens, the engine's "
        "clock is held still: in a real outage one request per 5 s probes the store and "
        "pays the timeout once more."
    )
    seconds = time.perf_counter() - started
    print(f"Run took {seconds:.0f} s.")
    results["seconds"] = round(seconds, 1)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1, default=str))
        print(f"saved to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

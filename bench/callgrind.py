"""geofence in instructions: callgrind counts per decision and per request, side by side.

    python bench/callgrind.py                       # 8-12 minutes on 2 cores
    python bench/callgrind.py --quick               # about 2 minutes: a development run
    python bench/callgrind.py --against dcad4ab     # and that commit, in the same run
    python bench/callgrind.py --json OUT.json

Wall-clock figures on a shared machine move with its load; the number of instructions a
decision or a request executes does not. Each measurement runs in a process under
``valgrind --tool=callgrind``, which counts only the measured loop (see ``_valgrind.py``):
instructions per call = (count for N calls - count for the same loop over nothing) / N.

Measured, on the real-size GeoIP2-Country file (``realdb.py``) and on the embedded default:
``Engine.decide()`` for a new IPv4 client, a new IPv6 client (each in a network no earlier
client came from: the true first-visit cost), a new IPv4 client on a clustered workload and
on uniformly random addresses (``workload.Addresses``), and a repeated one, against one raw
lookup of the same addresses (``maxminddb`` C-extension ``reader.get()``, or
``iptocc.country_code()``); each adapter in-process in front of the same bare app
(``apps.py``, called as ``inprocess.py`` calls it), for a repeated client, a new client and a
repeated client behind a trusted proxy, as instructions added per request and as a
percentage of the bare app; the peers (``peers.py``: django-geoip2-extras, fastapi-guard with
only its country check, a Starlette BaseHTTPMiddleware pass-through) in front of the same
bare apps; and the RSS an engine on the embedded default adds (``rss.py``, not under
valgrind). Each figure of geofence is measured for every build of every tree asked for
(``trees.py``: ``--builds``, ``--against``), one column each, next to the issue's targets.
Of geofence itself only the public API is used (``Engine``, ``RequestInfo``, the adapters'
documented entry points, through ``apps.py``), so an older commit can be measured too.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
# The tree measured comes first on PYTHONPATH (trees.py); this is the fallback for a child
# started by hand.
sys.path.extend([str(PROJECT), str(PROJECT / "adapters")])

import _provenance  # noqa: E402
import _valgrind  # noqa: E402
import cg_report  # noqa: E402
import rss  # noqa: E402
import trees  # noqa: E402

# One process per (what, database); the processes are independent and run in parallel.
KINDS = ("decide", "Django", "Flask", "Starlette")
PEER_KINDS = ("peer-Django", "peer-Starlette")
DATABASES = ("mmdb", "embedded")
PEERS = "peers"  # the column key of the peers' figures (they do not depend on geofence)
PACKAGES = (
    "geofence-middleware",
    "Django",
    "Flask",
    "starlette",
    "maxminddb",
    "iptocc",
    "django-geoip2-extras",
    "fastapi-guard",
)


@dataclass(frozen=True)
class Sizes:
    decide_repeated: int = 2000  # decide() calls per repeated-client loop
    decide_new: int = 500  # decide() calls per new-client loop
    requests: int = 40  # requests per adapter loop
    warmup: int = 30  # calls in each of the two warm-up loops before a case is measured
    rounds: int = 3  # measurements of each case, one after another, in each process
    layouts: int = 5  # processes per group, each with its memory laid out differently
    rss_processes: int = 5  # fresh processes for the RSS figure


QUICK = Sizes(
    decide_repeated=1000,
    decide_new=200,
    requests=20,
    warmup=20,
    rounds=2,
    layouts=2,
    rss_processes=3,
)


# -- the measured process ------------------------------------------------------------------------

Measured = _valgrind.Measured


# (number of calls, round) -> the loop, over inputs made now. Cases that compare two things
# (raw lookup and decide(), bare app and geofence) get the same new clients in the same round.
Prepare = Callable[[int, str], Measured]


@dataclass
class Case:
    label: str
    prepare: Prepare


Client = tuple[str, str | None]  # (socket peer, X-Forwarded-For or None)


def _wsgi(app: Any, clients: Sequence[Client]) -> Measured:
    from inprocess import _environ, _start_response

    environs = [_environ(*client) for client in clients]

    def go(begin: Callable[[], None], end: Callable[[], None]) -> None:
        start = _start_response
        begin()
        for environ in environs:
            result = app(environ, start)
            for _ in result:
                pass
            close = getattr(result, "close", None)
            if close is not None:
                close()
        end()

    return go


def _asgi(app: Any, clients: Sequence[Client], loop: asyncio.AbstractEventLoop) -> Measured:
    from inprocess import _receive, _scope, _send

    scopes = [_scope(*client) for client in clients]

    async def many(begin: Callable[[], None], end: Callable[[], None]) -> None:
        begin()
        for scope in scopes:
            await app(scope, _receive, _send)
        end()

    def go(begin: Callable[[], None], end: Callable[[], None]) -> None:
        loop.run_until_complete(many(begin, end))

    return go


class Clients:
    """Client addresses, the same in every process and every run (fixed seeds), never handed
    out twice in a process unless under the same key (``workload.py``): each new client lies
    in a database network that no earlier one came from; clustered clients are new
    addresses in networks drawn Zipf-like; uniform ones are drawn over the whole space."""

    def __init__(self, reader: Any) -> None:
        from workload import Addresses

        self._reader = reader
        self._addresses = Addresses()
        self._made: dict[tuple[str, int, str], list[str]] = {}
        self.notes: dict[str, Any] = {}

    def _once(self, what: str, count: int, key: str, make: Callable[[], list[str]]) -> list[str]:
        made = self._made.get((what, count, key))
        if made is None:
            made = self._made[what, count, key] = make()
        return made

    def new(self, count: int, ip_version: int, key: str) -> list[str]:
        return self._once(
            f"new-v{ip_version}",
            count,
            key,
            lambda: self._addresses.new_networks(count, self._reader, ip_version),
        )

    def allowed(self, count: int, ip_version: int, key: str) -> list[str]:
        """As :meth:`new`, but only in networks whose country no rule of the policy names: the
        IPv4 and IPv6 rows then compare the same decision (an allow), whereas the new-network
        supplies differ (the generated file places about a tenth of its IPv4 networks in the
        countries the policy blocks, and about a quarter of its IPv6 ones; a block also makes a
        reference and an observer call)."""
        from workload import ruled_countries

        ruled = ruled_countries()
        what = f"allowed-v{ip_version}"
        return self._where(count, ip_version, what, key, lambda code: code not in ruled)

    def blocked(self, count: int, ip_version: int, key: str) -> list[str]:
        """As :meth:`new`, but only in networks of countries a rule of the policy blocks now:
        the same decision (an enforced block) for both families."""
        from workload import ruled_countries

        blocked = ruled_countries(blocked_only=True)
        what = f"blocked-v{ip_version}"
        return self._where(count, ip_version, what, key, lambda code: code in blocked)

    def _where(
        self, count: int, ip_version: int, what: str, key: str, keep: Callable[[str], bool]
    ) -> list[str]:
        def make() -> list[str]:
            found: list[str] = []
            while len(found) < count:
                for ip in self._addresses.new_networks(count, self._reader, ip_version):
                    record = self._reader.get(ip)
                    if keep(record["country"]["iso_code"]) and len(found) < count:
                        found.append(ip)
            return found

        return self._once(what, count, key, make)

    def clustered(self, count: int, key: str) -> list[str]:
        def make() -> list[str]:
            made, networks = self._addresses.clustered(count, self._reader)
            self.notes.setdefault("clustered_networks", {})[str(count)] = networks
            return made

        return self._once("clustered", count, key, make)

    def uniform(self, count: int, key: str) -> list[str]:
        def found(ip: str) -> bool:
            record = self._reader.get(ip)
            return isinstance(record, dict) and "country" in record

        return self._once("uniform", count, key, lambda: self._addresses.v4(count, found))


def _blocked(reader: Any) -> str:
    """An address that both the database and the embedded default place in CN (blocked by
    the example policy); from its own address supply, so the measured clients do not move."""
    from iptocc import country_code
    from workload import Addresses

    supply = Addresses(seed=7)
    for _ in range(100):
        for ip in supply.new_networks(200, reader):
            record = reader.get(ip)
            if record["country"]["iso_code"] == "CN" and country_code(ip) == "CN":
                return ip
    raise RuntimeError("no CN address found in the database")


# decide() rows: (label suffix, what the clients are)
DECIDE_WORKLOADS = (
    "new-v4",
    "new-v6",
    "allowed-v4",
    "allowed-v6",
    "blocked-v4",
    "blocked-v6",
    "clustered-v4",
    "uniform-v4",
    "repeated",
)


def _decide_cases(db: str, config: dict[str, Any], reader: Any, clients: Clients) -> list[Case]:
    from iptocc import country_code
    from workload import HEADERS, HOST, PATH, REPEATED

    import geofence

    engine = geofence.Engine.from_config(config)
    raw: Callable[[str], object] = reader.get if db == "mmdb" else country_code

    def info(peer: str) -> geofence.RequestInfo:
        return geofence.RequestInfo(peer=peer, headers=HEADERS, method="GET", path=PATH, host=HOST)

    decision = engine.decide(info(REPEATED))
    if decision.country != "US" or decision.client_ip != REPEATED:
        raise RuntimeError(f"unexpected decision for {REPEATED}: {decision!r}")

    supply: dict[str, Callable[[int, str], list[str]]] = {
        "new-v4": lambda n, key: clients.new(n, 4, key),
        "new-v6": lambda n, key: clients.new(n, 6, key),
        "allowed-v4": lambda n, key: clients.allowed(n, 4, key),
        "allowed-v6": lambda n, key: clients.allowed(n, 6, key),
        "blocked-v4": lambda n, key: clients.blocked(n, 4, key),
        "blocked-v6": lambda n, key: clients.blocked(n, 6, key),
        "clustered-v4": clients.clustered,
        "uniform-v4": clients.uniform,
        "repeated": lambda n, key: [REPEATED] * n,
    }
    cases = [Case("loop", lambda n, key: _valgrind.loop(callable, [None] * n))]
    for what in DECIDE_WORKLOADS:
        addresses = supply[what]
        # The raw lookup and decide() get the same addresses (the raw reader caches nothing).
        cases += [
            Case(f"raw/{what}", _calls(raw, addresses)),
            Case(f"decide/{what}", _calls(engine.decide, addresses, info)),
        ]
    return cases


def _calls(
    call: Callable[[Any], object],
    addresses: Callable[[int, str], list[str]],
    wrap: Callable[[str], Any] | None = None,
) -> Prepare:
    """``call(address)``, or ``call(wrap(address))``, over the addresses of a round."""

    def prepare(n: int, key: str) -> Measured:
        chosen = addresses(n, key)
        return _valgrind.loop(call, chosen if wrap is None else [wrap(ip) for ip in chosen])

    return prepare


def clients_measured(db: str) -> tuple[str, ...]:
    """A repeated client is answered from a cache whatever the database: measured once."""
    return cg_report.CLIENTS if db == "mmdb" else ("new",)


def _status_of(loop: asyncio.AbstractEventLoop | None) -> Callable[[Any, Client], int]:
    from inprocess import _asgi_status, _wsgi_status

    def status(app: Any, client: Client) -> int:
        if loop is None:
            return _wsgi_status(app, client)
        return _asgi_status(app, client, loop)

    return status


def _measured(loop: asyncio.AbstractEventLoop | None) -> Callable[[Any, list[Client]], Measured]:
    def measured(app: Any, chosen: list[Client]) -> Measured:
        return _wsgi(app, chosen) if loop is None else _asgi(app, chosen, loop)

    return measured


def _supply(clients: Clients) -> dict[str, Callable[[int, str], list[Client]]]:
    from inprocess import PROXY
    from workload import REPEATED

    return {
        "repeated": lambda n, key: [(REPEATED, None)] * n,
        "new": lambda n, key: [(ip, None) for ip in clients.new(n, 4, key)],
        "proxied": lambda n, key: [(PROXY, REPEATED)] * n,
    }


def _variant_cases(
    kind: str,
    variants: dict[str, Any],
    client_kinds: Sequence[tuple[str, Sequence[str]]],
    clients: Clients,
    loop: asyncio.AbstractEventLoop | None,
) -> list[Case]:
    """A case per (client, variant): ``client_kinds`` is [(client, [variant, ...])]."""
    measured, supply = _measured(loop), _supply(clients)

    def requests(app: Any, chosen: Callable[[int, str], list[Client]]) -> Prepare:
        return lambda n, key: measured(app, chosen(n, key))

    return [
        Case(f"{kind}/{variant}/{client}", requests(variants[variant], supply[client]))
        for client, names in client_kinds
        for variant in names
    ]


def _adapter_cases(
    kind: str, db: str, config: dict[str, Any], clients: Clients, blocked: str
) -> tuple[list[Case], asyncio.AbstractEventLoop | None]:
    import apps
    from inprocess import PROXY
    from workload import REPEATED

    loop: asyncio.AbstractEventLoop | None = None
    variants: dict[str, Any]
    if kind == "Django":
        bare, fenced = apps.django_handlers(config)
        variants = {"bare": bare, "geofence": fenced}
    elif kind == "Flask":
        variants = {
            "bare": apps.flask_app(None).wsgi_app,
            "geofence": apps.flask_app(config).wsgi_app,
        }
    else:
        loop = asyncio.new_event_loop()
        variants = {"bare": apps.starlette_app(None), "geofence": apps.starlette_app(config)}

    status = _status_of(loop)
    got = (
        status(variants["bare"], (blocked, None)),
        status(variants["geofence"], (blocked, None)),
        status(variants["geofence"], (REPEATED, None)),
        status(variants["geofence"], (PROXY, blocked)),
    )
    if got != (200, 451, 200, 451):
        raise RuntimeError(f"{kind}: statuses {got}, expected (200, 451, 200, 451)")
    client_kinds = [(client, ("bare", "geofence")) for client in clients_measured(db)]
    return _variant_cases(kind, variants, client_kinds, clients, loop), loop


def _peer_cases(
    kind: str, db_path: str, clients: Clients, blocked: str
) -> tuple[list[Case], asyncio.AbstractEventLoop | None]:
    import apps
    import peers
    from workload import REPEATED

    loop: asyncio.AbstractEventLoop | None = None
    status = _status_of(None)
    client_kinds: list[tuple[str, tuple[str, ...]]]
    if kind == "peer-Django":
        bare, extras = peers.django_handlers(db_path)
        variants = {"bare": bare, "extras": extras}
        pair = (status(bare, (REPEATED, None)), status(extras, (REPEATED, None)))
        country = peers.extras_country(REPEATED)
        if pair != (200, 200) or country != "US":
            raise RuntimeError(f"django-geoip2-extras: statuses {pair}, country {country}")
        client_kinds = [("repeated", ("bare", "extras")), ("new", ("bare", "extras"))]
    else:
        loop = asyncio.new_event_loop()
        status = _status_of(loop)
        variants = {
            "bare": apps.starlette_app(None),
            "guard": peers.guard_app(db_path),
            "passthrough": peers.passthrough_app(),
        }
        got = (
            status(variants["bare"], (blocked, None)),
            status(variants["guard"], (blocked, None)),
            status(variants["guard"], (REPEATED, None)),
            status(variants["passthrough"], (REPEATED, None)),
        )
        if got != (200, 403, 200, 200):
            raise RuntimeError(f"fastapi-guard: statuses {got}, expected (200, 403, 200, 200)")
        client_kinds = [
            ("repeated", ("bare", "guard", "passthrough")),
            ("new", ("bare", "guard")),
        ]
    return _variant_cases(kind, variants, client_kinds, clients, loop), loop


def _keyed(prepare: Prepare, db: str) -> Prepare:
    return lambda n, key: prepare(n, f"{db} {key}")


_KEEP: list[object] = []


def _shift_layout(index: int) -> None:
    """Lay the process out in its own way before anything is imported.

    The same request costs a few hundred instructions more or less depending on where
    objects land in memory and on the order types were made in: dictionaries keyed by
    identity probe further, the interpreter's type-attribute cache collides more or less.
    Any change to the code moves that, so a single process would show differences of
    +-0.5 % of a Django request that have nothing to do with the change. Each of the
    ``layouts`` processes starts with a different number of types and different holes in
    the heap, and the figure is the median over all of them.
    """
    import random

    rng = random.Random(index)
    _KEEP.extend(type(f"_Layout{index}_{i}", (), {}) for i in range(rng.randrange(0, 400)))
    blobs = [bytearray(rng.randrange(1, 2048)) for _ in range(rng.randrange(100, 2000))]
    _KEEP.extend(blobs[:: rng.randrange(2, 5)])  # the others leave holes


def _geofence_build() -> tuple[str, str]:
    """(the build this process runs, where geofence came from)."""
    import geofence

    where = os.path.realpath(str(geofence.__file__))  # through trees.py's symlinks
    try:
        from geofence import hotpath as speedups
    except ImportError:
        try:
            from geofence import _speedups as speedups  # trees before geofence/hotpath/
        except ImportError:
            return "pure", where
    native = getattr(speedups, "NATIVE", None)
    return ("compiled" if native is not None else "pure"), where


def child(
    kind: str,
    dbs: Sequence[str],
    db_path: str,
    sizes: Sizes,
    layout: int,
    meta_out: Path,
    build: str,
) -> None:
    """Runs under valgrind: set up, warm up, then one dump per (case, number of calls)."""
    _shift_layout(layout)
    import maxminddb
    import peers
    from workload import policy

    if not _valgrind.on_valgrind():
        raise SystemExit("this mode runs under valgrind: use `python bench/callgrind.py`")
    peers.block_network()
    got, where = _geofence_build()
    if got != build and kind not in PEER_KINDS:
        raise RuntimeError(f"asked for the {build} build, {where} runs {got}")
    reader = maxminddb.open_database(db_path, maxminddb.MODE_MMAP_EXT)
    clients = Clients(reader)
    cases: list[Case] = []
    loops: list[asyncio.AbstractEventLoop] = []
    for db in dbs:
        config = policy(db_path if db == "mmdb" else None)
        loop = None
        if kind == "decide":
            made = _decide_cases(db, config, reader, clients)
        elif kind in PEER_KINDS:
            made, loop = _peer_cases(kind, db_path, clients, _blocked(reader))
        else:
            made, loop = _adapter_cases(kind, db, config, clients, _blocked(reader))
        loops += [loop] if loop is not None else []
        # Each database gets clients of its own: geofence's module-wide caches (address
        # parsing) are shared by the engines of one process.
        cases += [Case(f"{db}:{case.label}", _keyed(case.prepare, db)) for case in made]
    size = dict.fromkeys(("loop", "decide/repeated", "raw/repeated"), sizes.decide_repeated)
    default = sizes.decide_new if kind == "decide" else sizes.requests

    # Each case is measured on its own: warmed up twice (every lazy path and cache warm,
    # the interpreter's specialisations settled), then its rounds one after another, each
    # the loop over nothing and the loop over n inputs. Interleaving the cases instead made
    # a figure depend on what ran just before it (heap layout, caches). All inputs are made
    # first; the garbage collector is off in the measured loops, as in timeit: when it runs
    # depends on what came before, and one collection more or less in a loop would move a
    # figure by more than the differences looked for.
    counts = {case.label: size.get(case.label.split(":")[1], default) for case in cases}
    plans: list[tuple[str | None, Measured]] = []
    for case in cases:
        n = counts[case.label]
        # The interpreter's specialisations take a few hundred calls of decide() to settle.
        warm = min(n, 300) if ":decide/" in case.label else sizes.warmup
        plans.append((None, case.prepare(warm, "warm-up 1")))
        plans.append((None, case.prepare(warm, "warm-up 2")))
        for index in range(sizes.rounds):
            key = f"round {index}"
            plans.append((f"{case.label}|{index}|0", case.prepare(0, key)))
            plans.append((f"{case.label}|{index}|{n}", case.prepare(n, key)))
    _valgrind.run_plans(plans)
    for loop in loops:
        loop.close()
    meta_out.write_text(
        json.dumps(
            {
                "counts": counts,
                "rounds": sizes.rounds,
                "build": got,
                "geofence": where,
                "notes": clients.notes,
            }
        )
    )


# -- the parent: run the processes, read the dumps, the tables ------------------------------------


@dataclass(frozen=True)
class Column:
    """One build of one tree: a column of the tables."""

    key: str  # "current compiled", "dcad4ab pure", ...
    tree: trees.Tree
    build: str


PerCall = dict[str, dict[str, list[float]]]  # {db: {label: instructions per call, per round}}


def _run_one(
    column: Column,
    kind: str,
    dbs: tuple[str, ...],
    layout: int,
    db_path: Path,
    sizes: Sizes,
    work: Path,
    retry: bool = False,
) -> tuple[PerCall, dict[str, Any]]:
    """Instructions per call, and the process's notes, for one process."""
    folder = work / f"{column.key.replace(' ', '_')}-{kind}-{'-'.join(dbs)}-{layout}"
    if retry:
        folder = folder.with_name(folder.name + "-retry")
    folder.mkdir()
    out_file = folder / "callgrind.out"
    meta = folder / "meta.json"
    argv = [
        *_valgrind.command(out_file),
        f"--log-file={folder / 'valgrind.log'}",
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        kind,
        ",".join(dbs),
        "--db",
        str(db_path),
        "--sizes",
        json.dumps(sizes.__dict__),
        "--layout",
        str(layout),
        "--meta",
        str(meta),
        "--build",
        column.build,
    ]
    env = {**column.tree.env(column.build), "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0 or not meta.exists():
        log = (folder / "valgrind.log").read_text(errors="replace")[-3000:]
        # A peer logs every request: show the traceback, not the last log lines.
        error = done.stderr[done.stderr.rfind("Traceback") :][-5000:]
        raise RuntimeError(
            f"{column.key}: {kind} {dbs} layout {layout} failed (exit {done.returncode}):\n"
            f"{error}\n{log}"
        )
    written = json.loads(meta.read_text())
    dumps = _valgrind.read_dumps(out_file)
    per_call: PerCall = {db: {} for db in dbs}
    for label, n in written["counts"].items():
        db, name = label.split(":")
        per_call[db][name] = [
            (dumps[f"{label}|{index}|{n}"] - dumps[f"{label}|{index}|0"]) / n
            for index in range(written["rounds"])
        ]
    return per_call, written


# {column key: {db: {label: [[per round] per layout]}}}
Rounds = dict[str, dict[str, dict[str, list[list[float]]]]]


@dataclass
class Measurements:
    rounds: Rounds
    notes: dict[str, dict[str, Any]]  # {column key: what its processes reported}
    failed: list[str]  # processes that failed twice, left out of the figures


def measure(
    db_path: Path,
    sizes: Sizes,
    columns: Sequence[Column],
    kinds: Sequence[str],
    jobs: int,
    progress: Callable[[str], None],
    databases: Sequence[str] = DATABASES,
) -> Measurements:
    """Every round of every process: the geofence groups for each column, the peers once."""
    rounds: Rounds = {}
    notes: dict[str, dict[str, Any]] = {}
    failed: list[str] = []
    # Starting a process under valgrind costs more than most measurements in it, so both
    # databases share one, except for Django, whose settings are per process.
    groups: dict[str, list[tuple[str, ...]]] = {kind: [tuple(databases)] for kind in KINDS}
    groups["Django"] = [(db,) for db in databases]
    groups.update({kind: [("mmdb",)] for kind in PEER_KINDS})
    # The slowest first, so that the processes finish together.
    order = ("Django", "peer-Django", "Flask", "Starlette", "peer-Starlette", "decide")
    runs: list[tuple[Column, str, tuple[str, ...], int]] = []
    for kind in sorted(kinds, key=order.index):
        targets = [Column(PEERS, columns[0].tree, columns[0].build)] if kind in PEER_KINDS else []
        for column in targets or columns:
            for dbs in groups[kind]:
                runs += [(column, kind, dbs, layout) for layout in range(sizes.layouts)]
    with tempfile.TemporaryDirectory(prefix="geofence-callgrind-") as tmp:
        work = Path(tmp)

        def one(
            job: tuple[Column, str, tuple[str, ...], int],
        ) -> tuple[PerCall, dict[str, Any], float]:
            started = time.perf_counter()
            try:
                found, written = _run_one(*job, db_path, sizes, work)
            except RuntimeError as error:
                # Once more: the tree measured may be in the middle of an edit (a helper or
                # an editor saving a file); a real failure fails again.
                progress(f"  retrying once: {str(error)[-2000:]}")
                try:
                    found, written = _run_one(*job, db_path, sizes, work, retry=True)
                except RuntimeError as again:
                    # The other processes still give figures: this one is left out, named.
                    column, kind, dbs, layout = job
                    failed.append(f"{column.key}: {kind} ({', '.join(dbs)}), layout {layout + 1}")
                    progress(f"  FAILED twice, left out: {str(again)[-2000:]}")
                    return {}, {"geofence": None, "notes": {}}, time.perf_counter() - started
            return found, written, time.perf_counter() - started

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            for (column, kind, dbs, layout), (found, written, took) in zip(
                runs, pool.map(one, runs), strict=True
            ):
                progress(
                    f"  {column.key}: {kind}, {' and '.join(dbs)}, layout {layout + 1}: "
                    f"{took:.0f} s"
                )
                column_notes = notes.setdefault(column.key, {})
                if written["geofence"] is not None:
                    column_notes.setdefault("geofence", written["geofence"])
                for name, value in written["notes"].items():
                    column_notes.setdefault(name, value)
                for db, labels in found.items():
                    for label, values in labels.items():
                        rounds.setdefault(column.key, {}).setdefault(db, {}).setdefault(
                            label, []
                        ).append(values)
    return Measurements(rounds, notes, failed)


def _columns(args: argparse.Namespace, made: trees.Trees) -> tuple[list[Column], list[str]]:
    """The columns asked for, and why some asked for cannot be measured."""
    wanted = args.builds.split(",") if args.builds else None
    if wanted is not None and not set(wanted) <= set(trees.BUILDS):
        raise SystemExit(f"--builds: {args.builds!r}: choose from {', '.join(trees.BUILDS)}")
    found: list[Column] = []
    skipped: list[str] = []
    chosen = [made.current()] + ([made.ref(args.against)] if args.against else [])
    for tree in chosen:
        missing = trees.prepare(tree, wanted)
        skipped += [f"{tree.name} {build}: the C extension does not load" for build in missing]
        found += [Column(f"{tree.name} {build}", tree, build) for build in tree.builds]
    return found, skipped


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--db", type=Path, help="a GeoIP2/GeoLite2 Country .mmdb instead of the generated one"
    )
    parser.add_argument("--json", type=Path, help="also write the numbers to this file")
    parser.add_argument(
        "--jobs", type=int, default=min(2, os.cpu_count() or 1), help="processes at once"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=(*KINDS, "peers", "rss"),
        help="measure only this (repeatable)",
    )
    parser.add_argument(
        "--builds",
        help="compiled,pure or one of them (default: both if the C extension loads, else pure)",
    )
    parser.add_argument(
        "--against", metavar="REF", help="also measure this git ref (a temporary worktree)"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"{QUICK.layouts} layouts x {QUICK.rounds} rounds, fewer calls, the real-size file "
        "only: a development run",
    )
    parser.add_argument("--layouts", type=int, help="processes per group (default 5, --quick 2)")
    parser.add_argument("--child", nargs=2, metavar=("KIND", "DB"), help=argparse.SUPPRESS)
    parser.add_argument("--sizes", help=argparse.SUPPRESS)
    parser.add_argument("--layout", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--meta", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--build", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(
            args.child[0],
            args.child[1].split(","),
            str(args.db),
            Sizes(**json.loads(args.sizes)),
            args.layout,
            args.meta,
            args.build,
        )
        return 0

    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    started = time.perf_counter()
    if args.db is not None:
        db_path = args.db.resolve()
    else:
        import realdb

        db_path, took = realdb.ensure()
        print(
            f"Database: {db_path.name} ({'cached' if took is None else f'built in {took:.0f} s'})"
        )
    sizes = QUICK if args.quick else Sizes()
    if args.layouts is not None:
        sizes = dataclasses.replace(sizes, layouts=args.layouts)
    only = set(args.only or (*KINDS, "peers", "rss"))
    kinds = [kind for kind in KINDS if kind in only]
    peer_status = _peer_status(only)
    kinds += [kind for kind, why in peer_status.items() if why is None]
    commit = _provenance.commit()
    versions = _provenance.versions(PACKAGES)
    print(f"geofence {commit}; " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    # A SIGTERM ends the run like Ctrl-C does, so that the worktree and links are removed.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    with trees.Trees() as made:
        columns, skipped = _columns(args, made)
        for text in skipped:
            print(f"not measured: {text}")
        if not columns:
            print("nothing to measure: no build asked for loads", file=sys.stderr)
            return 2
        print(
            f"columns: {', '.join(c.key for c in columns)}; valgrind callgrind, {args.jobs} "
            "processes at once ...",
            flush=True,
        )
        found = measure(
            db_path,
            sizes,
            columns,
            kinds,
            args.jobs,
            lambda text: print(text, flush=True),
            # A development run skips the embedded default's processes and rows.
            ("mmdb",) if args.quick else DATABASES,
        )
        memory: dict[str, list[int]] = {}
        if "rss" in only:
            for column in columns:
                memory[column.key] = rss.added(column.tree, column.build, sizes.rss_processes)
                print(f"  {column.key}: RSS, {sizes.rss_processes} processes", flush=True)
    report = cg_report.Report(
        [c.key for c in columns], found.rounds, found.notes, memory, peer_status
    )
    roots = {c.key: str(c.tree.root) for c in columns}
    print()
    print(report.markdown())
    seconds = time.perf_counter() - started
    print()
    print(report.footer(sizes.rounds, sizes.layouts, sizes.rss_processes, seconds, roots))
    for text in found.failed:
        print(f"- left out (failed twice): {text}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {
                    "commit": commit,
                    "versions": versions,
                    "database": db_path.name,
                    "columns": {
                        c.key: {"tree": str(c.tree.root), "build": c.build} for c in columns
                    },
                    "not_measured": skipped,
                    "failed": found.failed,
                    "sizes": sizes.__dict__,
                    "seconds": round(seconds, 1),
                    **report.as_json(),
                },
                indent=1,
            )
        )
        print(f"saved to {args.json}")
    return 0


def _peer_status(only: set[str]) -> dict[str, str | None]:
    """{peer kind: None if it is measured, else why not}."""
    if "peers" not in only:
        return {}
    import peers

    return {
        "peer-Django": peers.missing("geoip2_extras") or peers.missing("django"),
        "peer-Starlette": peers.missing("guard") or peers.missing("starlette"),
    }


if __name__ == "__main__":
    sys.exit(main())

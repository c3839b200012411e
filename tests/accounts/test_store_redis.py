"""What only the Redis store has to show: its URIs, its keys (one Cluster slot per account,
an expiry, no client address), one round trip per operation, atomic transitions under
concurrency, no retries when the server is gone or hangs, and its asyncio clients.

The answers themselves are the contract suite's (test_store_contract.py). Servers are real
(conftest.py); those a test stops, pauses or configures are its own.
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import re
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import redis
import redis_servers
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot
from redis_servers import RedisCluster, RedisServer, TLSFiles, free_port, redis_server
from tests_support import ANON_DB, CITY_DB

import geofence
from geofence import Account, ConfigError, RequestInfo
from geofence.accounts import Grace, Hit, Limits, StoreError
from geofence.accounts._redis import RedisStore, check_uri, parse
from geofence.accounts._scripts import IDLE, SLACK, account_of, keys

DAY = 86_400.0
T = 1_780_000_000.5
LIMITS = Limits(threshold=3, window=3600.0, action="suspend", suspend_for=DAY)
TIMEOUT = 0.2
# Generous bounds for a loaded CI machine. What they catch is a retry (redis-py's default
# policy made one call to a dead server take seconds), not a few milliseconds.
BOUND = 2 * TIMEOUT + 0.3


def fresh(uri: str, limits: Limits | None = LIMITS, timeout: float = 2.0) -> RedisStore:
    """A store under a prefix of its own (tests share the session's servers)."""
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    return RedisStore(uri, key_prefix=prefix, timeout=timeout, limits=limits)


def admin(server: RedisServer, db: int = 0) -> redis.Redis:
    if server.unix_path is not None:
        return redis.Redis(unix_socket_path=str(server.unix_path), db=db)
    return redis.Redis(host="127.0.0.1", port=server.port or 0, db=db)


def elapsed(call: Callable[[], object]) -> tuple[float, BaseException | None]:
    start = time.perf_counter()
    try:
        call()
    except Exception as error:
        return time.perf_counter() - start, error
    return time.perf_counter() - start, None


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of this test's own, to stop, pause, kill or watch."""
    with redis_server(tmp_path / "redis") as server:
        yield server


# -- URIs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("redis://localhost", {"scheme": "redis", "hosts": (("localhost", 6379),), "db": 0}),
        ("redis://h:7000/3", {"hosts": (("h", 7000),), "db": 3}),
        ("redis://:pw@h/1", {"username": None, "password": "pw", "db": 1}),
        ("redis://me:p%40ss@h", {"username": "me", "password": "p@ss"}),
        ("redis://[::1]:6380", {"hosts": (("::1", 6380),)}),
        ("REDIS://h", {"scheme": "redis"}),
        ("rediss://h:6380/0", {"scheme": "rediss", "tls": {"ssl_check_hostname": True}}),
        (
            "rediss://h/0?ssl_cert_reqs=none",
            {"tls": {"ssl_cert_reqs": "none", "ssl_check_hostname": False}},
        ),
        (
            "rediss://h/0?ssl_check_hostname=false&ssl_cert_reqs=optional",
            {"tls": {"ssl_cert_reqs": "optional", "ssl_check_hostname": False}},
        ),
        ("unix:///run/redis.sock", {"scheme": "unix", "path": "/run/redis.sock", "db": 0}),
        ("unix:///run/my%20redis.sock?db=2", {"path": "/run/my redis.sock", "db": 2}),
        ("unix://:pw@/run/redis.sock", {"password": "pw"}),
        (
            "redis+cluster://h1:7000,h2:7001,[::1]",
            {"hosts": (("h1", 7000), ("h2", 7001), ("::1", 6379)), "db": 0},
        ),
        ("redis+cluster://h1/", {"hosts": (("h1", 6379),)}),
        (
            "redis+sentinel://s1,s2:26380/mymaster",
            {"hosts": (("s1", 26379), ("s2", 26380)), "service": "mymaster", "db": 0},
        ),
        ("redis+sentinel://:pw@s1/main/4", {"service": "main", "db": 4, "password": "pw"}),
    ],
)
def test_store_uris(uri: str, expected: dict[str, object]) -> None:
    check_uri(uri)
    target = parse(uri)
    for name, value in expected.items():
        assert getattr(target, name) == value, name


def test_tls_files_are_passed_on(tls_files: TLSFiles) -> None:
    target = parse(
        f"rediss://h/0?ssl_ca_certs={tls_files.ca}"
        f"&ssl_certfile={tls_files.client_cert}&ssl_keyfile={tls_files.client_key}"
    )
    assert target.tls == {
        "ssl_ca_certs": str(tls_files.ca),
        "ssl_certfile": str(tls_files.client_cert),
        "ssl_keyfile": str(tls_files.client_key),
        "ssl_check_hostname": True,
    }


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("redis://", "no host"),
        ("redis://:6379/0", "a host is missing"),
        ("redis://h:0", "from 1 to 65535"),
        ("redis://h:65536", "from 1 to 65535"),
        ("redis://h:port", "from 1 to 65535"),
        ("redis://h:/0", "empty port"),
        ("redis://h/x", "the database must be a number"),
        ("redis://h/-1", "the database must be a number"),
        ("redis://h1,h2", "one host only; for several use redis+cluster://"),
        ("redis://user@h", "a user needs a password"),
        ("redis://h/0?db=1", "redis:// takes no ?options"),
        ("redis://h/0?ssl_ca_certs=/x", "TLS options need rediss://"),
        ("redis://h/0#frag", "no #fragment"),
        ("redis://[::1/0", "Invalid IPv6 URL"),
        ("redis://[::1]x/0", "cannot read the IPv6 host"),
        ("rediss://h/0?ssl_verify=no", "unknown option 'ssl_verify': the options are ssl_ca"),
        ("rediss://h/0?ssl_ca_certs=/no/such/ca.pem", "ssl_ca_certs: no such file"),
        ("rediss://h/0?ssl_cert_reqs=maybe", "one of none, optional, required"),
        ("rediss://h/0?ssl_check_hostname=perhaps", "true or false"),
        ("rediss://h/0?ssl_cert_reqs=none&ssl_cert_reqs=none", "given 2 times"),
        ("rediss://h/0?novalue", "cannot read the options"),
        ("unix://host/run/redis.sock", "unix:// takes no host"),
        ("unix://", "must be absolute"),
        ("unix:///run/redis.sock?db=x", "the database must be a number"),
        ("unix:///run/redis.sock?timeout=1", "the options are db"),
        ("redis+cluster://", "no host"),
        ("redis+cluster://h1:7000,,h2", "a host is missing"),
        ("redis+cluster://h1:7000/1", "database 0 only"),
        ("redis+sentinel://s1:26379", "name the master's service"),
        ("redis+sentinel://s1:26379/", "name the master's service"),
        ("redis+sentinel://s1/main/x", "the database must be a number"),
    ],
)
def test_bad_store_uris(uri: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_uri(uri)
    assert caught.value.key == "accounts.store"
    assert fragment in caught.value.reason


@pytest.mark.parametrize(
    "uri",
    [
        "redis://:hunter2@h:bad/0",
        "redis://me:hunter2@h/0#x",
        "redis+sentinel://:hunter2@s1",
        "rediss://:hunter2@h/0?ssl_x=1",
    ],
)
def test_a_config_error_never_shows_the_password(uri: str) -> None:
    with pytest.raises(ConfigError) as caught:
        check_uri(uri)
    assert "hunter2" not in str(caught.value) and "***" in str(caught.value)


def test_a_missing_redis_package_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "redis", None)  # import redis now raises ImportError
    with pytest.raises(ConfigError) as caught:
        check_uri("redis://:hunter2@h:6379/0")
    assert caught.value.key == "accounts.store"
    assert 'pip install "geofence-middleware[accounts]"' in caught.value.reason
    assert "hunter2" not in str(caught.value)


def test_description_is_the_uri_without_password() -> None:
    store = RedisStore("redis://me:hunter2@h:1/0", key_prefix="p", timeout=1, limits=None)
    assert store.description == "redis://me:***@h:1/0"


def test_opening_connects_to_nothing() -> None:
    port = free_port()  # nothing listens there: any connection attempt would fail
    for uri in (f"redis://127.0.0.1:{port}", f"redis+cluster://127.0.0.1:{port}"):
        store = RedisStore(uri, key_prefix="p", timeout=TIMEOUT, limits=None)
        with pytest.raises(StoreError):
            store.ping()
        store.close()


def test_a_database_of_its_own(redis_standalone: RedisServer) -> None:
    url = redis_standalone.url.replace("/0", "/5")
    store = fresh(url)
    store.record("org", Hit(T, country="CN"))
    state_key = keys(store._prefix, "org")[0]
    assert admin(redis_standalone, db=5).exists(state_key) == 1
    assert admin(redis_standalone, db=0).exists(state_key) == 0
    store.close()


# -- keys ------------------------------------------------------------------------------------

ODD_IDS = ["org", "a{b}", "{a}", "{", "}", "}{", "%7B", "{}", "", "ünï", "组织", "x}:window"]


@pytest.mark.parametrize("account", ODD_IDS)
def test_an_accounts_keys_share_one_slot(account: str) -> None:
    state, window = keys("geofence", account)
    assert key_slot(state.encode()) == key_slot(window.encode())
    # ... the account's own slot, not one that all accounts would share
    tag = state[state.index("{") + 1 : state.index("}")]
    assert tag and key_slot(state.encode()) == key_slot(tag.encode())


@given(account=st.text(), prefix=st.text(min_size=1))
def test_a_state_key_gives_back_its_account(account: str, prefix: str) -> None:
    state, window = keys(prefix, account)
    tag = state[state.index(":{") + 2 : state.index("}:")]
    assert "{" not in tag and "}" not in tag and tag  # one non-empty hash tag
    assert account_of(state, prefix) == account
    assert account_of(window, prefix) is None


def test_accounts_spread_over_slots() -> None:
    slots = {key_slot(keys("geofence", f"org_{i}")[0].encode()) for i in range(200)}
    assert len(slots) > 150


def test_a_prefix_with_braces_does_not_become_the_hash_tag() -> None:
    state, window = keys("geo{fence}", "org")
    assert key_slot(state.encode()) == key_slot(window.encode()) == key_slot(b"org")


@pytest.mark.slow
def test_on_a_cluster_each_account_lives_on_one_node(redis_cluster_nodes: RedisCluster) -> None:
    store = fresh(redis_cluster_nodes.url)
    prefix = store._prefix
    accounts = [*ODD_IDS, *(f"org_{i}" for i in range(30))]
    for account in accounts:
        store.record(account, Hit(T, strike=True, country="CN"))
    where: dict[bytes, int] = {}
    for index, node in enumerate(redis_cluster_nodes.nodes):
        for key in admin(node).scan_iter(match=f"{prefix}:*"):
            where[key] = index
    assert len(set(where.values())) == 3  # the accounts are spread over every primary
    node = admin(redis_cluster_nodes.nodes[0])
    for account in accounts:
        state, window = (k.encode() for k in keys(prefix, account))
        assert where[state] == where[window], account  # both written, on one node
        assert node.cluster("KEYSLOT", state) == node.cluster("KEYSLOT", window)
    assert [name for name, _ in store.accounts(T)] == sorted(accounts)
    store.close()


def test_keys_expire_unless_a_suspension_runs_until_cleared(own_server: RedisServer) -> None:
    db = admin(own_server)
    limits = Limits(threshold=2, window=600.0, action="suspend", suspend_for=0)
    store = RedisStore(own_server.url, key_prefix="p", timeout=TIMEOUT, limits=limits)
    state, window = keys("p", "org")
    store.record("org", Hit(T, strike=True))
    assert IDLE - 5 <= db.ttl(state) <= IDLE
    assert 600 + SLACK - 5 <= db.ttl(window) <= 600 + SLACK  # stale after window
    store.record("org", Hit(T + 1, strike=True))  # suspended until cleared
    assert db.ttl(state) == -1  # never expires
    assert db.exists(window) == 0
    store.clear("org", T + 2)
    assert IDLE - 5 <= db.ttl(state) <= IDLE


def test_without_limits_the_state_expires_after_the_idle_time(own_server: RedisServer) -> None:
    store = RedisStore(own_server.url, key_prefix="p", timeout=TIMEOUT, limits=None)
    store.record("org", Hit(T, country="CN"))
    assert IDLE - 5 <= admin(own_server).ttl(keys("p", "org")[0]) <= IDLE


def test_a_suspension_longer_than_the_idle_time_outlives_it(own_server: RedisServer) -> None:
    limits = Limits(threshold=1, window=600.0, action="suspend", suspend_for=1000 * DAY)
    store = RedisStore(own_server.url, key_prefix="p", timeout=TIMEOUT, limits=limits)
    store.record("org", Hit(T, strike=True))
    ttl = admin(own_server).ttl(keys("p", "org")[0])
    assert 1000 * DAY + IDLE - 5 <= ttl <= 1000 * DAY + IDLE


def dump(server: RedisServer, prefix: str) -> list[str]:
    """Every key under ``prefix`` and everything stored in it, as text."""
    db = admin(server)
    found: list[str] = []
    for key in db.scan_iter(match=f"{prefix}:*"):
        found.append(key.decode())
        kind = db.type(key).decode()
        if kind == "hash":
            for field, value in db.hgetall(key).items():
                found += [field.decode(), value.decode()]
        elif kind == "zset":
            for member, score in db.zrange(key, 0, -1, withscores=True):
                found += [member.decode(), repr(score)]
        else:
            pytest.fail(f"unexpected {kind} at {key!r}")
    return found


def looks_like_an_address(text: str) -> bool:
    """Whether any part of ``text`` reads as an IPv4 or IPv6 address."""
    for token in re.findall(r"[0-9A-Fa-f:.]{2,}", text):
        for start in range(len(token)):
            for end in range(start + 2, len(token) + 1):
                try:
                    ipaddress.ip_address(token[start:end])
                except ValueError:
                    continue
                return True
    return False


def test_the_address_check_would_see_one() -> None:
    assert looks_like_an_address("seen from 81.2.69.142")
    assert looks_like_an_address("x:2a02:d0c0::1") and looks_like_an_address("g:::ffff:1.2.3.4")
    assert not looks_like_an_address("1780000000.5") and not looks_like_an_address("c:CN")


def test_no_client_address_is_ever_stored(redis_standalone: RedisServer) -> None:
    prefix = f"ip-{uuid.uuid4().hex[:8]}"
    enforce = datetime(2026, 7, 9, tzinfo=timezone.utc)
    engine = geofence.Engine.from_config(
        {
            "geoip": {"country_db": CITY_DB, "anonymous_db": ANON_DB},
            "accounts": {"store": redis_standalone.url, "key_prefix": prefix, "refresh": 0},
            "strikes": {"threshold": 3, "window": "1h", "suspend_for": "1d", "count": ["block"]},
            "rules": [
                {
                    "name": "unsupported",
                    "action": "block",
                    "regions": ["CN", "RU"],
                    "enforce_from": enforce.isoformat(),
                    "account_grace": "1d",
                },
                {"name": "abroad", "action": "warn", "home_mismatch": True},
            ],
        }
    )
    addresses = ["175.16.199.1", "2a02:d0c0::1", "81.2.69.142", "216.160.83.56", "89.160.20.112"]
    for day in range(4):
        for address in addresses:
            for account in ("org_a", "org_b"):
                engine.decide(
                    RequestInfo(peer=address, method="GET", path="/v1/models"),
                    enforce + timedelta(days=day),
                    Account(account, home_country="US"),
                )
    stored = dump(redis_standalone, prefix)
    assert any(text.startswith("g:") for text in stored)  # grace, strikes and countries
    assert any(text.startswith("c:") for text in stored)  # were stored ...
    assert len([k for k in stored if k.endswith("}:state")]) == 2
    for text in stored:  # ... and no address
        assert not looks_like_an_address(text), text
        assert not any(address in text for address in addresses), text
    assert engine.store is not None
    engine.store.close()


# -- one round trip --------------------------------------------------------------------------


Watched = tuple[list[tuple[str, str]], dict[str, int]]


_MONITOR_LINE = re.compile(rb'^[\d.]+ \[\d+ (\S+)\] "([^"]*)"')


def watch(server: RedisServer, run: Callable[[], object]) -> Watched:
    """The commands clients sent while ``run`` ran, as (client, command name), from MONITOR
    (a client "lua" is a script's own command), and the number of failed calls of each
    command, from the server's command statistics."""
    marker = f"end-{uuid.uuid4().hex}"
    db = admin(server)
    db.config_resetstat()
    with admin(server).monitor() as monitor:
        run()
        db.echo(marker)  # a connection made before: its own setup is not seen
        seen = []
        while True:
            # The raw line: redis-py 5.0's parser loses the name of a command with newlines
            # in its arguments (EVAL's script).
            line = monitor.connection.read_response()
            if marker.encode() in line:
                break
            parsed = _MONITOR_LINE.match(line)
            assert parsed, line
            seen.append((parsed.group(1).decode(), parsed.group(2).decode().upper()))
    failed = {
        name.removeprefix("cmdstat_").upper(): stat["failed_calls"]
        for name, stat in db.info("commandstats").items()
        if stat.get("failed_calls")
    }
    return seen, failed


def sent(watched: Watched) -> list[str]:
    return [name for kind, name in watched[0] if kind != "lua"]


def test_one_round_trip_per_operation(own_server: RedisServer) -> None:
    store = RedisStore(own_server.url, key_prefix="p", timeout=TIMEOUT, limits=LIMITS)
    watched = watch(own_server, lambda: store.record("org", Hit(T, strike=True)))
    # A new connection says who it is, then the server does not know the script yet:
    # EVALSHA fails (NOSCRIPT), and EVAL runs it and keeps it for every later EVALSHA.
    first = sent(watched)
    assert first[-2:] == ["EVALSHA", "EVAL"] and watched[1] == {"EVALSHA": 1}
    assert set(first[:-2]) <= {"CLIENT", "HELLO", "SELECT"}
    store.fetch("warm", T)  # the other two scripts, too
    store.clear("warm", T)
    hit = Hit(T + 1, grace=Grace("r", DAY, None), strike=True, country="CN")
    for operation in (
        lambda: store.record("org", hit),
        lambda: store.record("org", Hit(T + 2, strike=True)),  # the one that suspends
        lambda: store.fetch("org", T + 3),
        lambda: store.clear("org", T + 4),
        lambda: store.fetch("nobody", T),
    ):
        watched = watch(own_server, operation)
        assert sent(watched) == ["EVALSHA"] and watched[1] == {}
        assert len(watched[0]) > 1  # the script's own commands, in the same round trip


def test_one_round_trip_per_async_operation(own_server: RedisServer) -> None:
    store = RedisStore(own_server.url, key_prefix="p", timeout=TIMEOUT, limits=LIMITS)
    store.record("warm", Hit(T))  # the server knows the scripts
    store.fetch("warm", T)

    async def operations() -> None:
        await store.arecord("org", Hit(T, strike=True))
        await store.afetch("org", T)
        await store.arecord("org", Hit(T + 1, country="CN"))

    watched = watch(own_server, lambda: asyncio.run(operations()))
    commands = sent(watched)
    assert commands.count("EVALSHA") == 3 and "EVAL" not in commands and watched[1] == {}
    assert set(commands) - {"EVALSHA"} <= {"CLIENT", "HELLO", "SELECT"}  # the connection's


@pytest.mark.slow
def test_one_round_trip_on_a_cluster(redis_cluster_nodes: RedisCluster) -> None:
    store = fresh(redis_cluster_nodes.url)
    for account in ("a", "b", "c", "d"):
        store.fetch(account, T)  # slot map read, scripts known on every node used
    for account in ("a", "b", "c", "d"):
        per_node = [
            sent(watch(node, lambda a=account: store.record(a, Hit(T, strike=True))))  # type: ignore[misc]
            for node in redis_cluster_nodes.nodes
        ]
        assert sorted(map(len, per_node)) == [0, 0, 1]
        assert ["EVALSHA"] in per_node
    store.close()


# -- concurrency -----------------------------------------------------------------------------


@pytest.mark.parametrize("shared", [True, False], ids=["one-store", "a-store-per-thread"])
def test_threads_racing_for_one_account(redis_standalone: RedisServer, shared: bool) -> None:
    threads, each, threshold = 8, 50, 100
    limits = Limits(threshold=threshold, window=3600.0, action="suspend", suspend_for=DAY)
    first = fresh(redis_standalone.url, limits, timeout=5.0)
    prefix = first._prefix
    stores = [
        first
        if shared
        else RedisStore(redis_standalone.url, key_prefix=prefix, timeout=5.0, limits=limits)
        for _ in range(threads)
    ]
    start = threading.Barrier(threads)
    tripped: list[int] = []
    errors: list[BaseException] = []

    def work(store: RedisStore) -> None:
        try:
            start.wait()
            for i in range(each):
                outcome = store.record(
                    "org", Hit(T + i / 1000, strike=True, strike_if_suspended=True)
                )
                tripped.append(outcome.tripped)
        except BaseException as error:
            errors.append(error)

    workers = [threading.Thread(target=work, args=(s,)) for s in stores]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert not errors
    assert len(tripped) == threads * each
    assert sum(tripped) == 1  # one suspension, whatever the interleaving
    state = first.fetch("org", T + 1)
    assert state.strikes == threads * each and state.suspended(T + 1)
    for store in {id(s): s for s in stores}.values():
        store.close()


# -- outages: nothing listening, a black hole, killed and restarted -------------------------


def test_nothing_listening_fails_at_once() -> None:
    store = fresh(f"redis://127.0.0.1:{free_port()}/0", timeout=TIMEOUT)
    for call in (lambda: store.fetch("org", T), lambda: asyncio.run(store.afetch("org", T))):
        took, error = elapsed(call)
        assert isinstance(error, StoreError) and "ConnectionError" in str(error)
        assert took < TIMEOUT + 0.1  # refused: no waiting, no retry


def assert_one_timeout(took: float, error: BaseException | None) -> None:
    assert isinstance(error, StoreError) and "Timeout" in str(error), error
    assert TIMEOUT * 0.9 <= took < BOUND  # it waited for the timeout, once


@pytest.mark.parametrize("warm", [True, False], ids=["connected", "new-connection"])
def test_a_black_hole_costs_one_timeout(own_server: RedisServer, warm: bool) -> None:
    store = RedisStore(own_server.url, key_prefix="p", timeout=TIMEOUT, limits=LIMITS)
    if warm:
        store.fetch("org", T)
    own_server.pause()  # the kernel still accepts connections; nothing answers
    try:
        assert_one_timeout(*elapsed(lambda: store.record("org", Hit(T, strike=True))))
        assert_one_timeout(*elapsed(lambda: store.fetch("org", T)))
    finally:
        own_server.resume()
    assert store.fetch("org", T).strikes in (0, 1)  # answers again (the timed-out record
    # may have run once the server woke: a timeout says nothing about what happened)


@pytest.mark.parametrize("warm", [True, False], ids=["connected", "new-connection"])
def test_a_black_hole_costs_one_timeout_async(own_server: RedisServer, warm: bool) -> None:
    store = RedisStore(own_server.url, key_prefix="p", timeout=TIMEOUT, limits=LIMITS)

    async def run() -> None:
        if warm:
            await store.afetch("org", T)
        own_server.pause()
        try:
            for _ in range(2):
                start = time.perf_counter()
                try:
                    await store.afetch("org", T)
                except StoreError as error:
                    assert_one_timeout(time.perf_counter() - start, error)
                else:
                    pytest.fail("no StoreError")
        finally:
            own_server.resume()
        assert (await store.afetch("org", T)).strikes == 0

    asyncio.run(run())


def test_killed_then_restarted(own_server: RedisServer) -> None:
    store = RedisStore(own_server.url, key_prefix="p", timeout=TIMEOUT, limits=LIMITS)
    store.record("org", Hit(T, strike=True))
    own_server.kill()
    took, error = elapsed(lambda: store.fetch("org", T))
    assert isinstance(error, StoreError) and took < BOUND
    own_server.start()  # same port, empty (no persistence), no script loaded
    assert store.record("org", Hit(T, strike=True)).state.strikes == 1


def test_killed_then_restarted_async(own_server: RedisServer) -> None:
    store = RedisStore(own_server.url, key_prefix="p", timeout=TIMEOUT, limits=LIMITS)

    async def run() -> None:
        await store.arecord("org", Hit(T, strike=True))
        own_server.kill()
        start = time.perf_counter()
        with pytest.raises(StoreError):
            await store.afetch("org", T)
        assert time.perf_counter() - start < BOUND
        own_server.start()
        assert (await store.arecord("org", Hit(T, strike=True))).state.strikes == 1

    asyncio.run(run())


@pytest.mark.slow
def test_a_cluster_node_in_a_black_hole_costs_one_timeout(
    redis_cluster_nodes: RedisCluster,
) -> None:
    store = fresh(redis_cluster_nodes.url, timeout=TIMEOUT)
    store.record("org", Hit(T))
    state = keys(store._prefix, "org")[0]
    slot = admin(redis_cluster_nodes.nodes[0]).cluster("KEYSLOT", state)
    (owner,) = (
        node
        for node in redis_cluster_nodes.nodes
        if admin(node).cluster("COUNTKEYSINSLOT", slot) > 0
    )

    async def run() -> None:
        await store.afetch("org", T)  # this loop's client knows the slot map
        owner.pause()  # shorter than cluster-node-timeout: the cluster itself stays up
        try:
            assert_one_timeout(*elapsed(lambda: store.fetch("org", T)))
            start = time.perf_counter()
            with pytest.raises(StoreError) as caught:
                await store.afetch("org", T)
            assert_one_timeout(time.perf_counter() - start, caught.value)
        finally:
            owner.resume()
        assert (await store.afetch("org", T)).strikes == 0

    asyncio.run(run())
    assert store.fetch("org", T).strikes == 0
    store.close()


def test_a_flushed_script_cache_is_refilled(own_server: RedisServer) -> None:
    store = RedisStore(own_server.url, key_prefix="p", timeout=TIMEOUT, limits=LIMITS)
    store.record("org", Hit(T, strike=True))
    admin(own_server).script_flush()
    assert store.record("org", Hit(T, strike=True)).state.strikes == 2
    assert asyncio.run(store.arecord("org", Hit(T, strike=True))).state.strikes == 3


@pytest.mark.slow
def test_a_cluster_with_nothing_listening_fails_at_once() -> None:
    uri = f"redis+cluster://127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    store = fresh(uri, timeout=TIMEOUT)
    for call in (lambda: store.fetch("org", T), lambda: asyncio.run(store.afetch("org", T))):
        took, error = elapsed(call)
        assert isinstance(error, StoreError) and took < TIMEOUT + 0.1


def test_a_missing_redis_server_fails_with_the_install_hint(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(redis_servers.shutil, "which", lambda name: None)
    hint = "apt-get install redis-server redis-tools"
    with pytest.raises(pytest.fail.Exception, match=hint), redis_server(tmp_path):
        pass


# -- answers that are not ours --------------------------------------------------------------


def test_a_key_of_another_type_is_a_store_error(own_server: RedisServer) -> None:
    store = RedisStore(own_server.url, key_prefix="p", timeout=TIMEOUT, limits=LIMITS)
    admin(own_server).set(keys("p", "org")[0], "not a hash")
    with pytest.raises(StoreError, match="WRONGTYPE"):
        store.record("org", Hit(T))
    with pytest.raises(StoreError, match="WRONGTYPE"):
        asyncio.run(store.afetch("org", T))


def test_a_field_we_never_wrote_is_a_store_error(own_server: RedisServer) -> None:
    store = RedisStore(own_server.url, key_prefix="p", timeout=TIMEOUT, limits=LIMITS)
    admin(own_server).hset(keys("p", "org")[0], "ip", "81.2.69.142")
    with pytest.raises(StoreError, match="answered nonsense"):
        store.fetch("org", T)


def test_listing_ignores_other_prefixes_and_lookalike_keys(own_server: RedisServer) -> None:
    db = admin(own_server)
    db.set("a*b:{x}:state:old", "n")
    db.set("a*b:{x}", "n")
    db.hset("aXb:{y}:state", "n", "0")  # matched if the * in the prefix were a wildcard
    store = RedisStore(own_server.url, key_prefix="a*b", timeout=TIMEOUT, limits=None)
    assert list(store.accounts(T)) == []
    store.record("z", Hit(T))
    assert [name for name, _ in store.accounts(T)] == ["z"]


# -- credentials and TLS --------------------------------------------------------------------


def test_a_password(tmp_path: Path) -> None:
    with redis_server(tmp_path / "auth", extra=["--requirepass", "s3cret"]) as server:
        url = server.url.replace("redis://", "redis://:s3cret@")
        store = RedisStore(url, key_prefix="p", timeout=TIMEOUT, limits=None)
        store.ping()
        assert asyncio.run(store.afetch("org", T)).strikes == 0
        wrong = RedisStore(
            url.replace("s3cret", "wrong"), key_prefix="p", timeout=TIMEOUT, limits=None
        )
        with pytest.raises(StoreError) as caught:
            wrong.fetch("org", T)
        assert "wrong" not in str(caught.value) and "***" in str(caught.value)
        with pytest.raises(StoreError):
            RedisStore(server.url, key_prefix="p", timeout=TIMEOUT, limits=None).ping()


def test_a_tls_client_certificate(tmp_path: Path, tls_files: TLSFiles) -> None:
    with redis_server(
        tmp_path / "mtls", tls=tls_files, extra=["--tls-auth-clients", "yes"]
    ) as server:
        with_cert = (
            f"{server.url}&ssl_certfile={tls_files.client_cert}&ssl_keyfile={tls_files.client_key}"
        )
        store = RedisStore(with_cert, key_prefix="p", timeout=2.0, limits=None)
        store.ping()
        assert asyncio.run(store.afetch("org", T)).strikes == 0
        store.close()
        without = RedisStore(server.url, key_prefix="p", timeout=2.0, limits=None)
        with pytest.raises(StoreError):
            without.ping()
        without.close()


def test_tls_checks_the_server_certificate(redis_tls: RedisServer) -> None:
    system_cas = redis_tls.url.split("?")[0]  # our test CA is not one of them
    with pytest.raises(StoreError, match="certificate verify failed"):
        RedisStore(system_cas, key_prefix="p", timeout=2.0, limits=None).ping()
    unchecked = RedisStore(
        system_cas + "?ssl_cert_reqs=none", key_prefix="p", timeout=2.0, limits=None
    )
    unchecked.ping()
    unchecked.close()
    misnamed = redis_tls.url.replace("127.0.0.1", "localhost")  # in the certificate too
    store = RedisStore(misnamed, key_prefix="p", timeout=2.0, limits=None)
    store.ping()
    store.close()


# -- asyncio clients ------------------------------------------------------------------------


def clients(db: redis.Redis) -> int:
    """The connections to the server, but ``db``'s own."""
    own = db.client_id()
    return sum(1 for client in db.client_list() if int(client["id"]) != own)


def test_each_event_loop_closes_its_client(own_server: RedisServer) -> None:
    store = RedisStore(own_server.url, key_prefix="p", timeout=TIMEOUT, limits=LIMITS)
    db = admin(own_server)
    # What earlier tests left for the collector (a socket of a store they never closed) is
    # theirs: collected before this test turns ResourceWarning into an error.
    gc.collect()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        for _ in range(5):
            asyncio.run(store.afetch("org", T))
            assert clients(db) == 0  # closed as its loop shut down
        gc.collect()
    store.fetch("org", T)
    assert clients(db) == 1
    store.close()
    assert clients(db) == 0


def test_close_from_inside_a_running_loop(own_server: RedisServer) -> None:
    store = RedisStore(own_server.url, key_prefix="p", timeout=TIMEOUT, limits=LIMITS)

    async def run() -> None:
        await store.afetch("org", T)
        store.close()  # a lifespan shutdown handler calling the sync close
        await asyncio.sleep(0)

    db = admin(own_server)
    asyncio.run(run())
    assert clients(db) == 0


def test_a_loop_in_another_thread_gets_its_own_client(own_server: RedisServer) -> None:
    store = RedisStore(own_server.url, key_prefix="p", timeout=TIMEOUT, limits=LIMITS)
    results: list[int] = []

    def in_thread() -> None:
        results.append(asyncio.run(store.arecord("org", Hit(T, strike=True))).state.strikes)

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(10)
    assert results == [1]
    assert asyncio.run(store.afetch("org", T)).strikes == 1

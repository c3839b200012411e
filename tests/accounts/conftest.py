"""Real Redis servers for the account store tests, started once per session on loopback.

The servers start only when a test asks for them (a run with ``-m "not slow"`` starts no
Cluster or Sentinel). Missing binaries fail the tests with the install hint: see
tests/helpers/redis_servers.py.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from redis_servers import (
    RedisCluster,
    RedisServer,
    Sentinel,
    TLSFiles,
    make_tls_files,
    redis_cluster,
    redis_sentinel,
    redis_server,
)

from geofence.accounts import Limits, MemoryStore, Store

# Every kind of store the contract suite runs on. Cluster and Sentinel take seconds to
# start: tox runs them in one env of the matrix (the "slow" marker).
STORE_KINDS = [
    "memory",
    "redis",
    "unix",
    "tls",
    pytest.param("cluster", marks=pytest.mark.slow),
    pytest.param("sentinel", marks=pytest.mark.slow),
]
# Generous: the contract tests are not about time. 2 s once failed under load (25 concurrent TLS
# handshakes of one test on an oversubscribed 2-core machine); a timeout only bounds a failure.
TIMEOUT = 10.0

MakeStore = Callable[[Limits | None], Store]


@pytest.fixture(scope="session")
def redis_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("redis")


@pytest.fixture(scope="session")
def redis_standalone(redis_dir: Path) -> Iterator[RedisServer]:
    with redis_server(redis_dir / "standalone") as server:
        yield server


@pytest.fixture(scope="session")
def redis_unix(redis_dir: Path) -> Iterator[RedisServer]:
    with redis_server(redis_dir / "unix", unix=True) as server:
        yield server


@pytest.fixture(scope="session")
def tls_files(redis_dir: Path) -> TLSFiles:
    return make_tls_files(redis_dir / "certs")


@pytest.fixture(scope="session")
def redis_tls(redis_dir: Path, tls_files: TLSFiles) -> Iterator[RedisServer]:
    with redis_server(redis_dir / "tls", tls=tls_files) as server:
        yield server


@pytest.fixture(scope="session")
def redis_cluster_nodes(redis_dir: Path) -> Iterator[RedisCluster]:
    with redis_cluster(redis_dir / "cluster") as cluster:
        yield cluster


@pytest.fixture(scope="session")
def redis_sentinel_server(redis_dir: Path, redis_standalone: RedisServer) -> Iterator[Sentinel]:
    with redis_sentinel(redis_dir / "sentinel", redis_standalone) as sentinel:
        yield sentinel


def store_uri(request: pytest.FixtureRequest, kind: str) -> str:
    """The URI of a session server of this kind, starting it on first use."""
    fixture = {
        "redis": "redis_standalone",
        "unix": "redis_unix",
        "tls": "redis_tls",
        "cluster": "redis_cluster_nodes",
        "sentinel": "redis_sentinel_server",
    }[kind]
    url: str = request.getfixturevalue(fixture).url
    return url


def open_redis(uri: str, *, limits: Limits | None, timeout: float = TIMEOUT) -> Store:
    from geofence.accounts._redis import RedisStore

    # A prefix of its own per store: tests share the session's servers.
    prefix = f"test-{uuid.uuid4().hex[:12]}"
    return RedisStore(uri, key_prefix=prefix, timeout=timeout, limits=limits)


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def make_store(request: pytest.FixtureRequest, store_kind: str) -> Iterator[MakeStore]:
    """``make_store(limits)``: a fresh, empty store of the kind under test (closed after)."""
    stores: list[Store] = []

    def make(limits: Limits | None = None) -> Store:
        if store_kind == "memory":
            store: Store = MemoryStore(limits)
        else:
            store = open_redis(store_uri(request, store_kind), limits=limits)
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()

"""Redis account stores: ``redis://``, ``rediss://``, ``unix://``, ``redis+cluster://`` and
``redis+sentinel://``, from the ``redis`` package (the ``accounts`` extra).

This module imports without ``redis``: :func:`check_uri` turns its absence into a ConfigError.
Each operation is one Lua script (:mod:`geofence.accounts._scripts`), so one round trip that
the server runs atomically, and every transition is decided there, once for every process.

No call is retried: redis-py's default retry policy (with backoff) turned one call to a dead
server into seconds, and a request waits for its store call. Every socket operation is bounded
by ``timeout``; a call to a server that never answers ends after about ``timeout``.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from geofence._errors import ConfigError
from geofence.accounts import _scripts
from geofence.accounts._store import (
    EMPTY,
    AccountState,
    Hit,
    Limits,
    Outcome,
    StoreError,
    next_suspension,
)
from geofence.accounts._uri import KEY, redact

if TYPE_CHECKING:
    from types import ModuleType

_T = TypeVar("_T")
INSTALL = 'install the extra: pip install "geofence-middleware[accounts]"'
_DEFAULT_PORTS = {"redis": 6379, "rediss": 6379, "redis+cluster": 6379, "redis+sentinel": 26379}
_TLS_OPTIONS = {
    "ssl_ca_certs": "a PEM file of the CAs to trust (default: the system's)",
    "ssl_certfile": "a client certificate, for a server that asks for one",
    "ssl_keyfile": "the client certificate's key",
    "ssl_cert_reqs": "none, optional or required (default)",
    "ssl_check_hostname": "true (default) or false",
}
_CERT_REQS = ("none", "optional", "required")
_BOOLEANS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}


# -- URIs -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """Where a store URI points: what the clients are built from."""

    scheme: str
    hosts: tuple[tuple[str, int], ...] = ()
    path: str | None = None  # unix://
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    service: str | None = None  # redis+sentinel://
    tls: Mapping[str, object] | None = None  # redis-py's ssl_* arguments (rediss://)


def check_uri(uri: str) -> None:
    """A ConfigError naming ``accounts.store`` for a URI we cannot use, or a missing extra."""
    parse(uri)
    _redis_module()


def parse(uri: str) -> Target:
    shown = _shown(uri)

    def bad(reason: str) -> ConfigError:
        return ConfigError(KEY, f"{shown!r}: {reason}")

    try:
        parts = urlsplit(uri)
    except ValueError as error:  # an unbalanced [ in an IPv6 host
        raise bad(str(error)) from None
    scheme = parts.scheme.lower()
    if parts.fragment:
        raise bad("a store URI has no #fragment")
    userinfo, _, hostpart = parts.netloc.rpartition("@")
    username, password = _credentials(userinfo, bad)
    options = _options(parts.query, bad)
    tls = _tls(options, bad) if scheme == "rediss" else None
    allowed = {"db"} if scheme == "unix" else set(_TLS_OPTIONS) if scheme == "rediss" else set()
    unknown = sorted(set(options) - allowed)
    if unknown:
        hint = (
            f"the options are {', '.join(sorted(allowed))}"
            if allowed
            else f"{scheme}:// takes no ?options"
        )
        if scheme != "rediss" and any(name.startswith("ssl_") for name in unknown):
            hint += "; TLS options need rediss://"
        raise bad(f"unknown option {unknown[0]!r}: {hint}")
    base = Target(scheme, username=username, password=password)

    if scheme == "unix":
        if hostpart:
            raise bad("unix:// takes no host: the socket's path follows, unix:///run/redis.sock")
        if not parts.path.startswith("/") or parts.path == "/":
            raise bad("the socket path must be absolute: unix:///run/redis/redis.sock")
        return replace(base, path=unquote(parts.path), db=_db(options.get("db", "0"), bad))
    if scheme not in _DEFAULT_PORTS:
        raise bad("not a Redis URI")
    hosts = _hosts(hostpart, _DEFAULT_PORTS[scheme], bad)
    if scheme in ("redis", "rediss"):
        if len(hosts) > 1:
            raise bad("one host only; for several use redis+cluster:// or redis+sentinel://")
        return replace(base, hosts=hosts, db=_db(parts.path.strip("/") or "0", bad), tls=tls)
    if scheme == "redis+cluster":
        if parts.path.strip("/") not in ("", "0"):
            raise bad("a Redis Cluster has database 0 only: drop the /db")
        return replace(base, hosts=hosts)
    # redis+sentinel://h1:26379,h2:26379/service[/db]
    service, _, db_text = parts.path.strip("/").partition("/")
    if not service:
        raise bad("name the master's service: redis+sentinel://h1:26379,h2:26379/mymaster")
    return replace(base, hosts=hosts, service=unquote(service), db=_db(db_text or "0", bad))


def _shown(uri: str) -> str:
    try:
        return redact(uri)
    except ValueError:  # urlsplit refuses an unbalanced [: hide all the user part
        head, at, tail = uri.rpartition("@")
        return head.split("://", 1)[0] + "://***@" + tail if at else uri


def _credentials(userinfo: str, bad: Callable[[str], ConfigError]) -> tuple[str | None, str | None]:
    if not userinfo:
        return None, None
    user, colon, password = userinfo.partition(":")
    if not colon:
        raise bad("a user needs a password: user:password@host (or :password@host)")
    return unquote(user) or None, unquote(password)


def _options(query: str, bad: Callable[[str], ConfigError]) -> dict[str, str]:
    try:
        parsed = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise bad(f"cannot read the options {query!r}: name=value&name=value") from None
    for name, values in parsed.items():
        if len(values) > 1:
            raise bad(f"option {name!r} is given {len(values)} times")
    return {name: values[0] for name, values in parsed.items()}


def _hosts(
    text: str, default_port: int, bad: Callable[[str], ConfigError]
) -> tuple[tuple[str, int], ...]:
    if not text:
        raise bad("no host: redis://host:6379/0, or several hosts for a cluster or sentinels")
    hosts = []
    for item in text.split(","):
        if item.startswith("["):
            host, bracket, rest = item[1:].partition("]")
            if not bracket or (rest and not rest.startswith(":")):
                raise bad(f"cannot read the IPv6 host {item!r}: [::1]:6379")
            port_text = rest[1:]
        else:
            host, colon, port_text = item.partition(":")
            if colon and not port_text:
                raise bad(f"{item!r} has an empty port")
        if not host:
            raise bad(f"a host is missing in {text!r}")
        if any(c.isspace() or c in "/?#@" for c in host):
            raise bad(f"cannot read the host {host!r}")
        port = default_port
        if port_text:
            if not port_text.isdigit() or not 0 < int(port_text) < 65536:
                raise bad(f"the port of {item!r} must be a number from 1 to 65535")
            port = int(port_text)
        hosts.append((host, port))
    return tuple(hosts)


def _db(text: str, bad: Callable[[str], ConfigError]) -> int:
    if not text.isdigit():
        raise bad(f"the database must be a number (0, 1, ...), not {text!r}")
    return int(text)


def _tls(options: Mapping[str, str], bad: Callable[[str], ConfigError]) -> dict[str, object]:
    tls: dict[str, object] = {}
    for name in ("ssl_ca_certs", "ssl_certfile", "ssl_keyfile"):
        if name in options:
            path = options[name]
            if not os.path.isfile(path):
                raise bad(f"{name}: no such file {path!r}")
            tls[name] = path
    if "ssl_keyfile" in tls and "ssl_certfile" not in tls:
        raise bad("ssl_keyfile needs ssl_certfile (the certificate it belongs to)")
    if "ssl_cert_reqs" in options:
        reqs = options["ssl_cert_reqs"].lower()
        if reqs not in _CERT_REQS:
            raise bad(f"ssl_cert_reqs must be one of {', '.join(_CERT_REQS)}, not {reqs!r}")
        tls["ssl_cert_reqs"] = reqs
    if "ssl_check_hostname" in options:
        flag = _BOOLEANS.get(options["ssl_check_hostname"].lower())
        if flag is None:
            raise bad("ssl_check_hostname must be true or false")
        tls["ssl_check_hostname"] = flag
    else:
        # Said explicitly: redis-py checked no name by default before 6.0. Without a
        # certificate to check there is no name to check either.
        tls["ssl_check_hostname"] = tls.get("ssl_cert_reqs") != "none"
    return tls


def _redis_module() -> ModuleType:
    try:
        import redis
        import redis.asyncio
        import redis.asyncio.cluster
        import redis.asyncio.retry
        import redis.asyncio.sentinel
        import redis.backoff
        import redis.cluster
        import redis.retry
        import redis.sentinel
    except ImportError as error:
        raise ConfigError(
            KEY, f"the Redis store needs the redis package ({error}); {INSTALL}"
        ) from None
    return redis


# -- clients ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Opened:
    """A client, and the sentinel clients that found its master (closed with it)."""

    client: Any
    others: tuple[Any, ...] = ()


def open_client(target: Target, timeout: float, *, asynchronous: bool) -> Opened:
    """A redis-py client (standalone, Cluster or Sentinel master; sync or asyncio) that never
    retries and bounds each socket operation by ``timeout``. It connects on first use."""
    redis = _redis_module()
    api = redis.asyncio if asynchronous else redis
    cluster = redis.asyncio.cluster if asynchronous else redis.cluster
    sentinel = redis.asyncio.sentinel if asynchronous else redis.sentinel
    retry = redis.asyncio.retry if asynchronous else redis.retry
    no_retry = retry.Retry(redis.backoff.NoBackoff(), 0)
    kwargs: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": no_retry,
        "username": target.username,
        "password": target.password,
    }
    if target.tls is not None:
        kwargs.update(ssl=True, **target.tls)
    if target.scheme == "unix":
        return Opened(api.Redis(unix_socket_path=target.path, db=target.db, **kwargs))
    if target.scheme == "redis+cluster":
        nodes = [cluster.ClusterNode(host, port) for host, port in target.hosts]
        client = cluster.RedisCluster(startup_nodes=nodes, **kwargs)
        # redis < 6 counts the Cluster's own retries here, not in `retry` (3 by default)
        client.cluster_error_retry_attempts = 0
        return Opened(client)
    if target.scheme == "redis+sentinel":
        # Without their own arguments the sentinels would be asked with redis-py's defaults
        # (5 s, retries), the master's password, and not found within timeout.
        asked = {"socket_timeout": timeout, "socket_connect_timeout": timeout, "retry": no_retry}
        sentinels = sentinel.Sentinel(list(target.hosts), sentinel_kwargs=asked, **kwargs)
        master = sentinels.master_for(target.service, db=target.db)
        return Opened(master, tuple(sentinels.sentinels))
    host, port = target.hosts[0]
    return Opened(api.Redis(host=host, port=port, db=target.db, **kwargs))


def _close_sync(opened: Opened) -> None:
    for client in (opened.client, *opened.others):
        client.close()
        # redis 5.0's close() leaves the pool's connections open
        if hasattr(client, "disconnect_connection_pools"):  # a Cluster, one pool per node
            client.disconnect_connection_pools()
        else:
            client.connection_pool.disconnect()


async def _close_async(opened: Opened) -> None:
    for client in (opened.client, *opened.others):
        # aclose() came with redis 5.0.1; close() is its deprecated name
        await (client.aclose() if hasattr(client, "aclose") else client.close())


@dataclass
class _Bound:
    opened: Opened
    closer: AsyncGenerator[None, None]
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    ready: bool = False


class _LoopClients:
    """One asyncio client per running event loop, closed when that loop shuts down.

    A redis.asyncio client belongs to the loop its connections were opened on, and an app
    may run several loops over its life (tests, ``asyncio.run`` per job). Each client comes
    with a started async generator whose ``finally`` closes it: ``loop.shutdown_asyncgens()``
    (run by ``asyncio.run`` and the ASGI servers) finalizes it while the loop still runs,
    which is the one moment the client's sockets can be closed cleanly.
    """

    def __init__(self, make: Callable[[], Opened]) -> None:
        self._make = make
        self._lock = threading.Lock()
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Bound] = (
            weakref.WeakKeyDictionary()
        )

    async def get(self) -> Any:
        loop = asyncio.get_running_loop()
        bound = self._loops.get(loop)
        if bound is None:
            opened = self._make()
            bound = _Bound(opened, self._closer(opened))
            with self._lock:
                self._loops[loop] = bound
            await bound.closer.__anext__()  # registers it with this loop's shutdown_asyncgens
        if not bound.ready:
            # The asyncio Cluster client reads its slot map on first use; commands that
            # arrive together then each start that reading and break one another's
            # connections (redis-py 8.1). One reading, the others wait for it.
            async with bound.lock:
                if not bound.ready:
                    await bound.opened.client.initialize()
                    bound.ready = True
        return bound.opened.client

    @staticmethod
    async def _closer(opened: Opened) -> AsyncGenerator[None, None]:
        try:
            yield
        finally:
            await _close_async(opened)

    def close(self) -> None:
        """Close what can be closed from synchronous code, on the loops still alive."""
        with self._lock:
            entries = list(self._loops.items())
            self._loops.clear()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        for loop, bound in entries:
            if loop.is_closed():
                continue
            if loop is running:
                # Called from the loop itself (a lifespan handler): finish in a task.
                task = loop.create_task(bound.closer.aclose())
                _PENDING.add(task)
                task.add_done_callback(_PENDING.discard)
            elif loop.is_running():
                asyncio.run_coroutine_threadsafe(bound.closer.aclose(), loop)
            else:
                loop.run_until_complete(bound.closer.aclose())


_PENDING: set[asyncio.Task[None]] = set()


# -- the store --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Script:
    source: bytes
    sha: str

    @classmethod
    def of(cls, source: str) -> _Script:
        data = source.encode()
        return cls(data, hashlib.sha1(data, usedforsecurity=False).hexdigest())


_RECORD = _Script.of(_scripts.RECORD)
_FETCH = _Script.of(_scripts.FETCH)
_CLEAR = _Script.of(_scripts.CLEAR)
_ENCODING = ("utf-8", "surrogatepass")
_Args = Sequence[bytes | str]


class RedisStore:
    """A :class:`~geofence.accounts.Store` on Redis: the same answers as
    :class:`~geofence.accounts.MemoryStore`, shared by every process that uses the server.

    Opening connects to nothing (a server down at startup is the first call's StoreError); a
    Cluster's slot map is read on the first call.
    """

    def __init__(self, uri: str, *, key_prefix: str, timeout: float, limits: Limits | None) -> None:
        self._target = parse(uri)
        self.description = redact(uri)
        self._redis = _redis_module()
        self._prefix = key_prefix
        self._timeout = timeout
        self._limits = limits
        self._lock = threading.Lock()
        self._sync: Opened | None = None
        self._async = _LoopClients(lambda: open_client(self._target, timeout, asynchronous=True))
        # Expiries in whole seconds (see _scripts): the state outlives its window.
        window_ttl = 0 if limits is None else _ttl(limits.window + _scripts.SLACK)
        self._window_ttl = str(window_ttl)
        self._idle_ttl = str(max(_scripts.IDLE, window_ttl))

    # The Store protocol ------------------------------------------------------------------

    def ping(self) -> None:
        self._call(lambda: self._client().ping())

    def fetch(self, account: str, now: float) -> AccountState:
        return self._fetched(self._call(lambda: self._eval(_FETCH, account, self._fetch_args(now))))

    def record(self, account: str, hit: Hit) -> Outcome:
        reply = self._call(lambda: self._eval(_RECORD, account, self._record_args(hit)))
        return self._decode(lambda: _outcome(reply, hit))

    def clear(self, account: str, now: float) -> bool:
        args = (_scripts.number(now), self._idle_ttl)
        return bool(self._call(lambda: self._eval(_CLEAR, account, args)))

    def accounts(self, now: float) -> Iterator[tuple[str, AccountState]]:
        names: set[str] = set()
        pattern = _scripts.state_pattern(self._prefix)

        def scan() -> None:
            for node in self._nodes():
                for key in node.scan_iter(match=pattern.encode(*_ENCODING), count=1000):
                    name = _account_name(key, self._prefix)
                    if name is not None:
                        names.add(name)

        self._call(scan)
        found = []
        args = self._fetch_args(now)
        for name in sorted(names):
            reply = self._call(partial(self._eval, _FETCH, name, args))
            if reply:  # not expired since the scan
                found.append((name, self._fetched(reply)))
        return iter(found)

    async def afetch(self, account: str, now: float) -> AccountState:
        reply = await self._acall(_FETCH, account, self._fetch_args(now))
        return self._fetched(reply)

    async def arecord(self, account: str, hit: Hit) -> Outcome:
        reply = await self._acall(_RECORD, account, self._record_args(hit))
        return self._decode(lambda: _outcome(reply, hit))

    def close(self) -> None:
        with self._lock:
            opened, self._sync = self._sync, None
        if opened is not None:
            _close_sync(opened)
        self._async.close()

    # Internals ---------------------------------------------------------------------------

    def _client(self) -> Any:
        opened = self._sync
        if opened is None:
            with self._lock:
                opened = self._sync
                if opened is None:
                    # RedisCluster reads the slot map here, so this is inside _call.
                    opened = open_client(self._target, self._timeout, asynchronous=False)
                    self._sync = opened
        return opened.client

    def _nodes(self) -> list[Any]:
        client = self._client()
        if isinstance(client, self._redis.cluster.RedisCluster):
            return [client.get_redis_connection(node) for node in client.get_primaries()]
        return [client]

    def _keys(self, account: str) -> tuple[bytes, bytes]:
        state, window = _scripts.keys(self._prefix, account)
        return state.encode(*_ENCODING), window.encode(*_ENCODING)

    def _eval(self, script: _Script, account: str, args: _Args) -> Any:
        client = self._client()
        keys = self._keys(account)
        encoded = _encode(args)
        try:
            return client.execute_command("EVALSHA", script.sha, 2, *keys, *encoded)
        except self._redis.exceptions.NoScriptError:
            # A server that restarted, failed over or never ran it: EVAL runs the script and
            # caches it for the next EVALSHA.
            return client.execute_command("EVAL", script.source, 2, *keys, *encoded)

    async def _acall(self, script: _Script, account: str, args: _Args) -> Any:
        keys = self._keys(account)
        encoded = _encode(args)
        try:
            client = await self._async.get()
            try:
                return await client.execute_command("EVALSHA", script.sha, 2, *keys, *encoded)
            except self._redis.exceptions.NoScriptError:
                return await client.execute_command("EVAL", script.source, 2, *keys, *encoded)
        except Exception as error:  # every failure: see _failure
            raise self._failure(error) from error

    def _call(self, operation: Callable[[], Any]) -> Any:
        try:
            return operation()
        except Exception as error:  # every failure: see _failure
            raise self._failure(error) from error

    def _failure(self, error: BaseException) -> StoreError:
        # Any exception, not only redis-py's own: a store failure must not fail the request,
        # and the client raises others too (RedisClusterException is no RedisError, OSError,
        # asyncio.TimeoutError on 3.10, and AttributeError from connections that a concurrent
        # cluster re-initialization closed, in redis-py 8.1).
        return StoreError(f"{self.description}: {type(error).__name__}: {error}")

    def _decode(self, decode: Callable[[], _T]) -> _T:
        try:
            return decode()
        except (ValueError, TypeError, IndexError, KeyError) as error:
            raise StoreError(f"{self.description} answered nonsense: {error}") from error

    def _fetched(self, reply: Any) -> AccountState:
        if isinstance(reply, list) and not reply:
            return EMPTY
        return self._decode(lambda: _scripts.decode_state(reply[1], reply[0]))

    def _fetch_args(self, now: float) -> _Args:
        limits = self._limits
        if limits is None:
            return (_scripts.number(now), "0", "0")
        return (_scripts.number(now), "1", _scripts.number(now - limits.window))

    def _record_args(self, hit: Hit) -> _Args:
        number, flag = _scripts.number, _scripts.flag
        args = [number(hit.at)]
        grace = hit.grace
        if grace is None:
            args += ["0", "", "0", ""]
        else:
            enforce_from = "" if grace.enforce_from is None else number(grace.enforce_from)
            args += ["1", grace.rule, number(grace.seconds), enforce_from]
        args += [flag(hit.strike), flag(hit.strike_in_grace), flag(hit.strike_if_suspended)]
        args += ["0", ""] if hit.country is None else ["1", hit.country]
        limits = self._limits
        if limits is None:
            args += ["0", "0", "0", "", ""]
        else:
            args += [
                "1",
                str(limits.threshold),
                number(hit.at - limits.window),
                limits.action,
                number(next_suspension(limits, hit.at)),
            ]
        return [*args, self._window_ttl, self._idle_ttl]


def _ttl(seconds: float) -> int:
    # a window too long to mean anything (or infinite) still needs a number for EXPIRE
    return min(_LONGEST_TTL, math.ceil(seconds)) if math.isfinite(seconds) else _LONGEST_TTL


_LONGEST_TTL = 10 * 365 * 86400


def _encode(args: _Args) -> list[bytes]:
    return [a if isinstance(a, bytes) else a.encode(*_ENCODING) for a in args]


def _account_name(key: object, prefix: str) -> str | None:
    if not isinstance(key, bytes):
        return None
    try:
        text = key.decode(*_ENCODING)
    except UnicodeDecodeError:
        return None  # not a key this store wrote
    return _scripts.account_of(text, prefix)


def _outcome(reply: Any, hit: Hit) -> Outcome:
    started, struck, tripped, fresh, recent, flat = reply
    state = _scripts.decode_state(flat, recent)
    grace_until = None
    if hit.grace is not None:
        grace_until = hit.grace.until(state.grace[hit.grace.rule])
    return Outcome(state, grace_until, bool(started), bool(struck), bool(tripped), bool(fresh))

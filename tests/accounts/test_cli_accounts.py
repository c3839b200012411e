"""``geofence accounts show|clear|list`` and ``geofence check --account``, on a real Redis
(and a Cluster for ``list``): the state is made by an engine deciding real requests, then
read, listed and cleared through the command, in this process and as a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from redis_servers import RedisCluster, RedisServer, free_port
from tests_support import CITY_DB

import geofence
from geofence import Account, RequestInfo, cli

COMMAND = [sys.executable, "-m", "geofence"]
BROKEN_PIPE = 141
GB, US, CN, SE = "81.2.69.142", "216.160.83.56", "175.16.199.1", "89.160.20.112"
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
NOW = datetime.now(timezone.utc).replace(microsecond=0)
# A rule enforced since well before the tests, one enforced well after them.
PAST = datetime(2024, 7, 9, tzinfo=timezone.utc)
FUTURE = NOW + 30 * DAY


def rules() -> list[dict[str, Any]]:
    return [
        {
            "name": "unsupported",
            "action": "block",
            "regions": ["CN", "RU"],
            "enforce_from": PAST.isoformat(),
        },
        # Its own enforce date is first match + 14 days (enforce_from is long past) ...
        {
            "name": "graced",
            "action": "block",
            "regions": ["SE"],
            "enforce_from": PAST.isoformat(),
            "account_grace": "14d",
        },
        # ... and here enforce_from itself, which comes later than first match + 14 days.
        {
            "name": "later",
            "action": "block",
            "regions": ["GB"],
            "warn_from": PAST.isoformat(),
            "enforce_from": FUTURE.isoformat(),
            "account_grace": "14d",
        },
        {"name": "home", "action": "block", "home_regions": ["KP"]},
        {"name": "abroad", "action": "warn", "home_mismatch": True},
    ]


def write_policy(directory: Path, store: str, **extra: Any) -> str:
    """A policy on ``store`` with a key prefix of its own (tests share the servers)."""
    config: dict[str, Any] = {
        "geoip": {"country_db": CITY_DB, "reload_interval": 0},
        "accounts": {"store": store, "key_prefix": f"cli-{uuid.uuid4().hex[:10]}"},
        "strikes": {"threshold": 3, "window": "1h", "suspend_for": 0},
        "rules": rules(),
    }
    config.update(extra)
    path = directory / f"policy-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(config))
    return str(path)


@pytest.fixture
def policy(tmp_path: Path, redis_standalone: RedisServer) -> str:
    return write_policy(tmp_path, redis_standalone.url)


@pytest.fixture
def engine(policy: str) -> Iterator[geofence.Engine]:
    eng = geofence.Engine.from_config(policy)
    yield eng
    assert eng._ledger is not None
    eng._ledger.close()


def req(ip: str, path: str = "/v1/models") -> RequestInfo:
    return RequestInfo(peer=ip, method="GET", path=path)


def suspend(eng: geofence.Engine, account: str, at: datetime = NOW - HOUR / 2) -> datetime:
    """Three blocked requests in a row: the third strike suspends the account (at ``at``)."""
    reasons = [
        eng.decide(req(CN), at + i * timedelta(seconds=1), Account(account)).reason
        for i in range(3)
    ]
    assert reasons == ["rule", "rule", "account_suspended"]
    return at + 2 * timedelta(seconds=1)


def run_here(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = cli.main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args], capture_output=True, text=True, timeout=60, check=False
    )


def show(capsys: pytest.CaptureFixture[str], policy: str, account: str) -> dict[str, Any]:
    status, out, err = run_here(capsys, "accounts", "show", account, "--config", policy, "--json")
    assert (status, err) == (0, "")
    document: dict[str, Any] = json.loads(out)
    return document


# -- show ----------------------------------------------------------------------------------------


def test_show_a_suspension_made_by_strikes(
    capsys: pytest.CaptureFixture[str],
    policy: str,
    engine: geofence.Engine,
    redis_standalone: RedisServer,
) -> None:
    since = suspend(engine, "org_1")
    status, out, err = run_here(capsys, "accounts", "show", "org_1", "--config", policy)
    assert (status, err) == (0, "")
    assert out == (
        "org_1: suspended until cleared\n"
        f"  store      {redis_standalone.url}\n"
        "  grace      none\n"
        "  strikes    3 in total; 0 within the last 1h (threshold 3)\n"
        f"  status     suspended since {since.isoformat()}, until cleared "
        "(`geofence accounts clear org_1` lifts it)\n"
    )
    doc = show(capsys, policy, "org_1")
    assert doc["status"] == "suspended" and doc["known"] is True
    assert (doc["strikes"], doc["threshold"], doc["window"]) == (3, 3, 3600.0)
    assert doc["suspension"] == {
        "action": "suspend",
        "since": since.isoformat(),
        "until": None,
        "until_cleared": True,
        "active": True,
    }


def test_show_grace_per_rule_with_its_own_enforce_date(
    capsys: pytest.CaptureFixture[str], policy: str, engine: geofence.Engine
) -> None:
    first_se, first_gb = NOW - 2 * DAY, NOW - DAY
    account = Account("org_grace")
    assert engine.decide(req(SE), first_se, account).reason == "account_grace"
    assert engine.decide(req(GB), first_gb, account).reason == "account_grace"
    doc = show(capsys, policy, "org_grace")
    assert doc["grace"] == [
        {
            "rule": "graced",
            "first_seen": first_se.isoformat(),
            "enforce_from": (first_se + 14 * DAY).isoformat(),
            "in_grace": True,
        },
        {  # max(enforce_from, first match + 14d)
            "rule": "later",
            "first_seen": first_gb.isoformat(),
            "enforce_from": FUTURE.isoformat(),
            "in_grace": True,
        },
    ]
    assert doc["status"] == "active" and doc["suspension"] is None
    _, out, _ = run_here(capsys, "accounts", "show", "org_grace", "--config", policy)
    assert out.splitlines()[0] == "org_grace: active"
    assert (
        f"  grace      rule 'graced': first seen {first_se.isoformat()}; in account grace until "
        f"{(first_se + 14 * DAY).isoformat()}, its own enforce date\n"
    ) in out
    assert f"rule 'later': first seen {first_gb.isoformat()}; in account grace until " in out


def test_show_strikes_within_the_window(
    capsys: pytest.CaptureFixture[str], policy: str, engine: geofence.Engine
) -> None:
    account = Account("org_strikes")
    engine.decide(req(CN), NOW - 3 * HOUR, account)  # outside the 1h window by now
    engine.decide(req(CN), NOW - HOUR / 4, account)
    doc = show(capsys, policy, "org_strikes")
    assert (doc["strikes"], doc["recent"], doc["status"]) == (2, 1, "active")
    _, out, _ = run_here(capsys, "accounts", "show", "org_strikes", "--config", policy)
    assert "  strikes    2 in total; 1 within the last 1h (threshold 3)\n" in out
    assert "  status     active\n" in out


def test_show_home_mismatch_countries(
    capsys: pytest.CaptureFixture[str], policy: str, engine: geofence.Engine
) -> None:
    account = Account("org_home", home_country="GB")
    assert engine.decide(req(US), NOW, account).rule == "abroad"
    doc = show(capsys, policy, "org_home")
    assert doc["countries"] == ["US"]
    _, out, _ = run_here(capsys, "accounts", "show", "org_home", "--config", policy)
    assert "  countries  US (seen by home_mismatch rules, not its home)\n" in out


def test_show_an_unknown_account_says_so(
    capsys: pytest.CaptureFixture[str], policy: str, redis_standalone: RedisServer
) -> None:
    status, out, err = run_here(capsys, "accounts", "show", "nobody", "--config", policy)
    assert (status, err) == (0, "")
    assert out == (
        f"nobody: nothing recorded in {redis_standalone.url} (an account the app has not "
        "seen with [accounts], or whose state expired)\n"
    )
    doc = show(capsys, policy, "nobody")
    assert (doc["known"], doc["status"], doc["strikes"], doc["grace"]) == (False, "active", 0, [])


def test_show_a_flag(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, redis_standalone: RedisServer
) -> None:
    policy = write_policy(
        tmp_path,
        redis_standalone.url,
        strikes={"threshold": 2, "window": "1h", "action": "flag", "suspend_for": "1d"},
    )
    eng = geofence.Engine.from_config(policy)
    at = NOW - HOUR / 2
    for i in range(2):
        assert eng.decide(req(CN), at + i * timedelta(seconds=1), Account("org_f")).reason == "rule"
    since = at + timedelta(seconds=1)
    _, out, _ = run_here(capsys, "accounts", "show", "org_f", "--config", policy)
    assert out.splitlines()[0] == f"org_f: flagged until {(since + DAY).isoformat()}"
    assert (
        f"  status     flagged since {since.isoformat()}, until {(since + DAY).isoformat()} "
        "(flag only: its requests are not blocked)\n"
    ) in out
    doc = show(capsys, policy, "org_f")
    assert doc["suspension"]["action"] == "flag" and doc["status"] == "flagged"


def test_show_odd_ids_as_one_quoted_word(
    capsys: pytest.CaptureFixture[str], policy: str, engine: geofence.Engine
) -> None:
    engine.decide(req(CN), NOW, Account("org one\nx"))
    _, out, _ = run_here(capsys, "accounts", "show", "org one\nx", "--config", policy)
    assert out.splitlines()[0] == '"org one\\nx": active'
    assert show(capsys, policy, "org one\nx")["account"] == "org one\nx"


# -- clear ---------------------------------------------------------------------------------------


def test_clear_lifts_a_suspension_and_the_app_allows_the_account_after_refresh(
    capsys: pytest.CaptureFixture[str], policy: str, engine: geofence.Engine
) -> None:
    since = suspend(engine, "org_c")
    before_clear = datetime.now(timezone.utc)
    # Blocked while suspended: a strike too.
    assert engine.decide(req(US), before_clear, Account("org_c")).reason == "account_suspended"

    status, out, err = run_here(capsys, "accounts", "clear", "org_c", "--config", policy)
    assert (status, err) == (0, "")
    assert out == (
        f"org_c: suspension lifted (since {since.isoformat()}, until cleared)\n"
        "  the app's processes see it within accounts.refresh (5s); its 4 past strikes stay "
        "on record, and its strike window starts afresh\n"
    )
    # This process trusts its copy for at most `refresh` (5 s), then reads the store again.
    after = engine.decide(req(US), before_clear + timedelta(seconds=6), Account("org_c"))
    assert (after.action, after.reason) == ("allow", "default")
    # A process that starts now allows it at once.
    fresh = geofence.Engine.from_config(policy)
    assert fresh.decide(req(US), account=Account("org_c")).action == "allow"

    doc = show(capsys, policy, "org_c")
    assert (doc["status"], doc["suspension"], doc["strikes"], doc["recent"]) == (
        "active",
        None,
        4,
        0,
    )
    status, out, _ = run_here(capsys, "accounts", "clear", "org_c", "--config", policy)
    assert (status, out) == (0, "org_c: not suspended or flagged; nothing to lift\n")


def test_clear_an_unknown_account(
    capsys: pytest.CaptureFixture[str], policy: str, redis_standalone: RedisServer
) -> None:
    status, out, err = run_here(capsys, "accounts", "clear", "nobody", "--config", policy)
    assert (status, err) == (0, "")
    assert out == f"nobody: nothing recorded in {redis_standalone.url}; no suspension to lift\n"


def test_clear_json(
    capsys: pytest.CaptureFixture[str], policy: str, engine: geofence.Engine
) -> None:
    suspend(engine, "org_j")
    status, out, _ = run_here(capsys, "accounts", "clear", "org_j", "--config", policy, "--json")
    doc = json.loads(out)
    assert (status, doc["account"], doc["lifted"]) == (0, "org_j", True)
    assert doc["before"]["status"] == "suspended"
    _, out, _ = run_here(capsys, "accounts", "clear", "org_j", "--config", policy, "--json")
    assert json.loads(out)["lifted"] is False


# -- list ----------------------------------------------------------------------------------------


def test_list_one_line_per_account(
    capsys: pytest.CaptureFixture[str], policy: str, engine: geofence.Engine
) -> None:
    suspend(engine, "org_b")
    engine.decide(req(SE), NOW - DAY, Account("org_a"))
    engine.decide(req(US), NOW, Account("a_long_account_id", home_country="GB"))
    status, out, err = run_here(capsys, "accounts", "list", "--config", policy)
    assert (status, err) == (0, "")
    until = (NOW - DAY + 14 * DAY).isoformat()
    assert out == (
        "a_long_account_id  active; 0 strikes (0 within 1h); countries: US\n"
        f"org_a              active; 0 strikes (0 within 1h); in grace: graced until {until}\n"
        "org_b              suspended until cleared; 3 strikes (0 within 1h)\n"
    )
    status, out, err = run_here(capsys, "accounts", "list", "--suspended", "--config", policy)
    assert (status, out, err) == (
        0,
        "org_b  suspended until cleared; 3 strikes (0 within 1h)\n",
        "",
    )
    status, out, _ = run_here(capsys, "accounts", "list", "--config", policy, "--json")
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(d["account"], d["status"]) for d in lines] == [
        ("a_long_account_id", "active"),
        ("org_a", "active"),
        ("org_b", "suspended"),
    ]
    assert lines[2] == show(capsys, policy, "org_b")


def test_list_with_nothing_to_list(
    capsys: pytest.CaptureFixture[str],
    policy: str,
    engine: geofence.Engine,
    redis_standalone: RedisServer,
) -> None:
    status, out, err = run_here(capsys, "accounts", "list", "--config", policy)
    assert (status, out, err) == (0, "", f"geofence: no accounts in {redis_standalone.url}\n")
    engine.decide(req(CN), NOW, Account("org_x"))
    status, out, err = run_here(capsys, "accounts", "list", "--suspended", "--config", policy)
    assert (status, out) == (0, "")
    assert err == f"geofence: no suspended accounts in {redis_standalone.url}\n"
    status, out, err = run_here(
        capsys, "accounts", "list", "--suspended", "--json", "--config", policy
    )
    assert (status, out, err) == (0, "", "")


@pytest.mark.slow
def test_list_suspended_covers_every_cluster_primary(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, redis_cluster_nodes: RedisCluster
) -> None:
    policy = write_policy(tmp_path, redis_cluster_nodes.url)
    eng = geofence.Engine.from_config(policy)
    suspended = [f"org_s{i}" for i in range(8)]
    active = [f"org_a{i}" for i in range(4)]
    for account in suspended:
        suspend(eng, account)
    for account in active:
        eng.decide(req(CN), NOW, Account(account))
    prefix = json.loads(Path(policy).read_text())["accounts"]["key_prefix"]
    holding = [
        node
        for node in redis_cluster_nodes.nodes
        if node.cli("--scan", "--pattern", f"{prefix}*").strip()
    ]
    assert len(holding) >= 2  # the accounts are spread over the primaries

    status, out, err = run_here(capsys, "accounts", "list", "--suspended", "--config", policy)
    assert (status, err) == (0, "")
    assert [line.split()[0] for line in out.splitlines()] == sorted(suspended)
    _, out, _ = run_here(capsys, "accounts", "list", "--config", policy)
    assert [line.split()[0] for line in out.splitlines()] == sorted(suspended + active)

    status, out, _ = run_here(capsys, "accounts", "clear", "org_s3", "--config", policy)
    assert out.startswith("org_s3: suspension lifted")
    result = run("accounts", "list", "--suspended", "--config", policy, "--json")
    assert result.returncode == 0, result.stderr
    listed = [json.loads(line)["account"] for line in result.stdout.splitlines()]
    assert listed == sorted(set(suspended) - {"org_s3"})


# -- check --account -----------------------------------------------------------------------------


def state_keys(server: RedisServer, policy: str) -> str:
    prefix = json.loads(Path(policy).read_text())["accounts"]["key_prefix"]
    return server.cli("--scan", "--pattern", f"{prefix}*")


def test_check_reads_the_store_and_never_writes_it(
    capsys: pytest.CaptureFixture[str], policy: str, redis_standalone: RedisServer
) -> None:
    # A new account matching a grace rule: the app would start its grace; check only says so.
    status, out, err = run_here(
        capsys, "check", SE, "--path", "/v1/x", "--config", policy, "--account", "org_new"
    )
    assert (status, err) == (0, "")
    assert out.startswith("WARN (enforced)\n")
    assert f"  store      {redis_standalone.url} (read only: check changes no account)\n" in out
    assert "  state      active; 0 strikes (0 within 1h)\n" in out
    assert "  reason     account_grace: " in out
    assert "  in the app this request would start the account's grace (its own enforce date " in out
    # ... and a blocked one would count a strike.
    _, out, _ = run_here(capsys, "check", CN, "--config", policy, "--account", "org_new", "--json")
    doc = json.loads(out)
    assert (doc["action"], doc["reason"], doc["account"]) == ("block", "rule", "org_new")
    assert doc["would_record"] == {
        "grace_started": False,
        "strike": True,
        "suspends": False,
        "new_country": False,
    }
    assert doc["account_state"]["known"] is False
    assert (doc["store"], doc["store_error"]) == (redis_standalone.url, None)
    assert state_keys(redis_standalone, policy) == ""  # nothing was written
    assert show(capsys, policy, "org_new")["known"] is False


def test_check_a_suspended_account(
    capsys: pytest.CaptureFixture[str], policy: str, engine: geofence.Engine
) -> None:
    suspend(engine, "org_s")
    before = show(capsys, policy, "org_s")
    status, out, _ = run_here(capsys, "check", US, "--config", policy, "--account", "org_s")
    assert status == 0
    assert out.startswith("BLOCK (enforced), HTTP 403\n")
    assert "  state      suspended until cleared; 3 strikes (0 within 1h)\n" in out
    assert "  reason     account_suspended: " in out
    assert "would count strike 4\n" in out  # counted while suspended, no window to fill
    assert show(capsys, policy, "org_s") == before


def test_check_the_strike_that_would_suspend(
    capsys: pytest.CaptureFixture[str], policy: str, engine: geofence.Engine
) -> None:
    for i in range(2):
        engine.decide(req(CN), NOW - timedelta(seconds=10 - i), Account("org_2"))
    _, out, _ = run_here(capsys, "check", CN, "--config", policy, "--account", "org_2")
    # The request that trips the suspension is the first one it blocks.
    assert out.startswith("BLOCK (enforced), HTTP 403\n")
    assert "  reason     account_suspended: " in out
    assert "would count strike 3; suspend the account (until cleared)\n" in out
    assert show(capsys, policy, "org_2")["strikes"] == 2


def test_check_with_a_home_country(capsys: pytest.CaptureFixture[str], policy: str) -> None:
    _, out, _ = run_here(
        capsys, "check", US, "--config", policy, "--account", "org_k", "--home-country", "kp"
    )
    assert out.startswith("BLOCK (enforced), HTTP 451\n")
    assert "  account    org_k (home country KP)\n" in out
    assert "  rule       home " in out
    _, out, _ = run_here(
        capsys,
        "check",
        US,
        "--config",
        policy,
        "--account",
        "org_k",
        "--home-country",
        "GB",
        "--json",
    )
    doc = json.loads(out)
    assert (doc["action"], doc["rule"], doc["home_country"]) == ("warn", "abroad", "GB")
    assert doc["would_record"]["new_country"] is True


def test_check_on_a_memory_store_has_no_history(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    policy = write_policy(tmp_path, "memory://")
    status, out, _ = run_here(capsys, "check", CN, "--config", policy, "--account", "org_m")
    assert status == 0
    assert (
        "  store      memory://: this fresh process has no history for the account (each app "
        "process keeps its own); decided as its first request\n"
    ) in out
    assert "  state " not in out
    _, out, _ = run_here(capsys, "check", CN, "--config", policy, "--account", "org_m", "--json")
    doc = json.loads(out)
    assert (doc["store"], doc["account_state"], doc["account"]) == ("memory://", None, "org_m")


def test_check_without_accounts_table(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_here(capsys, "check", "175.16.199.1", "--path", "/v1/x", "--account", "a")
    assert status == 0
    assert (
        "  account    a: the policy has no [accounts] table, so the account changes no decision\n"
    ) in out
    _, out, _ = run_here(capsys, "check", "175.16.199.1", "--account", "a", "--json")
    doc = json.loads(out)
    assert (doc["account"], doc["account_state"], doc["store"]) == ("a", None, None)


def test_check_with_the_store_down_applies_on_store_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    port = free_port()
    uri = f"redis://:s3cret@127.0.0.1:{port}/0"
    policy = write_policy(tmp_path, uri, accounts={"store": uri, "on_store_error": "block"})
    status, out, err = run_here(capsys, "check", US, "--config", policy, "--account", "org_d")
    assert status == 0
    assert out.startswith("BLOCK (enforced), HTTP 503\n")
    assert "  reason     store_error: " in out
    assert f"  store      failed (redis://:***@127.0.0.1:{port}/0" in out
    assert 'on_store_error = "block" applied, as in the app' in out
    assert "s3cret" not in out + err


# -- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("action", [["show", "x"], ["clear", "x"], ["list"]], ids=" ".join)
def test_a_memory_store_is_refused(action: list[str], tmp_path: Path) -> None:
    policy = write_policy(tmp_path, "memory://")
    result = run("accounts", *action, "--config", policy)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        "geofence: accounts.store is memory://, which holds account state only inside each app "
        "process, so this command cannot see it; to inspect or clear accounts, share the state "
        'through Redis, e.g. [accounts] store = "redis://localhost:6379/0"\n'
    )


@pytest.mark.parametrize("action", [["show", "x"], ["clear", "x"], ["list"]], ids=" ".join)
def test_a_policy_without_accounts_is_refused(action: list[str], tmp_path: Path) -> None:
    policy = tmp_path / "plain.json"
    policy.write_text(json.dumps({"rules": [{"name": "r", "action": "block", "regions": ["CN"]}]}))
    result = run("accounts", *action, "--config", str(policy))
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.startswith(f"geofence: {policy} has no [accounts] table: ")
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


@pytest.mark.parametrize("action", [["show", "x"], ["clear", "x"], ["list"]], ids=" ".join)
def test_an_unreachable_store_is_exit_1_with_its_redacted_uri(
    action: list[str], tmp_path: Path
) -> None:
    port = free_port()
    uri = f"redis://:s3cret@127.0.0.1:{port}/0"
    policy = write_policy(tmp_path, uri)
    result = run("accounts", *action, "--config", policy)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith(
        f"geofence: account store failed: redis://:***@127.0.0.1:{port}/0: "
    )
    assert result.stderr.count("\n") == 1
    assert "s3cret" not in result.stderr and "Traceback" not in result.stderr


def test_a_store_that_stops_answering_is_exit_1(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, redis_standalone: RedisServer
) -> None:
    policy = write_policy(tmp_path, redis_standalone.url)
    redis_standalone.pause()
    try:
        started = time.monotonic()
        status, out, err = run_here(capsys, "accounts", "show", "x", "--config", policy)
        waited = time.monotonic() - started
    finally:
        redis_standalone.resume()
    assert (status, out) == (1, "")
    assert err.startswith(f"geofence: account store failed: {redis_standalone.url}: ")
    assert waited < 30  # bounded by the CLI's timeout, not hung


# -- as a user runs it: subprocesses and pipes -------------------------------------------------


def test_subprocess_show_list_clear(policy: str, engine: geofence.Engine) -> None:
    suspend(engine, "org_p")
    result = run("accounts", "show", "org_p", "--config", policy)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.startswith("org_p: suspended until cleared\n")
    result = run("accounts", "list", "--suspended", "--config", policy)
    assert (result.returncode, result.stdout) == (
        0,
        "org_p  suspended until cleared; 3 strikes (0 within 1h)\n",
    )
    result = run("accounts", "clear", "org_p", "--config", policy)
    assert result.returncode == 0 and result.stdout.startswith("org_p: suspension lifted")
    result = run("check", US, "--config", policy, "--account", "org_p", "--json")
    assert json.loads(result.stdout)["action"] == "allow"


PIPED = [
    ["accounts", "list"],
    ["accounts", "list", "--json"],
    ["accounts", "show", "org_0"],
    ["accounts", "show", "org_0", "--json"],
    ["accounts", "clear", "org_0"],
    ["check", CN, "--account", "org_0"],
    ["check", CN, "--account", "org_0", "--json"],
    ["accounts", "--help"],
    ["accounts", "list", "--help"],
]


@pytest.fixture
def populated(policy: str, engine: geofence.Engine) -> str:
    for i in range(20):
        suspend(engine, f"org_{i}")
    return policy


@pytest.mark.skipif(shutil.which("head") is None, reason="needs head")
@pytest.mark.parametrize("args", PIPED, ids=" ".join)
def test_piped_into_head(args: list[str], populated: str) -> None:
    command = subprocess.Popen(
        [*COMMAND, *args, "--config", populated], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    head = subprocess.Popen(["head", "-c", "10"], stdin=command.stdout, stdout=subprocess.PIPE)
    assert command.stdout is not None
    command.stdout.close()
    shown, _ = head.communicate(timeout=60)
    _, err = command.communicate(timeout=60)
    assert len(shown) == 10
    assert err == b""
    assert command.returncode in (0, BROKEN_PIPE)


@pytest.mark.parametrize("args", PIPED, ids=" ".join)
def test_a_closed_pipe_ends_the_command_quietly(args: list[str], populated: str) -> None:
    read_end, write_end = os.pipe()
    process = subprocess.Popen(
        [*COMMAND, *args, "--config", populated], stdout=write_end, stderr=subprocess.PIPE
    )
    os.close(write_end)
    os.close(read_end)
    _, err = process.communicate(timeout=60)
    assert err == b""
    assert process.returncode == BROKEN_PIPE

"""``replay --accounts``: the account rules (account grace, strikes, home country) on a memory
store with the log's clock; the CSV equals a per-line ``engine.decide(..., account=)`` loop
on a fresh memory store; the production store named by the policy is never contacted."""

from __future__ import annotations

import csv
import io
import ipaddress
import json
import re
import socket
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from geofence import Account, Engine, RequestInfo, cli, load_policy
from geofence.accounts._memory import MemoryStore
from geofence.replay import ReplayError, read_log, replay
from geofence.replay._accounts import COLUMNS, memory_policy

HERE = Path(__file__).parent / "account-logs"
POLICY = HERE / "policy.toml"  # names redis://127.0.0.1:9/0: nobody listens there
JSONL = HERE / "accounts.jsonl"  # the account in the field "account"
COMBINED = HERE / "accounts-combined.log"  # the same lines, the account in $remote_user

# Worked out by hand from the policy and the log (see the log's comments in the README):
# bob: three JP blocks within the hour (threshold 3) -> suspended for a day from the third,
#   then his US request is blocked too; alice: first matched "unsupported" on July 1 (warn
#   phase), so her own date is max(July 9, July 1 + 14d) = July 15, and July 24 is a block;
# erin: first matched July 9 08:00 -> July 23 08:00; carol and frank: GB on /v1 (warned).
GOLDEN = (
    "account,first_seen,last_seen,requests,blocked,warned,countries,rule,action,enforce_from,"
    "suspended_until\r\n"
    "bob,2024-07-03T12:00:00Z,2024-07-03T12:30:00Z,4,4,0,JP US,japan,suspended,,"
    "2024-07-04T12:20:00Z\r\n"
    "alice,2024-07-01T09:00:00Z,2024-07-24T00:00:00Z,4,1,3,CN,unsupported,blocked,"
    "2024-07-15T09:00:00Z,\r\n"
    "erin,2024-07-09T08:00:00Z,2024-07-10T08:00:00Z,2,0,1,RU,unsupported,grace,"
    "2024-07-23T08:00:00Z,\r\n"
    "carol,2024-07-02T10:00:00Z,2024-07-02T10:01:00Z,2,0,2,GB,gb-api,warned,,\r\n"
    '"frank,""the""_contractor",2024-07-24T00:00:01Z,2024-07-24T00:00:01Z,1,0,1,GB,gb-api,'
    "warned,,\r\n"
)
RANK = {"suspended": 0, "blocked": 1, "grace": 2, "warned": 3}


def raw_policy(store: str | None = None) -> dict[str, Any]:
    """The test policy as a mapping (database path made absolute), optionally another store."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef,import-not-found,unused-ignore]
    raw: dict[str, Any] = tomllib.loads(POLICY.read_text(encoding="utf-8"))
    raw["geoip"]["country_db"] = str((HERE / raw["geoip"]["country_db"]).resolve())
    if store is not None:
        raw["accounts"]["store"] = store
    return raw


def csv_of(rows: list[dict[str, str]]) -> str:
    out = io.StringIO()
    from geofence.replay._accounts import write_csv

    write_csv(rows, out)
    return out.getvalue()


def per_line_rows(path: Path, field: str | None) -> list[dict[str, str]]:
    """The reference: each line through ``engine.decide(..., account=)`` on a fresh memory
    store, aggregated here without the replay's code."""
    raw = raw_policy(store="memory://")
    engine = Engine.from_config(raw)
    assert isinstance(engine.store, MemoryStore)
    accounts: dict[str, dict[str, Any]] = {}
    suspended_at: dict[str, datetime] = {}
    for item in read_log(path):
        assert not isinstance(item, tuple) or hasattr(item, "time")
        if field is not None:
            line = json.loads(path.read_text().splitlines()[item.line - 1])
            name = line.get(field)
        else:
            name = item.user
        if name is None:
            continue
        headers = [("x-forwarded-for", item.forwarded)] if item.forwarded else []
        request = RequestInfo(item.peer, headers, item.method, item.path, item.host)
        d = engine.decide(request, now=item.time, account=Account(id=name))
        a = accounts.setdefault(
            name,
            {"times": [], "countries": Counter(), "blocked": 0, "warned": 0, "actions": []},
        )
        a["times"].append(item.time)
        if d.country:
            a["countries"][d.country] += 1
        if d.action == "allow" or not d.enforced:
            continue
        if d.reason == "account_suspended":
            action = "suspended"
            suspended_at.setdefault(name, item.time)
        elif d.action == "block":
            action = "blocked"
        elif d.reason == "account_grace":
            action = "grace"
        else:
            action = "warned"
        a["blocked" if d.action == "block" else "warned"] += 1
        a["actions"].append((action, d.rule, d.enforce_from))
    rows = []
    for name, a in accounts.items():
        if not a["actions"]:
            continue
        worst = min((x[0] for x in a["actions"]), key=RANK.__getitem__)
        graces = [x[2] for x in a["actions"] if x[0] == "grace"]
        enforce = graces[0] if graces else a["actions"][0][2]
        until = ""
        if worst == "suspended":
            state = engine.store.fetch(name, max(a["times"]).timestamp())
            assert state.suspended_until is not None
            until = iso(datetime.fromtimestamp(state.suspended_until, timezone.utc))
        ranked = sorted(a["countries"].items(), key=lambda kv: (-kv[1], kv[0]))
        rows.append(
            {
                "account": name,
                "first_seen": iso(min(a["times"])),
                "last_seen": iso(max(a["times"])),
                "requests": str(len(a["times"])),
                "blocked": str(a["blocked"]),
                "warned": str(a["warned"]),
                "countries": " ".join(c for c, _ in ranked),
                "rule": a["actions"][0][1],
                "action": worst,
                "enforce_from": iso(enforce) if enforce else "",
                "suspended_until": until,
            }
        )
    rows.sort(
        key=lambda r: (RANK[r["action"]], -int(r["blocked"]), -int(r["warned"]), r["account"])
    )
    return rows


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


@pytest.mark.parametrize(("path", "field"), [(JSONL, "account"), (COMBINED, None)])
def test_rows_are_those_of_a_per_line_decide_loop(path: Path, field: str | None) -> None:
    report = replay(path, policy=POLICY, accounts=True, account_field=field)
    rows = report.accounts.rows()
    assert rows == per_line_rows(path, field)
    assert csv_of(rows) == GOLDEN


def test_the_totals_count_accounts_by_action() -> None:
    report = replay(JSONL, policy=POLICY, accounts=True, account_field="account")
    document = report.to_dict()
    assert document["accounts"] == {
        "account_rules": True,
        "seen": 6,  # dave only ever came from the US
        "affected": {"suspended": 1, "blocked": 1, "grace": 1, "warned": 2},
    }
    # The account's home country is not in a log: the report says so.
    assert any("home_mismatch never match" in note for note in document["notes"])
    # The report's totals are the decisions by client, as without --accounts.
    plain = replay(JSONL, policy=POLICY).to_dict()
    assert document["policy"] == plain["policy"]


def test_the_store_is_memory_and_the_named_redis_is_never_contacted() -> None:
    # A real listener where the policy says Redis is: a connection attempt would be queued.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        raw = raw_policy(store=f"redis://127.0.0.1:{port}/0")
        report = replay(JSONL, policy=raw, baseline=raw, accounts=True, account_field="account")
        assert isinstance(report.accounts.engine.store, MemoryStore)
        assert csv_of(report.accounts.rows()) == GOLDEN
        with pytest.raises(BlockingIOError):
            listener.accept()
        # The control: the same policy loaded as an app loads it does try that address.
        pytest.importorskip("redis")
        engine = Engine.from_config(raw)
        try:
            listener.settimeout(5)
            engine.decide(
                RequestInfo("175.16.199.1", [], "GET", "/v1/models", ""),
                now=datetime(2024, 7, 10, tzinfo=timezone.utc),
                account=Account(id="alice"),
            )
            connection, _ = listener.accept()
            connection.close()
        finally:
            store = engine.store
            if store is not None:
                store.close()


def test_a_policy_object_with_a_production_store_is_refused() -> None:
    pytest.importorskip("redis")
    policy = load_policy(raw_policy(store="redis://127.0.0.1:9/0"))
    with pytest.raises(ReplayError, match="memory://"):
        replay(JSONL, policy=policy, accounts=True)
    assert memory_policy(POLICY).accounts is not None
    assert memory_policy(POLICY).accounts.store == "memory://"  # type: ignore[union-attr]


def test_without_accounts_the_rows_come_from_the_plain_decisions() -> None:
    raw = raw_policy()
    del raw["accounts"], raw["strikes"]
    raw["rules"] = [r for r in raw["rules"] if "home_mismatch" not in r]
    for rule in raw["rules"]:
        rule.pop("account_grace", None)
    report = replay(JSONL, policy=raw, accounts=True, account_field="account")
    rows = {r["account"]: r for r in report.accounts.rows()}
    # No strikes, no grace: bob is blocked (JP), not suspended, and his US request passes;
    # alice is blocked from July 9 by the rule's own date.
    assert rows["bob"]["action"] == "blocked"
    assert (rows["bob"]["blocked"], rows["bob"]["requests"]) == ("3", "4")
    assert rows["alice"]["action"] == "blocked"
    assert rows["alice"]["enforce_from"] == "2024-07-09T00:00:00Z"
    assert rows["erin"]["action"] == "blocked"
    assert {r["action"] for r in rows.values()} <= {"blocked", "warned"}
    assert report.to_dict()["accounts"]["account_rules"] is False
    assert any("account rules are off" in n for n in report.to_dict()["notes"])


def test_csv_and_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, document = tmp_path / "accounts.csv", tmp_path / "report.json"
    status = cli.main(
        [
            "replay",
            str(JSONL),
            "--config",
            str(POLICY),
            "--accounts",
            str(out),
            "--account-field",
            "account",
            "--json",
            str(document),
        ]
    )
    text, err = capsys.readouterr()
    assert status == 0, err
    assert "\r" not in err  # not a terminal: no progress line
    assert out.read_bytes().decode() == GOLDEN
    assert "5 to tell (1 suspended, 1 blocked, 1 in account grace, 2 warned)" in text
    assert json.loads(document.read_text())["accounts"]["affected"]["suspended"] == 1
    # RFC 4180: a parser reads back the same cells, the header first.
    table = list(csv.reader(io.StringIO(GOLDEN)))
    assert tuple(table[0]) == COLUMNS and table[-1][0] == 'frank,"the"_contractor'
    # Never a client address in the file.
    for cell in (c for row in table for c in row for c in re.split(r"[ ,]", c)):
        with pytest.raises(ValueError):
            ipaddress.ip_address(cell)
    for address in ("175.16.199.1", "2001:218::1", "81.2.69.142", "10.0.0.7", "2a02:d0c0::1"):
        assert address not in GOLDEN


def test_account_field_on_csv_and_stdout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    log = tmp_path / "log.csv"
    lines = ["time_iso8601,remote_addr,request_method,request_uri,customer"]
    for item in map(json.loads, JSONL.read_text().splitlines()):
        if "http_x_forwarded_for" in item:
            continue  # the CSV here has no forwarding column: drop the proxied lines
        lines.append(
            f"{item['time_iso8601']},{item['remote_addr']},{item['request_method']},"
            f'{item["request_uri"]},"{item.get("account", "").replace(chr(34), chr(34) * 2)}"'
        )
    log.write_text("\n".join(lines) + "\n")
    status = cli.main(
        [
            "replay",
            str(log),
            "--config",
            str(POLICY),
            "--accounts",
            "-",
            "--account-field",
            "customer",
        ]
    )
    out, _ = capsys.readouterr()
    assert status == 0
    rows = {r["account"]: r for r in csv.DictReader(io.StringIO(out))}
    assert set(rows) == {"bob", "alice", "erin", "carol", 'frank,"the"_contractor'}
    # Without the proxied lines bob has two JP blocks (threshold 3): blocked, not suspended.
    assert (rows["bob"]["requests"], rows["bob"]["blocked"]) == ("3", "2")
    assert rows["bob"]["action"] == "blocked"


def test_account_field_errors(capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(
        [
            "replay",
            str(COMBINED),
            "--config",
            str(POLICY),
            "--accounts",
            "-",
            "--account-field",
            "customer",
        ]
    )
    assert status == 2
    assert "no named fields" in capsys.readouterr().err
    status = cli.main(["replay", str(COMBINED), "--account-field", "customer"])
    assert status == 2
    assert "needs --accounts" in capsys.readouterr().err

"""The replay decides as the engine does: every golden log's totals equal a per-line
``engine.decide()`` loop; the memo is exact around a rule's date; the report's tables."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from geofence import Engine, RequestInfo
from geofence.replay import Record, Report, decisions, read_log, replay
from geofence.replay._report import NO_RULE, country_label, kind_of

LOGS = Path(__file__).parent / "logs"
GOLDEN = sorted(p.name for p in LOGS.iterdir())
UTC = timezone.utc


def per_line(path: Path, config: dict[str, Any], at: datetime | None = None) -> list[str]:
    """The reference: each record decided by a fresh engine's public decide(), no memo."""
    engine = Engine.from_config(config)
    header = engine.policy.client_ip.header
    kinds = []
    with read_log(path) as log:
        for item in log:
            if not isinstance(item, Record):
                continue
            headers = [(header, item.forwarded)] if item.forwarded else []
            request = RequestInfo(item.peer, headers, item.method, item.path, item.host)
            decision = engine.decide(request, now=at or item.time)
            rule = decision.rule or NO_RULE
            kinds.append(f"{kind_of(decision)}|{rule}|{country_label(decision)}|{item.path}")
    return kinds


def tallies(lines: list[str]) -> tuple[Counter[str], Counter[str], Counter[str], Counter[str]]:
    kinds, rules, countries, paths = Counter[str](), Counter[str](), Counter[str](), Counter[str]()
    for line in lines:
        kind, rule, country, path = line.split("|")
        kinds[kind] += 1
        rules[f"{rule}|{kind}"] += 1
        countries[f"{country}|{kind}"] += 1
        if kind != "allow":
            paths[f"{path}|{kind}"] += 1
    return kinds, rules, countries, paths


def report_tallies(report: Report) -> tuple[Counter[str], ...]:
    totals = report.policy
    kinds = Counter({k: n for k, n in totals.kinds.items() if n})
    rules = Counter({f"{r}|{k}": n for r, c in totals.rules.items() for k, n in c.items() if n})
    countries = Counter(
        {f"{r}|{k}": n for r, c in totals.countries.items() for k, n in c.items() if n}
    )
    paths = Counter({f"{r}|{k}": n for r, c in totals.paths.items() for k, n in c.items() if n})
    return kinds, rules, countries, paths


@pytest.mark.parametrize("name", GOLDEN)
@pytest.mark.parametrize("at", [None, datetime(2024, 7, 1, tzinfo=UTC)], ids=["own-time", "at"])
def test_replay_equals_a_per_line_decide_loop(
    name: str, at: datetime | None, policy: dict[str, Any], baseline: dict[str, Any]
) -> None:
    report = replay([LOGS / name], policy=policy, baseline=baseline, at=at)
    assert report_tallies(report) == tallies(per_line(LOGS / name, policy, at))
    assert report.records == len(per_line(LOGS / name, policy, at)) > 0
    # The baseline's column, and the transitions, from the same reference loop.
    before = per_line(LOGS / name, baseline, at)
    after = per_line(LOGS / name, policy, at)
    assert report.baseline is not None
    assert report_tallies(report)[0] == tallies(after)[0]
    assert Counter({k: n for k, n in report.baseline.kinds.items() if n}) == tallies(before)[0]
    expected = Counter(
        (b.split("|")[0], a.split("|")[0]) for b, a in zip(before, after, strict=True)
    )
    assert report.transitions == expected


def test_the_golden_logs_decide_as_the_policy_says(policy: dict[str, Any]) -> None:
    # Not only equal to the loop: the decisions the policy was written to give.
    report = replay([LOGS / "combined.log"], policy=policy)
    assert dict(report.policy.rules) == {
        # 175.16.199.1 (CN) one second before enforce_from: warned; 10.0.0.7 is a trusted
        # proxy for 175.16.199.1 at enforce_from: blocked.
        "unsupported": Counter({"warn": 1, "block": 2}),
        # 81.2.69.142 (GB) on /v1/x.
        "gb-api": Counter({"warn": 1}),
        # 2001:218::1 (JP) in a report-mode rule.
        "jp-dry-run": Counter({"would_block": 1}),
        # 89.160.20.112 (SE): the host rule sees no host in a combined log.
        NO_RULE: Counter({"allow": 1}),
    }
    # Line 4's absolute URL names its host; the other five lines have none.
    assert report.remarks() == [
        "a policy has rules with hosts, and 5 lines have no host (combined logs record none): "
        "they were decided with an empty host"
    ]
    cloudflare = replay([LOGS / "cloudflare.json"], policy=policy)
    # There SE comes with host www.example.com: the host rule blocks it.
    assert cloudflare.policy.rules["www-se"] == Counter({"block": 1})


def test_trusted_proxy_chains_are_walked_like_in_the_app(policy: dict[str, Any]) -> None:
    report = replay([LOGS / "nginx.csv"], policy=policy)
    # 10.0.0.7 with "175.16.199.1, 10.0.0.9": the client is 175.16.199.1 (CN).
    assert report.policy.countries["CN"]["block"] == 2
    # An untrusted peer's forwarding header is ignored (CloudFront line 4: SE with a CN XFF).
    cloudfront = replay([LOGS / "cloudfront.log"], policy=policy)
    assert cloudfront.policy.countries["SE"]["allow"] == 1
    # ... its CN line (line 3, at enforce_from) is CN's only one.
    assert cloudfront.policy.countries["CN"] == Counter({"block": 1})


def jsonl(tmp_path: Path, rows: list[tuple[datetime, str, str]]) -> Path:
    log = tmp_path / "access.jsonl"
    with log.open("w") as out:
        for moment, peer, path in rows:
            row = {
                "time_iso8601": moment.isoformat(),
                "remote_addr": peer,
                "request_method": "GET",
                "request_uri": path,
            }
            out.write(json.dumps(row) + "\n")
    return log


def test_the_minute_memo_is_exact_at_a_rule_date(tmp_path: Path, policy: dict[str, Any]) -> None:
    # A date inside a minute: the lines before and after it share the minute bucket.
    date = datetime(2024, 7, 9, 0, 0, 30, tzinfo=UTC)
    policy["rules"][0]["enforce_from"] = date.isoformat()
    steps = [
        timedelta(seconds=-1),
        timedelta(microseconds=-1),
        timedelta(0),
        timedelta(seconds=1),
        timedelta(seconds=-1),  # out of order, as merged logs are
        timedelta(seconds=29),
    ]
    rows = [(date + step, "175.16.199.1", "/v1/models") for step in steps]
    report = replay([jsonl(tmp_path, rows)], policy=policy)
    assert report.policy.kinds == Counter({"warn": 3, "block": 3})
    # Each side of the date asked the engine once: the memo hit for the rest.
    assert report.decisions == 2
    # The same, per line, from the engine.
    assert tallies(per_line(tmp_path / "access.jsonl", policy))[0] == Counter(
        {"warn": 3, "block": 3}
    )


def test_one_decision_per_verdict_not_per_line(tmp_path: Path, policy: dict[str, Any]) -> None:
    """270 lines of three (client, path) pairs over three minutes: the engine is asked once
    per distinct verdict (client facts, method, path, rule phase), not per line or minute."""
    start = datetime(2024, 7, 10, 12, 0, tzinfo=UTC)
    rows = []
    for second in range(0, 180, 2):  # three minutes
        rows.append((start + timedelta(seconds=second), "175.16.199.1", "/v1/models"))
        rows.append((start + timedelta(seconds=second), "81.2.69.142", "/v1/models"))
        rows.append((start + timedelta(seconds=second), "81.2.69.142", "/other"))
    report = replay([jsonl(tmp_path, rows)], policy=policy)
    assert report.records == 270
    assert report.decisions == 3
    assert report.policy.kinds == Counter({"block": 90, "warn": 90, "allow": 90})


def test_at_decides_every_line_at_that_time(policy: dict[str, Any]) -> None:
    before = replay([LOGS / "nginx.csv"], policy=policy, at=datetime(2024, 6, 1, tzinfo=UTC))
    assert before.policy.kinds["block"] == 0
    assert before.at == datetime(2024, 6, 1, tzinfo=UTC)
    during = replay([LOGS / "nginx.csv"], policy=policy, at=datetime(2024, 7, 1, tzinfo=UTC))
    assert (during.policy.kinds["warn"], during.policy.kinds["block"]) == (3, 0)
    after = replay([LOGS / "nginx.csv"], policy=policy, at=datetime(2024, 7, 9, tzinfo=UTC))
    assert (after.policy.kinds["warn"], after.policy.kinds["block"]) == (0, 3)


def test_baseline_transitions_and_newly_blocked(
    policy: dict[str, Any], baseline: dict[str, Any]
) -> None:
    report = replay([LOGS / "nginx.csv"], policy=policy, baseline=baseline)
    # Line 2: CN at enforce_from (allow -> block); line 3: RU before it (block -> warn);
    # line 6: CN after it (allow -> block).
    assert report.transitions == Counter({("allow", "block"): 2, ("block", "warn"): 1})
    assert report.newly_blocked == 2
    assert report.newly_blocked_share == pytest.approx(2 / 3)
    assert dict(report.newly_blocked_countries) == {"CN": 2}
    document = report.to_dict()
    assert document["newly_blocked"] == {"count": 2, "share": 0.666667, "countries": {"CN": 2}}
    assert {"from": "allow", "to": "block", "count": 2} in document["transitions"]
    assert document["baseline"]["actions"]["block"] == 1


def test_unparsable_lines_are_counted_and_the_first_five_kept(
    tmp_path: Path, policy: dict[str, Any]
) -> None:
    good = (LOGS / "combined.log").read_text().splitlines()[0]
    log = tmp_path / "mixed.log"
    log.write_text("\n".join([good] * 3 + [f"bad {n}" for n in range(8)] + [good]) + "\n")
    report = replay([log], policy=policy)
    assert report.records == 4
    assert report.unparsable == 8
    assert [(s.line, s.text) for s in report.shown] == [(n + 4, f"bad {n}") for n in range(5)]
    assert report.files[0].unparsable == 8


def test_several_files_and_formats_in_one_replay(policy: dict[str, Any]) -> None:
    paths = [LOGS / "combined.log", LOGS / "alb.log.gz", LOGS / "nginx.jsonl"]
    report = replay(paths, policy=policy)
    assert [(f.format, f.records) for f in report.files] == [
        ("combined", 6),
        ("alb", 5),
        ("jsonl", 3),
    ]
    assert report.records == 14
    assert report.first == datetime(2024, 7, 8, 23, 50, 0, 250000, tzinfo=UTC)  # ALB's websocket
    assert report.last == datetime(2024, 7, 9, 3, 30, 6, tzinfo=UTC)


def test_policy_mode_off_and_report(tmp_path: Path, policy: dict[str, Any]) -> None:
    report = replay([LOGS / "nginx.csv"], policy={**policy, "mode": "report"})
    assert report.policy.kinds == Counter({"would_block": 2, "would_warn": 1})
    assert report.newly_blocked == 0
    off = replay([LOGS / "nginx.csv"], policy={**policy, "mode": "off"})
    assert off.policy.kinds == Counter({"allow": 3})
    assert off.policy.reasons == Counter({"off": 3})


def test_replay_logs_no_decision(caplog: pytest.LogCaptureFixture, policy: dict[str, Any]) -> None:
    # A replay is not traffic: no "block client_ip=..." line per replayed block.
    events: list[object] = []
    engine = Engine.from_config(policy, on_event=events.append)
    with caplog.at_level("INFO", logger="geofence"):
        report = replay([LOGS / "nginx.csv"], policy=engine)
    assert report.policy.kinds["block"] == 2
    assert not [r for r in caplog.records if "client_ip=" in r.getMessage()]
    assert events == []


def test_countries_say_why_no_country_was_looked_up(tmp_path: Path, policy: dict[str, Any]) -> None:
    moment = datetime(2024, 7, 10, tzinfo=UTC)
    rows = [
        (moment, "175.16.199.1", "/healthz"),  # exempt: no lookup
        (moment, "192.168.1.5", "/v1/models"),  # private: no lookup
        (moment, "2001:480::1", "/v1/models"),  # looked up, not in the database
        (moment, "175.16.199.1", "/v1/models"),
    ]
    report = replay([jsonl(tmp_path, rows)], policy={**policy, "exempt": {"paths": ["/healthz"]}})
    document = report.to_dict()["policy"]["countries"]
    assert list(document) == ["CN", "(exempt_path)", "(private)", "(unknown)"]
    assert document["CN"]["block"] == 1


def test_reports_of_parts_merge_into_the_whole(
    policy: dict[str, Any], baseline: dict[str, Any]
) -> None:
    # The seam of --jobs: files replayed apart, their reports merged, equal the one replay
    # (but for the engine calls, which each part's memo saves separately).
    names = ["combined.log", "alb.log.gz", "cloudflare.json", "nginx.csv"]
    whole = replay([LOGS / n for n in names], policy=policy, baseline=baseline)
    merged = replay([LOGS / names[0]], policy=policy, baseline=baseline)
    for name in names[1:]:
        merged.merge(replay([LOGS / name], policy=policy, baseline=baseline))
    assert merged.to_dict(top=50) | {"decisions": 0} == whole.to_dict(top=50) | {"decisions": 0}
    assert merged.decisions >= whole.decisions


def test_a_policy_reading_forwarded_gets_the_column_as_rfc7239(
    tmp_path: Path, policy: dict[str, Any]
) -> None:
    log = tmp_path / "fwd.jsonl"
    rows = [
        ("10.0.0.7", "175.16.199.1, 10.0.0.9"),  # CN behind two trusted hops
        ("10.0.0.7", "2a02:d0c0::1"),  # RU, bare IPv6
        ("10.0.0.7", "[2a02:d0c0::1]:4711, 10.0.0.9:80"),  # RU, bracketed with a port
        ("10.0.0.7", "81.2.69.142:5555"),  # GB with a port
    ]
    log.write_text(
        "".join(
            json.dumps(
                {
                    "time_iso8601": "2024-07-10T00:00:00Z",
                    "remote_addr": peer,
                    "http_x_forwarded_for": chain,
                    "request_method": "GET",
                    "request_uri": "/v1/models",
                }
            )
            + "\n"
            for peer, chain in rows
        )
    )
    xff = replay([log], policy=policy)
    forwarded = replay(
        [log], policy={**policy, "client_ip": {**policy["client_ip"], "header": "forwarded"}}
    )
    assert forwarded.to_dict()["policy"] == xff.to_dict()["policy"]
    assert dict(forwarded.policy.countries) == {
        "CN": Counter({"block": 1}),
        "RU": Counter({"block": 2}),
        "GB": Counter({"warn": 1}),
    }


def test_the_decision_step_alone(policy: dict[str, Any], baseline: dict[str, Any]) -> None:
    with read_log(LOGS / "cloudflare.json") as log:
        records = [item for item in log if isinstance(item, Record)]
    got = list(decisions(records, policy, baseline))
    engine, base = Engine.from_config(policy), Engine.from_config(baseline)
    for record, decision, before in got:
        request = RequestInfo(record.peer, [], record.method, record.path, record.host)
        if record.forwarded:
            request.headers = [("x-forwarded-for", record.forwarded)]
        assert decision == engine.decide(request, now=record.time)
        assert before == base.decide(request, now=record.time)
    assert [r for r, _, _ in got] == records
    # CN, RU in grace, GB on /v1/*, SE on www.example.com, JP in a report-mode rule.
    assert [kind_of(d) for _, d, _ in got] == ["block", "warn", "warn", "block", "would_block"]

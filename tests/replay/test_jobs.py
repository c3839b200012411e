"""``--jobs N``: the same report as one process, byte ranges that cover every line once,
workers gone afterwards; and the shared memo of a replay decides as a per-line loop."""

from __future__ import annotations

import itertools
import json
import multiprocessing
import os
import random
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from geofence import Engine, RequestInfo, cli
from geofence.replay import Record, ReplayError, _jobs, read_log, replay
from geofence.replay._jobs import _lines_from, replay_jobs
from geofence.replay._report import country_label, kind_of
from geofence.replay._source import numbered_lines

LOGS = Path(__file__).parent / "logs"
UTC = timezone.utc
# Around the candidate policy's enforce date (2024-07-09), so that both phases are replayed.
START = datetime(2024, 7, 8, 23, 40, tzinfo=UTC)
KNOWN = ["175.16.199.1", "2a02:d0c0::1", "81.2.69.142", "89.160.20.112", "2001:218::1"]


def write_combined(path: Path, lines: int, seed: int = 3) -> None:
    """nginx ``main`` lines (combined plus X-Forwarded-For): known and unknown clients, some
    behind the trusted proxy 10.0.0.1 with a chain, CR LF endings, hosts, bad bytes and
    unparsable lines sprinkled in."""
    rng = random.Random(seed)
    clients = KNOWN + [f"{rng.randrange(11, 223)}.{rng.randrange(256)}.7.{n}" for n in range(300)]
    paths = ["/v1/models", "/v1/files/{}", "/", "/static/a.js", "/v1/%2e%2e/admin"]
    with path.open("wb") as out:
        for n in range(lines):
            moment = START + timedelta(seconds=n * 0.7)
            client = rng.choice(clients)
            peer, forwarded = client, "-"
            if rng.random() < 0.3:
                peer, forwarded = "10.0.0.1", f"{rng.choice(clients)}, {client}"
            target = rng.choice(paths).format(rng.randrange(40))
            host = rng.choice(["www.example.com", "api.example.com"])
            text = (
                f'{peer} - - [{moment:%d/%b/%Y:%H:%M:%S +0000}] "GET {target}?q={n} HTTP/1.1" '
                f'200 5 "https://{host}/" "agent" "{forwarded}"'
            )
            raw = text.encode()
            if n % 97 == 0:
                raw = b"garbage \xff\xfe line " + raw[:20]
            out.write(raw + (b"\r\n" if n % 5 == 0 else b"\n"))


def comparable(document: dict[str, Any]) -> dict[str, Any]:
    # Engine calls depend on how the memo was shared, not on what was decided.
    return {k: v for k, v in document.items() if k != "decisions"}


def test_byte_ranges_cover_every_line_once(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    write_combined(log, 400)
    with log.open("rb") as stream:
        whole = list(numbered_lines(stream))
    size = log.stat().st_size
    rng = random.Random(5)
    for _ in range(30):
        cuts = sorted({0, size, *(rng.randrange(size) for _ in range(rng.randrange(1, 6)))})
        joined: list[tuple[int, str]] = []
        for start, end in itertools.pairwise(cuts):
            with log.open("rb") as stream:
                joined.extend(_lines_from(stream, start, end))
        assert joined == whole  # same numbers, same text (CR LF and bad bytes as one reader)


@pytest.mark.parametrize("at", [None, datetime(2024, 7, 1, tzinfo=UTC)], ids=["own-time", "at"])
def test_jobs_equal_one_process_on_a_split_log(
    tmp_path: Path,
    policy: dict[str, Any],
    baseline: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    at: datetime | None,
) -> None:
    log = tmp_path / "access.log"
    write_combined(log, 6000)
    monkeypatch.setattr(_jobs, "MIN_RANGE", 4096)  # several ranges of a small file
    parts = _jobs.plan([log], "auto", 3)
    assert len(parts) == 3 and parts[1].start > 0
    one = replay([log], policy=policy, baseline=baseline, at=at)
    three = replay_jobs([log], policy=policy, baseline=baseline, at=at, jobs=3)
    assert one.unparsable > 0 and one.policy.kinds["allow"] < one.records
    assert comparable(three.to_dict(50)) == comparable(one.to_dict(50))


def test_jobs_equal_one_process_on_the_golden_logs(
    policy: dict[str, Any], baseline: dict[str, Any]
) -> None:
    logs = sorted(LOGS.iterdir())
    one = replay(logs, policy=policy, baseline=baseline)
    two = replay_jobs(logs, policy=policy, baseline=baseline, jobs=2)
    assert [f.path for f in two.files] == [str(p) for p in logs]
    assert comparable(two.to_dict(50)) == comparable(one.to_dict(50))


def test_workers_are_gone_when_it_returns(tmp_path: Path, policy: dict[str, Any]) -> None:
    log = tmp_path / "access.log"
    write_combined(log, 500)
    replay_jobs([log, LOGS / "alb.log.gz"], policy=policy, jobs=2)
    assert _jobs.workers and os.getpid() not in _jobs.workers
    for pid in _jobs.workers:
        assert not Path(f"/proc/{pid}").exists() if Path("/proc").is_dir() else True
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert multiprocessing.active_children() == []


def test_what_jobs_cannot_take(policy: dict[str, Any]) -> None:
    with pytest.raises(ReplayError, match="standard input"):
        replay_jobs(["-"], policy=policy, jobs=2)
    with pytest.raises(ReplayError, match="not an Engine"):
        replay_jobs([LOGS / "combined.log"], policy=Engine.from_config(policy), jobs=2)
    with pytest.raises(ReplayError, match=r"nginx\.nope"):
        replay_jobs([LOGS / "nginx.nope"], policy=policy, jobs=2)


def test_cli_jobs_prints_the_same_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], policy: dict[str, Any]
) -> None:
    config = tmp_path / "new.json"
    config.write_text(json.dumps(policy))
    log = tmp_path / "access.log"
    write_combined(log, 300)
    outputs = []
    for jobs in ("1", "2"):
        status = cli.main(["replay", str(log), "--config", str(config), "--jobs", jobs])
        out, err = capsys.readouterr()
        assert (status, err) == (0, "")
        # The text shows how many times the engine was asked: the one line that may differ.
        outputs.append([line for line in out.splitlines() if "engine" not in line])
    assert outputs[0] == outputs[1]
    assert cli.main(["replay", str(log), "--jobs", "0"]) == 2
    assert "--jobs N: N is at least 1" in capsys.readouterr().err
    status = cli.main(["replay", str(log), "--jobs", "2", "--accounts", str(tmp_path / "a.csv")])
    assert status == 2
    assert "use --jobs 1" in capsys.readouterr().err


def per_line(path: Path, config: dict[str, Any]) -> Counter[tuple[str, str, str, str]]:
    """The reference: every record decided by the engine's public decide(), no memo."""
    engine = Engine.from_config(config)
    header = engine.policy.client_ip.header
    counts: Counter[tuple[str, str, str, str]] = Counter()
    with read_log(path) as log:
        for item in log:
            if isinstance(item, Record):
                headers = [(header, item.forwarded)] if item.forwarded else []
                request = RequestInfo(item.peer, headers, item.method, item.path, item.host)
                decision = engine.decide(request, now=item.time)
                outcome = (kind_of(decision), decision.rule or "", country_label(decision))
                counts[(*outcome, decision.reason)] += 1
    return counts


def test_the_shared_memo_decides_as_a_per_line_loop(
    tmp_path: Path, policy: dict[str, Any], baseline: dict[str, Any]
) -> None:
    # Many clients with the same facts, chains through the trusted proxy, both phases of a
    # dated rule, a host rule, exempt and private addresses: each line's outcome as decide().
    policy = {**policy, "exempt": {"ips": ["89.160.20.112/32"]}}
    log = tmp_path / "access.log"
    write_combined(log, 3000)
    with log.open("a") as out:
        out.write(
            '192.168.1.9 - - [09/Jul/2024:00:01:00 +0000] "GET /v1/models HTTP/1.1" 200 5 '
            '"-" "agent" "-"\n'
        )
    report = replay([log], policy=policy, baseline=baseline)
    got = Counter(
        {
            (o[0], "" if o[1] == "(no rule)" else o[1], o[2], o[3]): n
            for o, n in report.policy.outcomes.items()
        }
    )
    assert got == per_line(log, policy)
    assert report.decisions < report.records / 10  # one engine call per verdict, not per line
    assert (baseline_counts := report.baseline) is not None
    assert sum(baseline_counts.outcomes.values()) == report.records
    assert Counter(
        {
            (o[0], "" if o[1] == "(no rule)" else o[1], o[2], o[3]): n
            for o, n in baseline_counts.outcomes.items()
        }
    ) == per_line(log, baseline)


def test_replay_takes_jobs(policy: dict[str, Any]) -> None:
    logs = [LOGS / "combined.log", LOGS / "nginx.jsonl"]
    one, two = replay(logs, policy=policy), replay(logs, policy=policy, jobs=2)
    assert comparable(two.to_dict()) == comparable(one.to_dict())
    with pytest.raises(ReplayError, match="jobs=1"):
        replay(logs, policy=policy, jobs=2, accounts=True)

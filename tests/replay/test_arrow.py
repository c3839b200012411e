"""The decision step on Arrow record batches: the same totals as ``geofence replay`` on the
same rows, run under Dask (local "processes" scheduler) as a distributed engine would."""

from __future__ import annotations

import json
import random
import sys
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from arrow_tasks import decide_partition

from geofence.replay import ReplayError, decide_batches, replay
from geofence.replay._report import NO_RULE

pa = pytest.importorskip("pyarrow", reason="the replay extra (pyarrow) is not installed")

UTC = timezone.utc
START = datetime(2024, 7, 8, 23, 50, tzinfo=UTC)
KNOWN = ["175.16.199.1", "2a02:d0c0::1", "81.2.69.142", "89.160.20.112", "2001:218::1"]


def rows(count: int, seed: int = 7) -> list[dict[str, Any]]:
    """Rows named as nginx variables: both phases of the dated rule, trusted-proxy chains,
    hosts, IPv6, and a few rows that cannot be read."""
    rng = random.Random(seed)
    clients = KNOWN + [f"{rng.randrange(11, 223)}.{rng.randrange(256)}.9.{n}" for n in range(60)]
    out = []
    for n in range(count):
        client = rng.choice(clients)
        peer, forwarded = client, "-"
        if rng.random() < 0.3:
            peer, forwarded = "10.0.0.1", f"{rng.choice(clients)}, {client}"
        out.append(
            {
                "time_iso8601": (START + timedelta(seconds=n)).isoformat(),
                "remote_addr": peer,
                "http_x_forwarded_for": forwarded,
                "request_method": "GET",
                "request_uri": rng.choice(["/v1/models", "/", "/v1/files/9?x=1", "nope"]),
                "host": rng.choice(["www.example.com", "api.example.com"]),
                "status": 200,
            }
        )
    out[5]["time_iso8601"] = "yesterday"
    return out


def kinds(action: str | None, enforced: bool | None) -> str:
    return str(action) if action == "allow" or enforced else f"would_{action}"


def totals_of(frame: Any) -> tuple[Counter[str], Counter[str], Counter[str], Counter[str]]:
    """(kinds, rule|kind, country|kind, baseline kinds) of decided rows."""
    by_kind, by_rule, by_country, before = (
        Counter[str](),
        Counter[str](),
        Counter[str](),
        Counter[str](),
    )
    import pandas

    for row in frame.itertuples(index=False):
        if pandas.isna(row.action):  # an unparsable row (pandas shows a null as NaN)
            continue
        kind = kinds(row.action, row.enforced)
        by_kind[kind] += 1
        by_rule[f"{NO_RULE if pandas.isna(row.rule) else row.rule}|{kind}"] += 1
        if not pandas.isna(row.country):
            by_country[f"{row.country}|{kind}"] += 1
        before[kinds(row.baseline_action, row.baseline_enforced)] += 1
    return by_kind, by_rule, by_country, before


def test_dask_partitions_give_the_totals_of_geofence_replay(
    tmp_path: Path, policy: dict[str, Any], baseline: dict[str, Any]
) -> None:
    dd = pytest.importorskip("dask.dataframe", reason="dask[dataframe] (tests/requirements.txt)")
    import pandas

    data = rows(2000)
    log = tmp_path / "access.jsonl"
    log.write_text("".join(json.dumps(row) + "\n" for row in data))
    report = replay([log], policy=policy, baseline=baseline)

    frame = dd.from_pandas(pandas.DataFrame(data), npartitions=4)
    meta = decide_partition(pandas.DataFrame(data[:1]), policy, baseline).iloc[:0]
    decided = frame.map_partitions(decide_partition, policy, baseline, meta=meta)
    result = decided.compute(scheduler="processes", num_workers=2)

    assert len(result) == len(data)
    assert result["reason"].str.startswith("unparsable").sum() == report.unparsable > 0
    by_kind, by_rule, by_country, before = totals_of(result)
    assert by_kind == +report.policy.kinds
    assert by_kind["block"] and by_kind["warn"] and by_kind["would_block"]
    assert by_rule == Counter(
        {f"{r}|{k}": n for r, c in report.policy.rules.items() for k, n in c.items() if n}
    )
    assert by_country == Counter(
        {
            f"{country}|{k}": n
            for country, c in report.policy.countries.items()
            if not country.startswith("(")
            for k, n in c.items()
            if n
        }
    )
    assert report.baseline is not None and before == +report.baseline.kinds
    # The rows and their own columns go through untouched.
    assert list(result["status"]) == [200] * len(data)


def test_batches_keep_their_rows_and_columns(policy: dict[str, Any]) -> None:
    batch = pa.RecordBatch.from_pylist(
        [
            {
                "msec": 1720483200.5,
                "remote_addr": "175.16.199.1",
                "request_method": "GET",
                "request_uri": "/v1/models",
                "extra": 1,
            },
            {
                "msec": 1720396800.0,
                "remote_addr": "175.16.199.1",
                "request_method": "GET",
                "request_uri": "/v1/models",
                "extra": 2,
            },
            {
                "msec": None,
                "remote_addr": "81.2.69.142",
                "request_method": "GET",
                "request_uri": "/v1/x",
                "extra": 3,
            },
        ]
    )
    (out,) = list(decide_batches([batch], policy=policy))
    assert out.schema.names == [
        *batch.schema.names,
        "action",
        "enforced",
        "reason",
        "rule",
        "country",
    ]
    table = out.to_pydict()
    assert table["extra"] == [1, 2, 3]
    # 2024-07-09T00:00:00.5Z: enforced; a day earlier: the warning of the grace window.
    assert table["action"][:2] == ["block", "warn"] and table["country"][:2] == ["CN", "CN"]
    assert table["action"][2] is None and table["reason"][2].startswith("unparsable: ")
    # An Arrow timestamp with a zone is a time too.
    stamped = pa.RecordBatch.from_pydict(
        {
            "time_iso8601": pa.array([datetime(2024, 7, 9, tzinfo=UTC)], pa.timestamp("us", "UTC")),
            "remote_addr": ["2a02:d0c0::1"],
            "request_method": ["GET"],
            "request_uri": ["/"],
        }
    )
    (decided,) = list(decide_batches([stamped], policy=policy))
    assert decided.column("action").to_pylist() == ["block"]


def test_without_pyarrow_the_error_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, policy: dict[str, Any]
) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now fails
    with pytest.raises(ImportError, match=r"geofence-middleware\[replay\]"):
        next(decide_batches([], policy=policy))
    monkeypatch.undo()
    with pytest.raises(ReplayError, match="needs a policy"):
        next(decide_batches([]))

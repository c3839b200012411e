"""The decision step on Arrow record batches: logs too large for one machine replay inside a
distributed engine that speaks Arrow (Spark ``mapInArrow``, Ray Data ``map_batches`` with
``batch_format="pyarrow"``, Dask partitions converted with ``pyarrow.RecordBatch.from_pandas``).

Input columns are named as nginx's variables, as in the JSON lines and CSV formats (see
:mod:`geofence.replay._variables`): ``time_iso8601`` (text with a zone, or an Arrow timestamp
with a time zone) or ``msec`` (number or text, with ``request_time`` when present),
``remote_addr``, ``http_x_forwarded_for``, ``request_method`` and ``request_uri`` (or
``request``), ``host``; other columns are carried through. Each row is read exactly as the
``jsonl`` reader reads a line with those fields, and decided as :func:`replay` decides it.

Output: the same rows and columns, plus ``action`` ("allow", "warn", "block"), ``enforced``
(False: report mode, shown and not enforced), ``reason``, ``rule``, ``country`` (null when the
client has none) and, with a baseline, ``baseline_action`` and ``baseline_enforced``. A row
that cannot be read has a null ``action`` and ``reason`` "unparsable: <why>".

pyarrow comes with the ``replay`` extra (``pip install 'geofence-middleware[replay]'``) and is
imported only when this step is used.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from geofence._engine import Engine
from geofence.replay._loop import Decided, Decider, decide_all, engine_of
from geofence.replay._record import Record, Unparsable
from geofence.replay._source import ReplayError
from geofence.replay._variables import row_record

#: Columns added to every batch (``baseline_*`` only with a baseline).
COLUMNS = ("action", "enforced", "reason", "rule", "country")
BASELINE_COLUMNS = ("baseline_action", "baseline_enforced")


def _pyarrow() -> Any:
    try:
        import pyarrow  # type: ignore[import-untyped]
    except ImportError:
        raise ImportError(
            "geofence.replay.decide_batches needs pyarrow: "
            "pip install 'geofence-middleware[replay]'"
        ) from None
    return pyarrow


def decide_batches(
    batches: Iterable[Any],
    policy: Engine | Any = None,
    baseline: Engine | Any = None,
    at: datetime | None = None,
) -> Iterator[Any]:
    """Each ``pyarrow.RecordBatch`` of ``batches`` with the decision columns added (see the
    module docstring). ``policy``, ``baseline`` and ``at`` as for :func:`replay`. One memo
    serves every batch of the iteration (a Spark or Ray task's batches share it)."""
    pa = _pyarrow()
    if policy is None:
        raise ReplayError(
            "decide_batches needs a policy (an Engine, a dict or a .toml / .json path)"
        )
    if at is not None and (at.tzinfo is None or at.utcoffset() is None):
        raise ReplayError("at must be an aware datetime")
    engine = engine_of(policy)
    base = engine_of(baseline) if baseline is not None else None
    # Outcome columns only, never a client's address or ref: the shared memo is exact for them.
    decider = Decider(engine, base, at, shared=True)
    for batch in batches:
        yield _decide_batch(pa, batch, decider)


def _rows(columns: dict[str, list[Any]], length: int) -> Iterator[dict[str, Any]]:
    names = list(columns)
    values = [columns[name] for name in names]
    for index in range(length):
        yield {name: column[index] for name, column in zip(names, values, strict=True)}


def _as_text(value: Any) -> Any:
    if isinstance(value, datetime):
        # An Arrow timestamp without a zone has no instant: left without one, it is unparsable.
        return value.isoformat()
    return value


def _decide_batch(pa: Any, batch: Any, decider: Decider) -> Any:
    length = batch.num_rows
    columns = {
        name: [_as_text(v) for v in batch.column(name).to_pylist()] for name in batch.schema.names
    }
    parsed = [row_record(row, index + 1, "") for index, row in enumerate(_rows(columns, length))]
    records = [item for item in parsed if isinstance(item, Record)]
    decided = iter(decide_all(records, decider))
    with_baseline = decider.baseline is not None
    out: dict[str, list[Any]] = {name: [] for name in COLUMNS}
    if with_baseline:
        out.update({name: [] for name in BASELINE_COLUMNS})
    for item in parsed:
        if isinstance(item, Unparsable):
            _append(out, None, f"unparsable: {item.why}", with_baseline)
            continue
        _, found = next(decided)
        _append(out, found, "", with_baseline)
    arrays = list(batch.columns)
    names = list(batch.schema.names)
    types = {"enforced": pa.bool_(), "baseline_enforced": pa.bool_()}
    for name, values in out.items():
        if name in names:
            raise ReplayError(f"the batch already has a column named {name!r}")
        arrays.append(pa.array(values, type=types.get(name, pa.string())))
        names.append(name)
    return pa.RecordBatch.from_arrays(arrays, names=names)


def _append(out: dict[str, list[Any]], found: Decided | None, why: str, baseline: bool) -> None:
    if found is None:
        for name, values in out.items():
            values.append(why if name == "reason" else None)
        return
    decision, before, _, _ = found
    out["action"].append(decision.action)
    out["enforced"].append(decision.enforced)
    out["reason"].append(decision.reason)
    out["rule"].append(decision.rule)
    out["country"].append(decision.country)
    if baseline:
        assert before is not None
        out["baseline_action"].append(before.action)
        out["baseline_enforced"].append(before.enforced)

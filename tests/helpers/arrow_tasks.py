"""What a distributed engine's task runs in the replay Arrow test, in a module of its own.

Dask's process scheduler pickles the task by reference: a function defined in a test module
(imported by pytest as ``tests.replay...``) cannot be found by a worker process, one in this
folder (on pytest's ``pythonpath``, which spawned workers inherit) can.
"""

from __future__ import annotations

from typing import Any

from geofence.replay import decide_batches


def decide_partition(frame: Any, policy: dict[str, Any], baseline: dict[str, Any]) -> Any:
    """What a Dask (or Spark mapInArrow, Ray map_batches) task runs: Arrow in, Arrow out."""
    import pyarrow

    batch = pyarrow.RecordBatch.from_pandas(frame, preserve_index=False)
    decided = decide_batches([batch], policy=policy, baseline=baseline)
    return pyarrow.Table.from_batches(list(decided)).to_pandas()

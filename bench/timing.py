"""Measurement: batches timed with perf_counter_ns, medians over rounds, paired comparisons.

A single call is never timed on its own: reading the clock can cost more than the call (about
0.7 µs on some virtual machines, where clock_gettime is a system call), so each sample is a
batch long enough for the clock to vanish in it, divided by the batch length.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

clock = time.perf_counter_ns

# A batch runs ``count`` operations on its own inputs and returns the nanoseconds it took.
Batch = Callable[[int], int]


@dataclass(frozen=True)
class Stats:
    """Nanoseconds per operation over rounds: median and the 10th / 90th percentiles."""

    median: float
    p10: float
    p90: float
    rounds: int

    @classmethod
    def of(cls, samples: Sequence[float]) -> Stats:
        ordered = sorted(samples)
        return cls(
            median=statistics.median(ordered),
            p10=_percentile(ordered, 0.10),
            p90=_percentile(ordered, 0.90),
            rounds=len(ordered),
        )

    def minus(self, overhead: float) -> Stats:
        return Stats(self.median - overhead, self.p10 - overhead, self.p90 - overhead, self.rounds)

    @property
    def us(self) -> float:
        return self.median / 1000


def _percentile(ordered: Sequence[float], fraction: float) -> float:
    if len(ordered) == 1:
        return ordered[0]
    at = fraction * (len(ordered) - 1)
    low = int(at)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (at - low)


def loop_overhead(count: int = 100_000, rounds: int = 7) -> float:
    """Nanoseconds per item of ``for item in items: call(item)`` with a no-op C call.

    Subtracted from single-call figures so that they show the call's own cost. A C builtin
    that does nothing (``id``) stands for the call, so only the loop and the call dispatch are
    taken away, not anything the measured function does.
    """
    items = [None] * count
    samples = []
    for _ in range(rounds):
        started = clock()
        for item in items:
            id(item)
        samples.append((clock() - started) / count)
    return statistics.median(samples)


def run(batch: Batch, count: int, rounds: int, warmup: int = 1) -> Stats:
    """Time ``rounds`` batches of ``count`` operations (after ``warmup`` untimed ones)."""
    for _ in range(warmup):
        batch(count)
    return Stats.of([batch(count) / count for _ in range(rounds)])


@dataclass(frozen=True)
class Pair:
    """Two variants timed in alternation; ``ratio`` is the median of per-round ratios b / a."""

    a: Stats
    b: Stats
    ratio: Stats

    @property
    def overhead_pct(self) -> float:
        return (self.ratio.median - 1) * 100


def paired(a: Batch, b: Batch, count: int, rounds: int, warmup: int = 1) -> Pair:
    """Alternate ``a`` and ``b`` (order swapped every round) so that drift and load spikes hit
    both alike; each round gives one ratio, and the median ratio is what is reported."""
    for _ in range(warmup):
        a(count)
        b(count)
    times_a: list[float] = []
    times_b: list[float] = []
    ratios: list[float] = []
    for index in range(rounds):
        gc.collect()
        if index % 2:
            tb = b(count)
            ta = a(count)
        else:
            ta = a(count)
            tb = b(count)
        times_a.append(ta / count)
        times_b.append(tb / count)
        ratios.append(tb / ta)
    return Pair(Stats.of(times_a), Stats.of(times_b), Stats.of(ratios))

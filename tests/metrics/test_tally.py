"""The decision tally: exact counts from many threads, one C call per count."""

from __future__ import annotations

import threading

from geofence._model import Decision
from geofence.metrics import Tally


def decision(
    action: str = "allow", country: str | None = "US", rule: str | None = None
) -> Decision:
    return Decision(
        action=action,
        enforced=True,
        reason="rule" if rule else "default",
        rule=rule,
        country=country,
    )


def test_counts_per_label_set() -> None:
    tally = Tally()
    allow, block = decision(), decision("block", "CN", "cn")
    count = tally.counter(allow)
    for _ in range(1000):
        count()
    tally.add(block)
    tally.add(decision(country=None))
    assert tally.snapshot() == {
        ("allow", "true", "default", "", "US"): 1000,
        ("block", "true", "rule", "cn", "CN"): 1,
        ("allow", "true", "default", "", ""): 1,
    }
    assert tally.counter(allow) == count  # one counter per label set, however often asked
    assert count() is None  # nothing allocated per call


def test_threads_lose_no_count() -> None:
    tally = Tally()
    count = tally.counter(decision())
    start = threading.Barrier(8)

    def work() -> None:
        start.wait()
        for _ in range(20_000):
            count()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert tally.snapshot() == {("allow", "true", "default", "", "US"): 160_000}


def test_the_iterator_and_the_counter_count_the_same_labels() -> None:
    tally = Tally()
    count = tally.iterator(decision())
    next(count)
    next(count)
    tally.counter(decision())()
    assert tally.snapshot() == {("allow", "true", "default", "", "US"): 3}

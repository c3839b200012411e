"""What happens beside a decision that is not the answer: its log line, its event, its count.

The engine hands every decision that needs attention (a block, a warn, a dry run) to
:meth:`Observer.seen`; a cached allow is counted by the tally iterator its cache entry holds
(``Tally.iterator``), so that logs, ``on_event`` and metrics see the same decisions whichever
adapter (or none) asked.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timezone

from geofence import _logs as logs
from geofence._events import Emitter, Event
from geofence._model import Decision, RequestInfo
from geofence._refs import Refs
from geofence.metrics._tally import Tally


def event_kind(decision: Decision) -> str:
    """``block``, ``warn``, ``would_block`` or ``would_warn``."""
    action = "block" if decision.action == "block" else "warn"
    return action if decision.enforced else f"would_{action}"


class Observer:
    """``limits``: which block/warn lines are written (:class:`geofence._logs.DecisionLimits`:
    each ref once a minute with a count of its repeats, at most 10 lines a second); events
    and counts are never limited. ``clock``: the monotonic clock of those limits."""

    __slots__ = ("events", "limits", "refs", "tally")

    def __init__(
        self,
        events: Emitter,
        tally: Tally | None,
        refs: Refs | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.events = events
        self.tally = tally
        self.refs = refs if refs is not None else Refs()
        self.limits = logs.DecisionLimits(clock=clock or time.monotonic)

    def seen(self, decision: Decision, request: RequestInfo, now: datetime | None = None) -> None:
        """A decision to report: logged (within the limits), sent as an event, counted."""
        logs.log_decision(decision, request, self.limits)
        if self.events.wants_requests:
            self.events.emit(
                Event(
                    kind=event_kind(decision),
                    at=now if now is not None else datetime.now(timezone.utc),
                    decision=decision,
                    account=decision.account,
                    rule=decision.rule,
                )
            )
        if self.tally is not None:
            self.tally.add(decision)

    def count(self, decision: Decision) -> None:
        if self.tally is not None:
            self.tally.add(decision)

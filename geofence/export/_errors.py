"""What an export cannot say exactly: :class:`Loss` (one rule, one reason) and
:class:`ExportError` (raised unless ``--lossy`` turned the losses into warnings)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple


class Loss(NamedTuple):
    """One thing a target cannot express exactly: which geofence rule (None for something
    policy-wide, e.g. the client-IP settings) and why."""

    rule: str | None
    reason: str

    def __str__(self) -> str:
        return self.reason if self.rule is None else f"rule {self.rule!r}: {self.reason}"


class ExportError(ValueError):
    """The policy cannot be exported as asked: ``rule`` (None for a policy-wide problem) and
    ``reason``; ``losses`` holds every problem found, the first one being (rule, reason).

    The ``geofence export`` command prints it on stderr and exits with status 2 without
    writing anything.
    """

    def __init__(self, rule: str | None, reason: str, *, more: Sequence[Loss] = ()) -> None:
        self.rule = rule
        self.reason = reason
        self.losses: tuple[Loss, ...] = (Loss(rule, reason), *more)
        text = "; ".join(str(loss) for loss in self.losses)
        super().__init__(text)

    @classmethod
    def of(cls, losses: Sequence[Loss]) -> ExportError:
        first, *rest = losses
        return cls(first.rule, first.reason, more=rest)


def settle(losses: Iterable[Loss], *, lossy: bool) -> tuple[str, ...]:
    """The warnings for ``losses`` when ``lossy``; otherwise raise :class:`ExportError` naming
    them all (an export that is not exact is refused, so nothing is written)."""
    found = tuple(dict.fromkeys(losses))  # in order, each once
    if found and not lossy:
        raise ExportError.of(found)
    return tuple(str(loss) for loss in found)

"""``flask.g.geofence``: read from the current request when asked, never written per request.

Writing an attribute into ``g`` costs a context lookup on every request, and most requests
never read it. Instead, the app's ``g`` class (``app.app_ctx_globals_class``) gets a fallback
for the name ``geofence``: the decision that the WSGI layer left in the request's environ.
"""

from __future__ import annotations

from functools import cache
from typing import Any, TypeVar

from flask import has_request_context, request

from geofence import Decision

#: Where the WSGI layer leaves the decision: in the request's environ, not in ``g``, which
#: Flask shares between requests when an app context is already pushed (tests, CLI, nested
#: apps).
DECISION_KEY = "geofence.decision"
NAME = "geofence"
_MISSING = object()
G = TypeVar("G")


def current_decision() -> Decision | None:
    """The decision for the request being handled; None outside a request geofence decided."""
    if not has_request_context():
        return None
    decision: Decision | None = request.environ.get(DECISION_KEY)
    return decision


class DecisionAttribute:
    """Put in front of an app's ``g`` class. A value the app assigns to ``g.geofence`` wins:
    ``__getattr__`` only runs for names the object does not hold."""

    def __getattr__(self, name: str) -> Any:
        if name == NAME:
            decision = current_decision()
            if decision is not None:
                return decision
        return super().__getattr__(name)  # type: ignore[misc]

    def get(self, name: str, default: Any = None) -> Any:
        value = super().get(name, _MISSING)  # type: ignore[misc]
        if value is _MISSING:
            value = current_decision() if name == NAME else None
            return default if value is None else value
        return value

    def __contains__(self, item: str) -> bool:
        if super().__contains__(item):  # type: ignore[misc]
            return True
        return item == NAME and current_decision() is not None


@cache
def with_decision(cls: type[G]) -> type[G]:
    """``cls`` (an app's ``g`` class) with ``g.geofence``; one class per ``cls``, shared by
    every app that uses it."""
    if issubclass(cls, DecisionAttribute):
        return cls
    extended: type[G] = type(cls.__name__, (DecisionAttribute, cls), {})
    return extended

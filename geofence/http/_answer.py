"""What an adapter does with a request: the one answer the core gives it.

An adapter asks the engine once per request (:meth:`geofence.Engine.answer`) and gets an
:class:`Answer`. It never looks at the decision's fields to decide what to do:

- ``answer.response`` is not None: send that response; the app is not called and the request
  body is never read;
- otherwise call the app, and when ``answer.amends`` is true, set the headers
  ``answer.headers(get)`` returns on the app's response (``get(name)`` reads the app's current
  value of a header, repeated lines joined with ", "), replacing any of the same name.

``answer.decision`` is what the adapter shows the app (``request.geofence`` and friends).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from geofence._model import Decision
from geofence.hotpath import TUPLES

if TYPE_CHECKING:
    from geofence.http._responses import Responder, Response

HeaderGetter = Callable[[str], "str | None"]


class Answer:
    """The core's answer to one request. Immutable by convention: allowed answers are shared
    between requests (the engine caches them), so adapters never modify one. A class with
    slots rather than a named tuple: adapters read ``answer.decision`` on every request, and
    CPython reads a slot faster than a named tuple's field."""

    __slots__ = ("decision", "response", "warner")

    def __init__(
        self,
        decision: Decision,
        response: Response | None = None,
        warner: Responder | None = None,
    ) -> None:
        self.decision = decision
        #: The response to send instead of calling the app, or None to call the app.
        self.response = response
        #: Set only for an enforced warning: what builds the headers the app's response gets.
        self.warner = warner

    @property
    def amends(self) -> bool:
        """Whether :meth:`headers` has anything to add to the app's response."""
        return self.warner is not None

    def headers(self, get: HeaderGetter) -> list[tuple[str, str]]:
        """Headers to set on the app's response, each replacing the app's header of that name
        (Cache-Control and Link come back merged with the app's own values, read via ``get``)."""
        if self.warner is None:
            return []
        return self.warner.warn_headers(self.decision, get)

    def __repr__(self) -> str:
        todo = "respond" if self.response is not None else "amend" if self.amends else "pass"
        return f"Answer({todo}, {self.decision!r})"


#: ``Answer(decision, response, warner)``, all three given, for the engine's paths that make one per
#: new client (and per blocked request): built in C when geofence.hotpath._tuples is, since a call
#: to a Python class with an __init__ costs about 2,500 instructions on CPython 3.12.
new_answer: Callable[[Decision, Response | None, Responder | None], Answer] = (
    Answer if TUPLES is None else TUPLES.Builder(Answer, Answer.__slots__)
)

#: The decision of a request to a view marked exempt in its framework: the engine was not asked.
EXEMPT_VIEW = Decision(action="allow", enforced=True, reason="exempt_view")
EXEMPT_VIEW_ANSWER = Answer(EXEMPT_VIEW)

"""Framework-neutral HTTP answers: the block page, the 503, the warn headers.

OWNER: responses helper.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from .model import Decision


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: tuple[tuple[str, str], ...]  # includes Content-Type and Content-Length
    body: bytes
    html: bool  # True when body is the HTML page (Django may re-render it from a template)
    context: Mapping[str, object]  # what the page shows: status, code, message, info_url


def prefers_html(accept: str | None) -> bool:
    raise NotImplementedError


class Responder:
    """Builds every response once, at engine build time; per request it only picks one."""

    def __init__(self, message: str, info_url: str | None) -> None:
        raise NotImplementedError

    def denial(self, decision: Decision, accept: str | None) -> Response:
        """The block (451/403) or db_error (503) response for an enforced block decision."""
        raise NotImplementedError

    def warn_headers(
        self, decision: Decision, get: Callable[[str], str | None]
    ) -> list[tuple[str, str]]:
        """Headers to set on the app's response for an enforced warn decision.

        ``get(name)`` returns the app's current value of a header (or None) so that
        Cache-Control and Link are merged, not clobbered.
        """
        raise NotImplementedError

"""Find the real client address from the socket peer and (trusted) forwarding headers.

OWNER: client-IP helper.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .addresses import IP
from .policy import ClientIPPolicy


@dataclass(frozen=True, slots=True)
class ClientIP:
    ip: IP | None  # None: unresolved_client
    detail: str  # human words: how it was found, or why it could not be


class ClientResolver:
    def __init__(self, policy: ClientIPPolicy) -> None:
        raise NotImplementedError

    def resolve(self, peer: str | None, headers: Sequence[tuple[str, str]]) -> ClientIP:
        """Never raises, whatever the input."""
        raise NotImplementedError

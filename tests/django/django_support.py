"""Test clients shared by the Django tests."""

from __future__ import annotations

import io
from typing import Any

from django.test import AsyncClient


class CountingInput(io.BytesIO):
    """wsgi.input that counts the reads, to prove a blocked body is never read."""

    reads = 0

    def read(self, size: int | None = -1) -> bytes:
        self.reads += 1
        return super().read(size)

    def readline(self, size: int | None = -1) -> bytes:
        self.reads += 1
        return super().readline(size)


class PeerAsyncClient(AsyncClient):
    """AsyncClient whose ASGI scope carries the given client address (REMOTE_ADDR)."""

    def __init__(self, peer: str, **defaults: Any) -> None:
        super().__init__(**defaults)
        self.peer = peer

    def _base_scope(self, **request: Any) -> dict[str, Any]:
        scope: dict[str, Any] = super()._base_scope(**request)
        scope["client"] = [self.peer, 50000]
        return scope

from typing import Any

def country_at(
    data: Any, start: int, offset: int, checked: bytearray | None = None, /
) -> tuple[str | None, tuple[str | None, ...] | None] | None: ...

from typing import Any

def country_at(
    data: Any, start: int, offset: int, /
) -> tuple[str | None, tuple[str | None, ...] | None] | None: ...

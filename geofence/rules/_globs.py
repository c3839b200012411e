"""Path globs: ``*`` is any run of characters (``/`` included), ``?`` one character,
``[abc]`` / ``[!abc]`` a class. Everything else is literal and case-sensitive.

We translate to a regular expression ourselves instead of using :mod:`fnmatch`, because
fnmatch quietly treats an unbalanced ``[`` as a literal, and a pattern that does not mean what
its author thinks must fail at load time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable


class GlobError(ValueError):
    pass


def glob_to_regex(pattern: str) -> str:
    if not pattern.startswith("/") and pattern != "*":
        raise GlobError(f"{pattern!r} must start with '/' (paths are matched from the root)")
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            while i < n and pattern[i] == "*":
                i += 1
            out.append(".*")
            continue
        if c == "?":
            out.append(".")
        elif c == "[":
            end = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("!", "]") else i + 1)
            if end < 0:
                raise GlobError(f"{pattern!r} has an unclosed '[' (write '[[]' for a literal '[')")
            body = pattern[i + 1 : end]
            negate = body.startswith("!")
            if negate:
                body = body[1:]
            if not body:
                raise GlobError(f"{pattern!r} has an empty character class")
            body = "".join(ch if ch == "-" else re.escape(ch) for ch in body)
            try:
                re.compile(f"[{body}]")
            except re.error as exc:
                raise GlobError(f"{pattern!r} has a bad range in '[...]': {exc}") from None
            out.append(f"[{'^' if negate else ''}{body}]")
            i = end
        elif c == "]":
            raise GlobError(f"{pattern!r} has a ']' without '[' (write '[]]' for a literal ']')")
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def compile_globs(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """One anchored regex for all ``patterns``; None when there are none (no constraint)."""
    parts = [glob_to_regex(p) for p in patterns]
    if not parts:
        return None
    return re.compile("(?:" + "|".join(parts) + r")\Z", re.DOTALL)


def has_dot_segment(path: str) -> bool:
    """True for paths with ``.`` or ``..`` segments: those never match an exemption."""
    return any(seg in (".", "..") for seg in path.split("/"))

"""The README's account roll-out runs as written (on memory://, and on a real Redis)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def walkthrough() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### The roll-out, end to end", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match is not None, "the roll-out section has no python block"
    return match.group(1)


def run(code: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    monkeypatch.chdir(ROOT)  # the block names the test databases relative to the checkout
    namespace: dict[str, object] = {"__name__": "readme"}
    exec(compile(code, "README.md (roll-out)", "exec"), namespace)
    return namespace


def test_the_rollout_runs_on_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    namespace = run(walkthrough(), monkeypatch)
    assert namespace["outbox"] == [
        ("org_acme", "blocked from 2026-07-10"),
        ("org_acme", "suspended"),
        ("org_uk", "blocked from 2026-07-24"),
    ]


def test_the_rollout_checks_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    # The block's own asserts are what the README promises: break one promise, it fails.
    code = walkthrough().replace('"threshold": 50', '"threshold": 500')
    with pytest.raises(AssertionError):
        run(code, monkeypatch)


def test_the_rollout_runs_on_redis(monkeypatch: pytest.MonkeyPatch, redis_standalone: Any) -> None:
    code = walkthrough()
    assert '"memory://"' in code
    # A prefix of its own: the server is shared by the session's tests.
    store = f'{redis_standalone.url!r}, "key_prefix": "readme-{uuid.uuid4().hex}"'
    namespace = run(code.replace('"memory://"', store), monkeypatch)
    assert ("org_acme", "suspended") in namespace["outbox"]  # type: ignore[operator]

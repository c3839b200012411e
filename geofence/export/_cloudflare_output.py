"""What a CDN renderer (Cloudflare, AWS WAF) hands back, and the JSON text both write."""

from __future__ import annotations

import json
from typing import Any, NamedTuple


class Rendered(NamedTuple):
    """One export: ``text`` to write (ends with a newline), ``warnings`` for what ``--lossy``
    let through (one line each, for stderr), ``notes`` for what the user should know but that
    changes no decision (plan needs, answer differences, when to export again)."""

    text: str
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def dump_json(document: Any) -> str:
    # ensure_ascii=False keeps the operator's message readable; JSON is UTF-8 either way.
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def terraform_literal(value: Any) -> Any:
    """``value`` with every string made literal for Terraform's JSON syntax, where strings are
    templates: ``${`` and ``%{`` in a message or an expression would otherwise be evaluated."""
    if isinstance(value, str):
        return value.replace("${", "$${").replace("%{", "%%{")
    if isinstance(value, dict):
        return {k: terraform_literal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [terraform_literal(v) for v in value]
    return value

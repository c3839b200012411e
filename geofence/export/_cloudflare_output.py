"""The JSON text both CDN renderers (Cloudflare, AWS WAF) write."""

from __future__ import annotations

import json
from typing import Any


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


def comment(notes: list[str]) -> str:
    """The notes as the value of a ``"//"`` key: Terraform's JSON syntax ignores that key, and
    the API documents are wrappers whose parts are sent one by one."""
    return " | ".join(notes)

"""Export a policy to an edge: Cloudflare, AWS WAF, nginx (DESIGN "Export").

>>> import geofence.export
>>> edge = geofence.export.plan({"rules": [{"name": "cn", "action": "block", "regions": ["CN"]}]})
>>> edge.rules[0].action
'block'

:func:`plan` gives the policy's edge form at one instant (:class:`EdgePolicy`), which every
target renders; :func:`render` does both steps for one target. What a target cannot express
exactly raises :class:`ExportError` naming the rule and the reason, unless ``lossy=True``
turns it into a warning (:attr:`Rendered.warnings`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from geofence.config._policy import Policy
from geofence.export._edge import (
    BlockAnswer,
    ClientAddress,
    EdgeFacts,
    EdgeMatch,
    EdgeOutcome,
    EdgePolicy,
    EdgeRule,
    ExportMode,
    decide,
    host_regex,
    path_regex,
    plan,
    warn_headers,
)
from geofence.export._errors import ExportError, Loss, settle
from geofence.export._targets import FORMATS, TARGETS, Rendered, render_edge

__all__ = [
    "FORMATS",
    "TARGETS",
    "BlockAnswer",
    "ClientAddress",
    "EdgeFacts",
    "EdgeMatch",
    "EdgeOutcome",
    "EdgePolicy",
    "EdgeRule",
    "ExportError",
    "ExportMode",
    "Loss",
    "Rendered",
    "decide",
    "host_regex",
    "path_regex",
    "plan",
    "render",
    "render_edge",
    "settle",
    "warn_headers",
]


def render(
    policy: Policy | Mapping[str, Any] | str | os.PathLike[str],
    *,
    target: str,
    format: str | None = None,
    mode: ExportMode = "report",
    at: datetime | None = None,
    lossy: bool = False,
    **options: str,
) -> Rendered:
    """``policy`` exported for ``target`` ("cloudflare", "aws-waf" or "nginx") in ``format``
    (default: the target's first, "api" or "conf"), at ``at`` (default: now), in ``mode``.

    Raises :class:`ExportError` for what the target cannot express exactly (unless ``lossy``)
    and :class:`geofence.ConfigError` for a bad policy. ``options``: the target's own
    (``plan`` for Cloudflare, ``client`` and ``scope`` for AWS WAF).
    """
    edge = plan(policy, at=at, mode=mode)
    return render_edge(edge, target=target, format=format, lossy=lossy, **options)

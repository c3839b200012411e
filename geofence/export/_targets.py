"""The export targets: which formats each has, and the one call that renders an EdgePolicy.

Each target is a module with one function ``render_<target>(edge, *, format, lossy) ->
Rendered``; it is imported only when asked for, so that a target still being built (or one
whose module is missing) fails that target alone, with a clear message.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from geofence.export._edge import EdgePolicy
from geofence.export._errors import ExportError

#: target -> its formats; the first is the default.
FORMATS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "cloudflare": ("api", "terraform"),
        "aws-waf": ("api", "terraform"),
        "nginx": ("conf",),
    }
)
TARGETS: tuple[str, ...] = tuple(FORMATS)

# target -> (module, function)
_RENDERERS = {
    "cloudflare": ("geofence.export._cloudflare", "render_cloudflare"),
    "aws-waf": ("geofence.export._aws", "render_aws_waf"),
    "nginx": ("geofence.export._nginx", "render_nginx"),
}


@dataclass(frozen=True)
class Rendered:
    """One export: ``text`` is the output (stdout, or the file of ``-o``), ``files`` the
    further files written beside it (suffix appended to the ``-o`` name -> text, e.g. nginx's
    ``".server.conf"``), ``warnings`` what ``lossy`` let through (printed on stderr)."""

    text: str
    warnings: tuple[str, ...] = ()
    files: Mapping[str, str] = field(default_factory=dict)


Renderer = Callable[..., Rendered]


def renderer(target: str) -> Renderer:
    """The render function of ``target``; ExportError for an unknown or unavailable one."""
    if target not in _RENDERERS:
        raise ExportError(None, f"unknown target {target!r}; targets: {', '.join(TARGETS)}")
    module_name, function = _RENDERERS[target]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise
        raise ExportError(
            None, f"the {target} target is not available in this version of geofence"
        ) from None
    found: Renderer | None = getattr(module, function, None)
    if found is None:
        raise ExportError(None, f"the {target} target is not available in this version of geofence")
    return found


def check_format(target: str, format: str | None) -> str:
    """``format`` (default: the target's first) if ``target`` has it; ExportError if not."""
    if target not in FORMATS:
        raise ExportError(None, f"unknown target {target!r}; targets: {', '.join(TARGETS)}")
    formats = FORMATS[target]
    if format is None:
        return formats[0]
    if format not in formats:
        raise ExportError(
            None, f"--format {format!r} is not one of {target}'s formats: {', '.join(formats)}"
        )
    return format


# Options only one target understands: option -> (target, its values).
OPTIONS: Mapping[str, tuple[str, tuple[str, ...]]] = {
    "plan": ("cloudflare", ("free", "pro", "business", "enterprise")),
    "client": ("aws-waf", ("source", "header")),
    "scope": ("aws-waf", ("CLOUDFRONT", "REGIONAL")),
}


def render_edge(
    edge: EdgePolicy,
    *,
    target: str,
    format: str | None = None,
    lossy: bool = False,
    **options: str,
) -> Rendered:
    """Render ``edge`` for ``target``: ExportError for what it cannot express (unless lossy).

    ``options`` are the target's own (see :data:`OPTIONS`): Cloudflare's ``plan`` (what the
    zone's plan offers: needs beyond it become errors), AWS WAF's ``client`` (``source``: the
    web ACL's source address; ``header``: ``[client_ip]``'s forwarding header) and ``scope``.
    """
    chosen = check_format(target, format)
    for name, value in options.items():
        owner, values = OPTIONS.get(name, ("", ()))
        if owner != target:
            where = f"an option of {owner}" if owner else "no export option"
            raise ExportError(None, f"{name} is {where}, not of {target}")
        if value not in values:
            raise ExportError(None, f"{name} {value!r} is not one of {', '.join(values)}")
    return renderer(target)(edge, format=chosen, lossy=lossy, **options)

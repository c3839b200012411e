"""What adapters use: the core's answer to a request, responses, and request-header views.

An adapter turns its framework's request into a :class:`geofence.RequestInfo`, asks
:meth:`geofence.Engine.answer` (or :meth:`geofence.Engine.cached` first), and turns the
:class:`Answer` into its framework's response. Nothing here imports a web framework.

The names below are loaded on first use (PEP 562): an engine imports only the modules it
needs (``_answer``, ``_responses``), not the WSGI and header-view code an adapter uses, nor
the standard ``http`` package that code loads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from geofence._lazy import exports

if TYPE_CHECKING:
    from geofence.http._answer import Answer
    from geofence.http._environ import EnvironHeaders
    from geofence.http._responses import (
        CACHE_OVERRIDE_HEADERS,
        PAGE_CSP,
        TEMPLATE_CSP,
        Responder,
        Response,
        merge_cache_control,
        prefers_html,
    )
    from geofence.http._wsgi import WSGI_ROUTED_PATHS, wsgi_amend, wsgi_send

# Public name -> the submodule that defines it.
_WHERE = {
    "Answer": "_answer",
    "EnvironHeaders": "_environ",
    "CACHE_OVERRIDE_HEADERS": "_responses",
    "PAGE_CSP": "_responses",
    "TEMPLATE_CSP": "_responses",
    "Responder": "_responses",
    "Response": "_responses",
    "merge_cache_control": "_responses",
    "prefers_html": "_responses",
    "WSGI_ROUTED_PATHS": "_wsgi",
    "wsgi_amend": "_wsgi",
    "wsgi_send": "_wsgi",
}

__all__ = [
    "CACHE_OVERRIDE_HEADERS",
    "PAGE_CSP",
    "TEMPLATE_CSP",
    "WSGI_ROUTED_PATHS",
    "Answer",
    "EnvironHeaders",
    "Responder",
    "Response",
    "merge_cache_control",
    "prefers_html",
    "wsgi_amend",
    "wsgi_send",
]


__getattr__, __dir__ = exports(__name__, globals(), _WHERE)

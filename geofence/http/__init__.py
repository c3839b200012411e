"""What adapters use: the core's answer to a request, responses, and request-header views.

An adapter turns its framework's request into a :class:`geofence.RequestInfo`, asks
:meth:`geofence.Engine.answer` (or :meth:`geofence.Engine.cached` first), and turns the
:class:`Answer` into its framework's response. Nothing here imports a web framework.
"""

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

__all__ = [
    "CACHE_OVERRIDE_HEADERS",
    "PAGE_CSP",
    "TEMPLATE_CSP",
    "Answer",
    "EnvironHeaders",
    "Responder",
    "Response",
    "merge_cache_control",
    "prefers_html",
]

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
from geofence.http._wsgi import WSGI_ROUTED_PATHS, wsgi_amend, wsgi_send

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

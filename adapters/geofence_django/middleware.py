"""``GeofenceMiddleware``: Django's request in, the core's decision and answer out.

Translation only: every decision, header and body comes from :class:`geofence.Engine`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.template import TemplateDoesNotExist
from django.template.loader import render_to_string
from django.utils.safestring import SafeString

from geofence import Decision, RequestInfo, Response
from geofence.responses import TEMPLATE_CSP
from geofence.wsgi import EnvironHeaders

from .conf import get_engine

TEMPLATE = "geofence/blocked.html"
SyncGetResponse = Callable[[HttpRequest], HttpResponseBase]
AsyncGetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]

logger = logging.getLogger("geofence.django")


def request_info(request: HttpRequest) -> RequestInfo:
    """The core's request facts from ``request.META``; never touches the body."""
    meta = request.META
    return RequestInfo(
        peer=meta.get("REMOTE_ADDR") or None,
        headers=EnvironHeaders(meta),
        method=request.method or "GET",
        path=request.path_info,
        # The raw header: request.get_host() would raise DisallowedHost on a forged Host.
        host=meta.get("HTTP_HOST", ""),
    )


class GeofenceMiddleware:
    """Decide every request; answer blocks itself, add warn headers to the app's response.

    Works under WSGI and ASGI without a thread hop: the decision is CPU-only, so the async
    path calls the engine directly.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: SyncGetResponse | AsyncGetResponse) -> None:
        self.get_response = get_response
        # Raises ImproperlyConfigured: a bad policy stops the server instead of being skipped.
        self.engine = get_engine()
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)
        # Mode "off": the view still sees a decision, with no per-request work.
        self._off = None if self.engine.active else self.engine.decide(RequestInfo(peer=None))

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self._async:
            return self.__acall__(request)
        decision, denial = self._before(request)
        if denial is not None:
            return denial
        response = cast(SyncGetResponse, self.get_response)(request)
        return self._after(decision, response)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        decision, denial = self._before(request)
        if denial is not None:
            return denial
        response = await cast(AsyncGetResponse, self.get_response)(request)
        return self._after(decision, response)

    def _before(self, request: HttpRequest) -> tuple[Decision | None, HttpResponse | None]:
        if hasattr(request, "geofence"):
            return None, None  # installed twice: the outer instance has decided already
        if self._off is not None:
            request.geofence = self._off  # type: ignore[attr-defined]
            return None, None
        info = request_info(request)
        decision = self.engine.decide(info)
        request.geofence = decision  # type: ignore[attr-defined]
        denial = self.engine.denial(decision, info)
        if denial is None:
            return decision, None
        return decision, self._denial_response(denial, decision, info)

    def _after(self, decision: Decision | None, response: HttpResponseBase) -> HttpResponseBase:
        if decision is not None and decision.action == "warn":  # only warnings add headers
            for name, value in self.engine.response_headers(decision, response.headers.get):
                response[name] = value
        return response

    def _denial_response(
        self, denial: Response, decision: Decision, info: RequestInfo
    ) -> HttpResponse:
        response = HttpResponse(denial.body, status=denial.status)
        for name, value in denial.headers:
            response[name] = value
        if denial.html:
            full = denial
            if not denial.body:  # HEAD: render what GET would get, to send its length
                full = self.engine.denial(decision, replace(info, method="GET")) or denial
            page = self._page(full)
            # HEAD keeps the GET answer's headers, Content-Length included, and no body.
            if denial.body:
                response.content = page
            response["Content-Length"] = str(len(page))
            if page != full.body:
                # The core's CSP allows only its own page's style sheet (by hash).
                response["Content-Security-Policy"] = TEMPLATE_CSP
        return response

    def _page(self, denial: Response) -> bytes:
        """The block page from the overridable template, or the core's page if it fails."""
        context = {**denial.context, "default_page": SafeString(denial.body.decode())}
        try:
            return render_to_string(TEMPLATE, context).encode()
        except TemplateDoesNotExist:
            return denial.body  # geofence_django not in INSTALLED_APPS: the default page
        except Exception:
            # A broken override (system check W002): still block, with the core's page,
            # rather than fail the request.
            logger.exception("cannot render %s; sending the default block page", TEMPLATE)
            return denial.body

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
from geofence.http._environ import EnvironHeaders
from geofence.http._responses import TEMPLATE_CSP

from .conf import get_engine

TEMPLATE = "geofence/blocked.html"
SyncGetResponse = Callable[[HttpRequest], HttpResponseBase]
AsyncGetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]

logger = logging.getLogger("geofence.django")


def request_info(request: HttpRequest) -> RequestInfo:
    """The core's request facts from ``request.META``; never touches the body."""
    meta = request.META
    # Positional (peer, headers, method, path, host): keywords cost twice as much, per request.
    return RequestInfo(
        meta.get("REMOTE_ADDR") or None,
        EnvironHeaders(meta),  # lazy: most requests never read a header
        request.method or "GET",
        request.path_info,
        # The raw header: request.get_host() would raise DisallowedHost on a forged Host.
        meta.get("HTTP_HOST", ""),
    )


class GeofenceMiddleware:
    """Decide every request; answer blocks itself, add warn headers to the app's response.

    Works under WSGI and ASGI without a thread hop: the decision is CPU-only, so the async
    path calls the engine directly. Both paths run once per request of the whole site, so
    they do only what an allowed request needs; blocks and warnings branch off to helpers.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: SyncGetResponse | AsyncGetResponse) -> None:
        self.get_response = get_response
        # The same callable, typed for the path that calls it (cast here, not per request).
        self._app = cast(SyncGetResponse, get_response)
        self._async_app = cast(AsyncGetResponse, get_response)
        # Raises ImproperlyConfigured: a bad policy stops the server instead of being skipped.
        self.engine = get_engine()
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)
        # Mode "off": the view still sees a decision, with no per-request work.
        self._off = None if self.engine.active else self.engine.decide(RequestInfo(None))

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self._async:
            return self.__acall__(request)
        if self._off is not None or hasattr(request, "geofence"):
            self._pass(request)
            return self._app(request)
        info = request_info(request)
        decision = self.engine.decide(info)
        request.geofence = decision  # type: ignore[attr-defined]
        # Only a block is ever answered by geofence: allows and warnings skip the engine call.
        if decision.action == "block":
            denial = self._denial(decision, info)
            if denial is not None:  # None: the block is reported, not enforced
                return denial
        response = self._app(request)
        if decision.action == "warn":
            self._warn(decision, response)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        # The same steps as __call__, awaiting the app.
        if self._off is not None or hasattr(request, "geofence"):
            self._pass(request)
            return await self._async_app(request)
        info = request_info(request)
        decision = self.engine.decide(info)
        request.geofence = decision  # type: ignore[attr-defined]
        if decision.action == "block":
            denial = self._denial(decision, info)
            if denial is not None:
                return denial
        response = await self._async_app(request)
        if decision.action == "warn":
            self._warn(decision, response)
        return response

    def _pass(self, request: HttpRequest) -> None:
        """Mode "off", or installed twice: decide nothing, but let the view see a decision."""
        # Installed twice: the outer instance has decided (and set the decision) already.
        if self._off is not None and not hasattr(request, "geofence"):
            request.geofence = self._off  # type: ignore[attr-defined]

    def _warn(self, decision: Decision, response: HttpResponseBase) -> None:
        for name, value in self.engine.response_headers(decision, response.headers.get):
            response[name] = value

    def _denial(self, decision: Decision, info: RequestInfo) -> HttpResponse | None:
        """The answer to a block decision, or None when the engine lets the request through."""
        denial = self.engine.denial(decision, info)
        if denial is None:
            return None
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

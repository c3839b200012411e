"""``GeofenceMiddleware``: Django's request in, the core's answer out.

Translation only: the engine says what to do with each request (:class:`geofence.http.Answer`),
and every decision, header and body comes from it; its response becomes Django's in
:mod:`.responses` (which renders the block page from the overridable template).
With ``GEOFENCE_ACCOUNT`` (:func:`conf.account_hooks`) each request is decided for the
account the hook returns; the middleware then goes after ``AuthenticationMiddleware``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import CoroutineType
from typing import cast

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest
from django.http.response import HttpResponseBase

from geofence import RequestInfo
from geofence.hotpath._makers import new_request_info
from geofence.http import Answer
from geofence.http._answer import EXEMPT_VIEW_ANSWER
from geofence.http._environ import new_environ_headers

from . import routing
from .conf import AsyncHook, SyncHook, account_hooks, get_engine
from .responses import django_response
from .routing import cannot_be_exempt, routed_to_exempt

# The key in ``request.META`` of the mark of the engine that answered the request (installed
# twice). Not an attribute of the request: a second attribute name on every request type
# made CPython give up its compact attribute storage for requests (a dict built per request).
MARK = "geofence.mark"
SyncGetResponse = Callable[[HttpRequest], HttpResponseBase]
AsyncGetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]
Parts = tuple[str | None, str, str]  # (peer, method, path): what the engine's cache is keyed by


def request_info(request: HttpRequest) -> RequestInfo:
    """The core's request facts from ``request.META``; never touches the body."""
    meta = request.META
    # Positional (peer, headers, method, path, host): keywords cost twice as much.
    return new_request_info(
        meta.get("REMOTE_ADDR") or None,
        new_environ_headers(meta),  # lazy: most requests never read a header
        request.method or "GET",
        request.path_info,
        # The raw header: request.get_host() would raise DisallowedHost on a forged Host.
        # SERVER_NAME for a request without one (HTTP/1.0), as Django itself falls back to.
        meta.get("HTTP_HOST") or meta.get("SERVER_NAME", ""),
    )


class GeofenceMiddleware:
    """Ask the engine about every request; send its response, or call the view and add the
    headers a warning asks for. ``request.geofence`` is the decision, for the view.

    Works under WSGI and ASGI without a thread hop: the answer is CPU-only, so the async path
    asks the engine directly. The two paths differ only in awaiting the view (and the account
    hook and store, with ``GEOFENCE_ACCOUNT``).
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: SyncGetResponse | AsyncGetResponse) -> None:
        self.get_response = get_response
        # The same callable, typed for the path that calls it (cast here, not per request).
        self._app = cast(SyncGetResponse, get_response)
        self._async_app = cast(AsyncGetResponse, get_response)
        # Raises ImproperlyConfigured: a bad policy stops the server instead of being skipped.
        self.engine = engine = get_engine()
        # Imported once; ImproperlyConfigured when it does not import (checks E003, E004).
        hooks = account_hooks()
        self.account_of: SyncHook | None = None if hooks is None else hooks[0]
        self._aaccount_of: AsyncHook | None = None if hooks is None else hooks[1]
        # What this instance leaves on a request it answers (see _unknown).
        self._mark = engine.mark
        # Bound once: every request asks the cache, a miss quick(), then answer().
        self._cached = engine.cached
        self._answer = engine.answer
        # Behind a trusted proxy: the META key of the forwarding header, whose value finds a
        # repeated client in the cache (its peer is the proxy's); None when no header counts.
        header = engine.client_header
        self._forwarded = None if header is None else "HTTP_" + header.upper().replace("-", "_")
        self._quick = engine.quick
        # What every request asks first: cached(), or quick() (which answers what the cache
        # holds too, and saves a new client a second probe) from when routing.quick_first()
        # finds that no exempt view can be routed to, until ROOT_URLCONF changes.
        self._first = self._cached
        # Whether only Django's own middleware runs before this one, none of which sets
        # request.urlconf: then every request here is routed by ROOT_URLCONF.
        self._by_root = routing.first_after_django(type(self))
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)
        # Whether __call__ leaves its hot path (a sync app without an account hook) at once.
        self._other = self._async or self.account_of is not None

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        # Every line down to the view is paid by every request: a repeated allowed one is
        # answered by one probe of the engine's cache (whose answers pass the request on
        # untouched: nothing to send, nothing to amend), and nothing is built for it.
        if self._other:
            return self.__acall__(request) if self._async else self._call_with_account(request)
        meta = request.META
        peer = meta.get("REMOTE_ADDR") or None
        method = request.method or "GET"
        path = request.path_info
        answer = self._first(peer, method, path)
        if answer is None:
            if self._forwarded is not None:
                # A proxied client: found by the proxy's address and the line it forwarded.
                forwarded = meta.get(self._forwarded)
                if forwarded is not None:
                    answer = self._cached(peer, method, path, None, forwarded)
            if answer is None:
                # A miss: quick() decides most new clients from these three, and its answers
                # pass on untouched as the cache's do. It goes before the exempt-view check
                # and the mark (_unknown) only when no exempt view can be routed to; else an
                # exempt view must not reach it. Inline: each call here costs a new client.
                if self._first is self._quick:  # asked already
                    answer = self._unknown(request) or self._answer(request_info(request))
                    return self._applied(request, answer)
                if routing.exempt_free and getattr(request, "urlconf", None) is None:
                    if self._by_root:
                        routing.quick_first(self)
                    answer = self._quick(peer, method, path)
                    if answer is None:
                        answer = self._unknown(request) or self._answer(request_info(request))
                        return self._applied(request, answer)
                else:
                    answer = self._unknown(request) or self._quick(peer, method, path)
                    if answer is None:
                        return self._applied(request, self._answer(request_info(request)))
        request.geofence = answer.decision  # type: ignore[attr-defined]
        return self._app(request)

    def ask_first(self, quick: bool) -> None:
        """Ask quick() first (``quick``: no exempt view can be routed to), or cached() again
        (ROOT_URLCONF changed): called by :mod:`.routing`."""
        self._first = self._quick if quick else self._cached

    def _miss(self, request: HttpRequest, parts: Parts) -> Answer | None:
        """A cache miss of the async path without an account, in the order __call__ keeps
        inline: quick() first only when no exempt view can be routed to."""
        if cannot_be_exempt(request):
            return self._quick(*parts) or self._unknown(request)
        return self._unknown(request) or self._quick(*parts)

    def _applied(self, request: HttpRequest, answer: Answer) -> HttpResponseBase:
        """The response to a sync request with ``answer``."""
        request.geofence = answer.decision  # type: ignore[attr-defined]
        if answer.response is not None:
            return django_response(answer)
        response = self._app(request)
        if answer.amends:
            self._amend(answer, response)
        return response

    def _call_with_account(self, request: HttpRequest) -> HttpResponseBase:
        """:meth:`__call__` of a sync app with ``GEOFENCE_ACCOUNT``."""
        assert self.account_of is not None
        account = self.account_of(request)
        forwarded = request.META.get(self._forwarded)  # type: ignore[arg-type]  # None: no header
        answer = self._cached(*self._parts(request), account, forwarded)
        if answer is None:
            answer = self._unknown(request) or self._answer(request_info(request), None, account)
        return self._applied(request, answer)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        account = None
        if self._aaccount_of is not None:
            account = self._aaccount_of(request)
            if account.__class__ is CoroutineType:  # the hook's, guarded (conf.account_hooks)
                account = await account
        parts = self._parts(request)
        forwarded = request.META.get(self._forwarded)  # type: ignore[arg-type]  # None: no header
        answer = self._cached(*parts, account, forwarded)
        if answer is None:
            answer = self._miss(request, parts) if account is None else self._unknown(request)
            if answer is None:
                info = request_info(request)  # aanswer() without an account is answer()
                if account is None:
                    answer = self._answer(info)
                else:
                    answer = await self.engine.aanswer(info, None, account)
        request.geofence = answer.decision  # type: ignore[attr-defined]
        if answer.response is not None:
            return django_response(answer)
        response = await self._async_app(request)
        if answer.amends:
            self._amend(answer, response)
        return response

    def _unknown(self, request: HttpRequest) -> Answer | None:
        """For a request the cache has no answer for: the answer when nothing needs deciding
        (an exempt view, or the outer instance answered already); else None, with the
        request marked."""
        meta = request.META
        mark = meta.get(MARK)
        if mark is not None and self.engine.decided(mark):
            # Installed twice with this policy: the outer instance answered already.
            # (Both instances share one engine, so a request the outer one answered from
            # the cache is a cache hit here too, and needs no mark.)
            return Answer(request.geofence)  # type: ignore[attr-defined]
        meta[MARK] = self._mark
        # A view marked exempt is not decided (only looked for when the cache had no answer).
        return EXEMPT_VIEW_ANSWER if routed_to_exempt(request) else None

    @staticmethod
    def _parts(request: HttpRequest) -> Parts:
        # What __call__ reads inline, for the other paths.
        return request.META.get("REMOTE_ADDR") or None, request.method or "GET", request.path_info

    @staticmethod
    def _amend(answer: Answer, response: HttpResponseBase) -> None:
        for name, value in answer.headers(response.headers.get):
            response[name] = value

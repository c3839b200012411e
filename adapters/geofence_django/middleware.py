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
from geofence.http import Answer
from geofence.http._answer import EXEMPT_VIEW_ANSWER
from geofence.http._environ import environ_info, environ_key
from geofence.http._exempt import cache_question

from .conf import AsyncHook, SyncHook, account_hooks, get_engine
from .responses import django_response
from .routing import cannot_be_exempt, follow_root, routed_to_exempt

# The key in ``request.META`` of the mark of the engine that answered the request (installed
# twice). Not an attribute of the request: a second attribute name on every request type
# made CPython give up its compact attribute storage for requests (a dict built per request).
MARK = "geofence.mark"
SyncGetResponse = Callable[[HttpRequest], HttpResponseBase]
AsyncGetResponse = Callable[[HttpRequest], Awaitable[HttpResponseBase]]
Parts = tuple[str | None, str, str]  # (peer, method, path): what the engine's cache is keyed by


def request_info(request: HttpRequest) -> RequestInfo:
    """The core's request facts from ``request.META``; never touches the body. (The raw Host
    header: request.get_host() would raise DisallowedHost on a forged one.)"""
    return environ_info(request.META, _parts(request))


def _parts(request: HttpRequest) -> Parts:
    # What __call__ reads inline, for the other paths.
    return request.META.get("REMOTE_ADDR") or None, request.method or "GET", request.path_info


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
        # Bound once: every request asks the cache, a miss quick() (see _miss), then answer().
        self._cached = engine.cached
        self._answer = engine.answer
        # Behind a trusted proxy: the META key of the forwarding header, whose value finds a
        # repeated client in the cache (its peer is the proxy's); None when no header counts.
        self._forwarded = environ_key(engine.client_header)
        self._quick = engine.quick
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)
        # Whether __call__ leaves its hot path (a sync app without an account hook) at once.
        self._other = self._async or self.account_of is not None
        # On that path, whether every request is routed by ROOT_URLCONF: then its first
        # question follows what is known of ROOT_URLCONF's exempt views (ask_first).
        self._follows_root = not self._other and follow_root(self)

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
        answer = self._cached(peer, method, path)
        if answer is None and self._forwarded is not None:
            # A proxied client: found by the proxy's address and the line it forwarded.
            forwarded = meta.get(self._forwarded)
            if forwarded is not None:
                answer = self._cached(peer, method, path, None, forwarded)
        if answer is not None:
            request.geofence = answer.decision  # type: ignore[attr-defined]
            return self._app(request)
        answer = self._miss(request, (peer, method, path))
        return self._applied(request, answer or self._answer(request_info(request)))

    def ask_first(self, exempt_prefixes: tuple[str, ...] | None) -> None:
        """Told by :mod:`.routing` ROOT_URLCONF's exempt views (None: not known yet)."""
        self._cached = cache_question(self.engine, exempt_prefixes)

    def _miss(self, request: HttpRequest, parts: Parts) -> Answer | None:
        """A cache miss without an account: quick(), which decides most new clients from these
        three, and the exempt-view check with the mark (:meth:`_unknown`). quick() goes first
        when nothing here can be exempt, so that the check and the mark are made only for a
        request it leaves to answer(); otherwise an exempt view must not reach it."""
        if cannot_be_exempt(request):
            # With _follows_root, quick() was the first question (routing told ask_first).
            return (None if self._follows_root else self._quick(*parts)) or self._unknown(request)
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
        answer = self._cached(*_parts(request), account, forwarded)
        if answer is None:
            answer = self._unknown(request) or self._answer(request_info(request), None, account)
        return self._applied(request, answer)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        account = None
        if self._aaccount_of is not None:
            account = self._aaccount_of(request)
            if account.__class__ is CoroutineType:  # the hook's, guarded (conf.account_hooks)
                account = await account
        parts = _parts(request)
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
    def _amend(answer: Answer, response: HttpResponseBase) -> None:
        for name, value in answer.headers(response.headers.get):
            response[name] = value

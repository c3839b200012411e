"""Per-route exemption: the marker every adapter puts on a view, and where marked views are.

Each adapter offers the marker in its framework's idiom (Django ``geofence_django.exempt``,
Flask ``@geofence.exempt``, Starlette and FastAPI ``geofence_asgi.exempt``); all of them set
:data:`EXEMPT_ATTR` on the view (:func:`exempt`). A request is exempt when the framework
*routes* it to a marked view, never because its URL looks like the view's: a URL that only
redirects to an exempt view, an unknown URL (404) and a method the view refuses are decided.
Its decision is :data:`geofence.http._answer.EXEMPT_VIEW`; the engine is not asked.

To keep routing off the request path, an adapter routes a request before deciding only when
the engine has no cached answer for it and its path begins with one of the *literal prefixes*
of the marked routes (their pattern up to the first variable part, :func:`literal_prefixes`):
an app without marked views routes nothing, and a repeated allowed request costs what it
cost before.

ASGI apps route with Starlette's route protocol (Starlette, FastAPI): :func:`asgi_routes`,
:func:`asgi_exempt_prefixes` and :func:`asgi_routed_exempt` read it through attributes only,
so that the ASGI middleware imports no framework.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

View = TypeVar("View")

#: The attribute :func:`exempt` sets on a view. Django copies a function's attributes to the
#: view ``as_view()`` makes (and ``method_decorator`` to the method), so the mark follows.
EXEMPT_ATTR = "geofence_exempt"


def exempt(view: View) -> View:
    """Mark ``view`` (a function, a class, any object that takes attributes) as outside the
    policy, and return it unchanged (a coroutine function stays one)."""
    setattr(view, EXEMPT_ATTR, True)
    return view


def is_exempt(view: object) -> bool:
    """Whether ``view`` carries the mark of :func:`exempt`."""
    return getattr(view, EXEMPT_ATTR, False) is True


def cache_question(engine: Any, exempt_prefixes: tuple[str, ...] | None) -> Any:
    """What a gate asks the engine first for each request: ``engine.quick``, which may decide
    a new client outright, when it knows that no view is exempt (no prefixes); else
    ``engine.cached``, which decides nothing (an exempt view must never be decided)."""
    return engine.quick if exempt_prefixes == () else engine.cached


def literal_prefixes(patterns: Iterable[str], opener: str) -> tuple[str, ...]:
    """The distinct texts of ``patterns`` up to their first variable part (which begins with
    ``opener``): a pattern only matches paths that begin with that text."""
    return tuple({pattern.split(opener, 1)[0] for pattern in patterns})


# -- Starlette's route protocol, read through attributes ---------------------------------------
# A router (an app, a Router) has ``routes``; a route has ``matches(scope) -> (match,
# child_scope)`` (``match.name`` "FULL" when it takes the request), a ``path`` pattern with
# ``{name}`` variables (a Host has none), its ``endpoint`` (a Mount: its ``app``), and, for a
# Mount or a Host, the ``routes`` inside it. A router that FastAPI includes in another is read
# through the route contexts it offers (:func:`_expanded`).


def asgi_routes(app: object) -> list[Any]:
    """The routes of the first object with ``routes`` down the chain of ``app`` attributes from
    ``app`` (the ASGI app a middleware wraps: Starlette's or FastAPI's app, or the middleware
    and router it builds); empty if there is none."""
    inner: object = app
    while inner is not None and not hasattr(inner, "routes"):
        inner = getattr(inner, "app", None)
    routes = getattr(inner, "routes", None)
    return routes if isinstance(routes, list) else []


def _target(route: object) -> object:
    return getattr(route, "endpoint", getattr(route, "app", None))


def _expanded(routes: Iterable[Any]) -> Iterable[Any]:
    """``routes``, each router FastAPI includes (``include_router``) replaced by the routes it
    holds (``effective_route_contexts()``: each with its whole ``path``, ``endpoint`` and
    ``matches``), in their order."""
    for route in routes:
        contexts = getattr(route, "effective_route_contexts", None)
        yield from (route,) if contexts is None else contexts()


def _marked_paths(routes: Iterable[Any], above: str) -> Iterable[str]:
    for route in _expanded(routes):
        path = above + str(getattr(route, "path", ""))
        if is_exempt(_target(route)):
            yield path
        yield from _marked_paths(getattr(route, "routes", ()), path)


def asgi_exempt_prefixes(routes: Iterable[Any]) -> tuple[str, ...]:
    """The literal prefixes of the routes whose endpoint is exempt, inside mounts too."""
    return literal_prefixes(_marked_paths(routes, ""), "{")


def asgi_routed_exempt(routes: Iterable[Any], scope: Mapping[str, Any]) -> bool:
    """Whether the router of ``routes`` sends ``scope`` to an exempt endpoint: the first route
    that takes it whole, followed into mounts (as Starlette's router does). A route that only
    matches the path (a method it refuses), a slash redirect, and a route that fails to match
    (the router would fail too) are no exempt endpoint: the request is decided."""
    try:
        return _routed_exempt(routes, scope)
    except Exception:
        return False


def _routed_exempt(routes: Iterable[Any], scope: Mapping[str, Any]) -> bool:
    for route in _expanded(routes):
        match, child = route.matches(scope)
        if match.name == "FULL":
            if is_exempt(_target(route)):
                return True
            inner = getattr(route, "routes", None)
            return inner is not None and _routed_exempt(inner, {**scope, **child})
    return False

"""Which requests Django routes to a view marked with :func:`geofence_django.exempt`.

The middleware decides before Django resolves the view, so it resolves the path itself, but
only for a request the engine has no cached answer for and whose path begins with the literal
prefix of an exempt view's URL pattern (:mod:`geofence.http._exempt`): without exempt views
nothing is resolved. Exempt is what Django resolves to a marked view, never a URL that only
looks like one: a path Django answers with 404, or that ``APPEND_SLASH`` redirects, is decided.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterable, Iterator
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.http import HttpRequest
from django.urls import URLResolver, get_resolver
from django.urls.resolvers import RegexPattern, RoutePattern

from geofence.http._exempt import is_exempt, literal_prefixes


def marked(view: object) -> bool:
    """Whether ``view`` (a URL pattern's callback) is exempt: the function is marked (also
    through ``method_decorator(exempt, name="dispatch")``, which ``as_view()`` copies), or the
    class ``as_view()`` was called on is."""
    return is_exempt(view) or is_exempt(getattr(view, "view_class", None))


# The literal text an anchored regular expression begins with (Django searches one without
# ``^`` anywhere in the path); a quantifier after it makes its last character optional.
_LITERAL = re.compile(r"\^([\w/-]*)(.?)")


def _pattern_text(pattern: object) -> str:
    """A URL pattern as route text: ``<`` where it becomes variable (a regular expression
    after its literal start, a language prefix from its start)."""
    if isinstance(pattern, RoutePattern):
        return str(pattern)
    regex = str(pattern)
    found = _LITERAL.match(regex)
    if not isinstance(pattern, RegexPattern) or found is None or "|" in regex:
        return "<"
    literal, after = found.groups()
    if not after:  # all literal (an include()'s prefix): what follows goes on from here
        return literal
    return (literal[:-1] if after in "?*+{" else literal) + "<"


def _marked_routes(patterns: Iterable[Any], above: str) -> Iterator[str]:
    for entry in patterns:
        text = above + _pattern_text(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from _marked_routes(entry.url_patterns, text)
        elif marked(entry.callback):
            yield text


# request.urlconf (None: ROOT_URLCONF) -> (its resolver, the literal prefixes of its exempt
# views). Read once per URLconf, at its first request here; forgotten when ROOT_URLCONF
# changes (tests), as Django forgets its resolvers. Asking Django for the resolver on every
# request would cost more than the rest of a denial's routing check together.
_known: dict[object, tuple[URLResolver, tuple[str, ...]]] = {}
# True once ROOT_URLCONF has been read here and routes to no exempt view (see cannot_be_exempt).
_root_exempt_free = False


# Middleware whose every request ROOT_URLCONF routes (see follow_root).
_followers: weakref.WeakSet[Any] = weakref.WeakSet()


def _tell(prefixes: tuple[str, ...] | None) -> None:
    for middleware in list(_followers):
        middleware.ask_first(prefixes)


@receiver(setting_changed)
def _forget(*, setting: str, **kwargs: object) -> None:
    global _root_exempt_free  # noqa: PLW0603 - forgotten with the resolvers
    if setting == "ROOT_URLCONF":
        _known.clear()
        _root_exempt_free = False
        _tell(None)


def follow_root(middleware: Any) -> bool:
    """Whether ROOT_URLCONF routes every request ``middleware`` gets (see
    :func:`first_after_django`). Then it is told the literal prefixes of ROOT_URLCONF's exempt
    views, ``middleware.ask_first(prefixes)``, now and whenever they are read, and None when
    ROOT_URLCONF changes."""
    if not first_after_django(type(middleware)):
        return False
    _followers.add(middleware)
    known = _known.get(None)
    middleware.ask_first(None if known is None else known[1])
    return True


def first_after_django(middleware: type) -> bool:
    """Whether ``middleware`` is in ``settings.MIDDLEWARE`` once, after Django's own
    middleware only: none of it sets ``request.urlconf``, so each request it gets is routed
    by ROOT_URLCONF."""
    names = list(getattr(settings, "MIDDLEWARE", None) or ())
    name = f"{middleware.__module__}.{middleware.__qualname__}"
    if names.count(name) != 1:
        return False
    return all(str(before).startswith("django.") for before in names[: names.index(name)])


def cannot_be_exempt(request: HttpRequest) -> bool:
    """Whether ``request`` is routed by ROOT_URLCONF (no ``request.urlconf``, read as Django's
    handler reads it) and that URLconf is known to route to no exempt view: then the engine
    may decide it before :func:`routed_to_exempt` is asked. False until a request has had the
    URLconf read."""
    return _root_exempt_free and getattr(request, "urlconf", None) is None


def routed_to_exempt(request: HttpRequest) -> bool:
    """Whether Django routes ``request`` to an exempt view, by the URLconf it will use
    (``request.urlconf`` when a middleware set one, else ``ROOT_URLCONF``)."""
    global _root_exempt_free  # noqa: PLW0603 - learnt with the root URLconf's prefixes
    urlconf = getattr(request, "urlconf", None)
    known = _known.get(urlconf)
    if known is None:
        resolver = get_resolver(urlconf)
        prefixes = literal_prefixes(_marked_routes(resolver.url_patterns, "/"), "<")
        known = _known[urlconf] = (resolver, prefixes)
        if urlconf is None:
            _root_exempt_free = not prefixes
            _tell(prefixes)
    resolver, prefixes = known
    path = request.path_info
    if not prefixes or not path.startswith(prefixes):
        return False
    try:
        return marked(resolver.resolve(path).func)
    except Exception:  # no such URL (Resolver404): decided like any other
        return False

"""Routes that learn the account themselves decide again with it::

    @app.post("/v1/chat")
    async def chat(account=Depends(geofence_account(current_account))): ...

The middleware has decided by the client's address; the route asks the same engine with the
account. A denial (suspended, ``home_regions``, a 503) is exactly the middleware's denial
response, a warning (account grace) amends the route's response, ``request.state.geofence``
is the account's decision. What the address alone blocks never reaches the route, so an
exempt account or account grace cannot lift it here (the middleware's ``account=`` can).
Importing this module makes every middleware of the process pass responses through the
wrapper that applies a route's answer (a small cost per request).
"""

# No `from __future__ import annotations`: FastAPI reads the dependency's annotations, and
# they name `resolve`, a local.
from collections.abc import Callable
from typing import Annotated, Any

from starlette.requests import HTTPConnection

from geofence import Decision
from geofence.http import _asgi
from geofence.http._asgi import Scope, decide_in_route

__all__ = ["decide_account", "geofence_account"]

_asgi.ROUTES_DECIDE = True


async def decide_account(connection: "HTTPConnection | Scope", account: Any) -> Decision:
    """Decide ``connection`` (a Starlette ``Request`` or ``WebSocket``, or a scope) again for
    ``account`` (an Account, an id string; None: nothing to do) and return the decision; a
    denial raises, for the middleware in front to send it: let it propagate."""
    scope = connection.scope if isinstance(connection, HTTPConnection) else connection
    return await decide_in_route(scope, account)


def geofence_account(resolve: Callable[..., Any]) -> Callable[..., Any]:
    """``Depends(geofence_account(resolve))``: ``resolve``, itself a dependency, returns the
    caller's Account, id string or None (its exceptions, a 401, are the app's); the value
    is what it returned, after :func:`decide_account`."""
    from fastapi import Depends

    async def geofence_account_dependency(
        connection: HTTPConnection, account: Annotated[Any, Depends(resolve)]
    ) -> Any:
        await decide_account(connection, account)
        return account

    return geofence_account_dependency

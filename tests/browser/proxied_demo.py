"""The demo app behind a pretend reverse proxy on loopback (served by the browser tests).

A browser cannot set ``X-Forwarded-For``; a proxy in front of the app does. This one appends
the address in ``$GEOFENCE_TEST_CLIENT`` (default 175.16.199.1, in China for the embedded
data), the way nginx's ``proxy_add_x_forwarded_for`` would, and the example policy trusts
loopback, so geofence decides for that address and a browser sees the block page.
"""

from __future__ import annotations

import os

from geofence.cli.demo import ASGIApp, Receive, Scope, Send
from geofence.cli.demo import create_app as create_demo

CLIENT = os.environ.get("GEOFENCE_TEST_CLIENT", "175.16.199.1")


def create_app() -> ASGIApp:
    demo = create_demo()

    async def proxied(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = [h for h in scope.get("headers", []) if h[0] != b"x-forwarded-for"]
            scope = {**scope, "headers": [*headers, (b"x-forwarded-for", CLIENT.encode())]}
        await demo(scope, receive, send)

    return proxied

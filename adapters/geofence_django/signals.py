"""``geofence_event``: every :class:`geofence.Event` of the engine, as a Django signal.

    from django.dispatch import receiver
    from geofence_django.signals import geofence_event

    @receiver(geofence_event)
    def on_geofence_event(sender, event, **kwargs):
        if event.kind == "account_grace_started":
            notify_account(event.account, until=event.detail["until"])

``sender`` is :class:`geofence.Engine`; ``event`` the :class:`geofence.Event`. Receivers run
synchronously on the request's thread (under ASGI, on the event loop: keep them short and hand
slow work, such as sending an email, to a queue). A receiver that raises is logged on the
``geofence.django`` logger with its traceback; the request and the other receivers go on.
"""

from __future__ import annotations

import logging

from django.dispatch import Signal

from geofence import Engine, Event
from geofence.http._hooks import SignalSender, receiver_failed

logger = logging.getLogger("geofence.django")

#: Sent with ``sender=geofence.Engine`` and ``event=`` a :class:`geofence.Event`.
geofence_event = Signal()


def _send(event: Event) -> None:
    for receiver, result in geofence_event.send_robust(sender=Engine, event=event):
        if isinstance(result, Exception):
            receiver_failed(logger, receiver, event, result)


def _listening() -> bool:
    # The list first: has_listeners() takes the signal's lock, about 8,000 instructions on
    # each blocked or warned request of an app that connects no receiver.
    return bool(geofence_event.receivers) and geofence_event.has_listeners(Engine)


#: The engine's ``on_event``: send the signal, each receiver guarded; while no receiver is
#: connected, blocks and warns build no Event for it.
send_event = SignalSender(_send, _listening)

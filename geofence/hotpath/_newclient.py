"""A new client's decision in one C call: :func:`new_client_step`.

``geofence.hotpath._miss.Miss`` (geofence/hotpath/_miss.c) makes the cache entry of a new client the
way ``Engine._entry`` does, for the common case only (a usable socket peer that is no trusted proxy,
no exemption, no testing overlay, no database error; a verdict on new facts comes from
``Engine._verdict``), and answers None for everything else, before it has written anything
``_entry`` would not write the same way: ``_entry`` then decides as it always does. This module says
which engines get one and hands it what it reads.

Without the compiled module (no compiler, or ``GEOFENCE_PURE_PYTHON`` set) there is no step,
and ``_entry`` alone decides: the same entries, only slower.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from geofence import _overlay
from geofence._model import Decision, DecisionKey, Facts
from geofence.clientip._addresses import PRIVATE_NETWORKS, NetworkSet
from geofence.hotpath import load
from geofence.http._answer import new_answer

_MISS: ModuleType | None = load("_miss")
#: Whether engines get the compiled step.
NATIVE = _MISS is not None

# What the step reads of a verdict, by position (it is a Decision, a named tuple).
_FIELDS = tuple(
    Decision._fields.index(name)
    for name in ("action", "enforced", "reason", "rule", "report_rules")
)

#: ``step(engine, request, epoch, wall) -> entry | None``.
Step = Callable[[Any, Any, Any, float], Any]


def _set(networks: NetworkSet | None) -> tuple[bytes | None, bytes | None, Any] | None:
    return networks.heads_and_holds() if networks else None


def new_client_step(
    *,
    peer_detail: str | None,
    needs_host: bool,
    trusted: NetworkSet,
    exempt_ips: NetworkSet | None,
    exempt_paths: Any,
    cache: dict[Any, Any],
    verdicts: dict[Any, Any],
    key_type: type[DecisionKey],
    observer: object,
    responder: object,
    cache_size: int,
    network_size: int,
    verdict_size: int,
    no_anonymizers: frozenset[str],
) -> Step | None:
    """The compiled step for this engine, or None: not built, or a policy whose clients are
    never their socket peer (``client_ip.hops``) or whose rules read the host (a key the
    step does not make)."""
    if _MISS is None or peer_detail is None or needs_host:
        return None
    step: Step = _MISS.Miss(
        _peer_parser(),
        _set(trusted),
        _set(PRIVATE_NETWORKS),
        _set(exempt_ips),
        None if exempt_paths is None else exempt_paths.match,
        _overlay,
        peer_detail,
        cache,
        verdicts,
        key_type,
        Facts,
        Decision,
        no_anonymizers,
        observer,
        new_answer,
        responder,
        cache_size,
        network_size,
        verdict_size,
        _FIELDS,
    )
    return step


def _peer_parser() -> Callable[[str | None], Any]:
    # Read when the step is made, so that a test that swaps the parser is followed.
    from geofence.clientip import _addresses

    return _addresses.parse_peer

"""The ``geofence`` logger: one escaped line per block/warn/would-block, rate-limited errors.

OWNER: responses helper.
"""

from __future__ import annotations

import logging

from .model import Decision, RequestInfo

logger = logging.getLogger("geofence")


def log_decision(decision: Decision, request: RequestInfo) -> None:
    raise NotImplementedError


def log_db_error(error: BaseException) -> None:
    """ERROR record for a lookup failure, at most one per minute (count of suppressed ones)."""
    raise NotImplementedError

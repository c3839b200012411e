"""The ``geofence`` logger: one escaped line per block/warn/would-block, rate-limited errors.

Paths, methods and anything else a client controls are escaped before they reach a record, so a
request cannot forge log lines (CR/LF), drive the operator's terminal (ESC and other controls)
or reorder what is shown (bidi overrides). Each record also carries the same facts as
``record.geofence`` (a dict) for JSON formatters. The text never repeats the logger's name:
the handler's format (``%(name)s``) shows it.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import weakref
from collections.abc import Callable

from geofence._model import Decision, RequestInfo

logger = logging.getLogger("geofence")

MAX_VALUE = 200  # characters of one client-controlled value kept in a record

# C0 and C1 controls, DEL, the backslash (so escapes stay unambiguous), line and paragraph
# separators, bidi marks, embeddings, overrides and isolates, and lone surrogates (which make a
# UTF-8 log handler raise).
_UNSAFE = (
    "\x00-\x1f\x7f-\x9f\\\\\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff"
)
_UNSAFE_TEXT = re.compile(f"[{_UNSAFE}]")
# For key=value fields without quotes: a space or "=" would let a value fake another key.
_UNSAFE_BARE = re.compile(f"[{_UNSAFE} =]")


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\\":
        return "\\\\"
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(value: str, limit: int = MAX_VALUE, *, pattern: re.Pattern[str] = _UNSAFE_TEXT) -> str:
    """``value`` cut to ``limit`` characters (then ``...``), unsafe characters as ``\\xNN`` /
    ``\\uNNNN`` and backslashes doubled."""
    cut = len(value) > limit
    if cut:
        value = value[:limit]
    if pattern.search(value) is not None:
        value = pattern.sub(_escape_char, value)
    return value + "..." if cut else value


def _quoted(escaped: str) -> str:
    # Backslashes are already doubled, so an escaped quote cannot be confused with one.
    return '"' + escaped.replace('"', '\\"') + '"'


def _bare(value: str | None) -> str:
    return escape(value, pattern=_UNSAFE_BARE) if value else "-"


def log_decision(decision: Decision, request: RequestInfo) -> None:
    """One INFO record: ``block|warn|would block|would warn client_ip=... path=...``."""
    if not logger.isEnabledFor(logging.INFO):
        return
    action = decision.action
    verb = action if decision.enforced or action == "allow" else f"would {action}"
    path = escape(request.path)
    rule = escape(decision.rule) if decision.rule is not None else None
    report_rules = [escape(r) for r in decision.report_rules]
    account = escape(decision.account) if decision.account is not None else None
    structured = {
        "action": action,
        "enforced": decision.enforced,
        "reason": decision.reason,
        "rule": rule,
        "status": decision.status if action == "block" else None,
        "client_ip": decision.client_ip,
        "country": escape(decision.country) if decision.country else None,
        "subdivisions": [escape(s) for s in decision.subdivisions],
        "method": escape(request.method),
        "path": path,
        "report_rules": report_rules,
        "account": account,
    }
    logger.info(
        "%s client_ip=%s country=%s subdivisions=%s rule=%s reason=%s method=%s path=%s%s%s",
        verb,
        _bare(decision.client_ip),
        _bare(decision.country),
        _bare(",".join(decision.subdivisions)),
        _quoted(rule) if rule is not None else "-",
        _bare(decision.reason),
        _bare(request.method),
        _quoted(path),
        # Report-mode rules that matched on the way: dry runs, never enforced.
        " report_rules=" + ",".join(_quoted(r) for r in report_rules) if report_rules else "",
        # The app's own account id (never an address): who to look for in the support desk.
        " account=" + _quoted(account) if account is not None else "",
        extra={"geofence": structured},
    )


class RateLimit:
    """Lets one event through per ``interval`` seconds and counts those it holds back.

    ``clock`` is a monotonic clock in seconds; tests replace it.
    """

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._lock = threading.Lock()
        self._next: float | None = None
        self._suppressed = 0

    def admit(self) -> int | None:
        """None to stay silent; otherwise how many events were held back since the last one."""
        now = self.clock()
        with self._lock:
            if self._next is not None and now < self._next:
                self._suppressed += 1
                return None
            self._next = now + self.interval
            held_back, self._suppressed = self._suppressed, 0
            return held_back

    def reset(self) -> None:
        with self._lock:
            self._next = None
            self._suppressed = 0


class DatabaseErrorLimits:
    """One :class:`RateLimit` per database: a failing database fails every request, so one
    record a minute tells the operator without flooding the log (or the disk) at request rate,
    and a failure of one database never silences another's (another engine's included).

    Databases are held weakly: an engine that goes away takes its limits with it.
    """

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self._limits: weakref.WeakKeyDictionary[object, RateLimit] = weakref.WeakKeyDictionary()
        # For a database object that cannot be referenced weakly (a test double with slots).
        self._shared: RateLimit | None = None

    def admit(self, db: object, clock: Callable[[], float] = time.monotonic) -> int | None:
        """Like :meth:`RateLimit.admit`, for ``db``; ``clock`` is read from its first failure."""
        with self._lock:
            try:
                limit = self._limits.get(db)
                if limit is None:
                    limit = self._limits[db] = RateLimit(self.interval, clock)
            except TypeError:
                if self._shared is None:
                    self._shared = RateLimit(self.interval, clock)
                limit = self._shared
        return limit.admit()

    def reset(self) -> None:
        """Forget every database's limit (tests)."""
        with self._lock:
            self._limits.clear()
            self._shared = None


DB_ERRORS = DatabaseErrorLimits(60.0)


def log_db_error(
    error: BaseException, db: object, clock: Callable[[], float] = time.monotonic
) -> None:
    """ERROR record for a lookup failure in ``db``: at most one per minute for each database,
    with the count of those held back since. ``clock`` is a monotonic clock in seconds."""
    if not logger.isEnabledFor(logging.ERROR):
        return
    suppressed = DB_ERRORS.admit(db, clock)
    if suppressed is None:
        return
    text = escape(_describe(error), 500)
    description = getattr(db, "description", None)
    logger.error(
        "database lookup failed: %s%s",
        text,
        f" ({suppressed} more suppressed since the last report)" if suppressed else "",
        extra={
            "geofence": {
                "db": escape(description, 500) if isinstance(description, str) else None,
                "error": text,
                "suppressed": suppressed,
            }
        },
    )


def _describe(error: BaseException) -> str:
    text = _safe_str(error)
    cause = error.__cause__
    if cause is not None and cause is not error:
        text = f"{text} (caused by {_safe_str(cause)})"
    return text


def _safe_str(error: BaseException) -> str:
    try:
        detail = str(error)
    except Exception:  # a broken __str__ must not turn a logged failure into a crash
        detail = ""
    name = type(error).__name__
    return f"{name}: {detail}" if detail else name


_bad_accounts: set[str] = set()


def log_bad_account(account: object) -> None:
    """ERROR record, once per type, for an account hook that returned neither an Account,
    an id string nor None: the request is decided without an account."""
    kind = type(account).__name__
    if kind in _bad_accounts or len(_bad_accounts) > 100:
        return
    _bad_accounts.add(kind)
    logger.error(
        "the account hook returned a %s, not a geofence.Account, an id string or None; "
        "deciding without an account",
        escape(kind),
    )

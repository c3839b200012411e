"""The ``geofence`` logger: one escaped line per block/warn/would-block (limited), rate-limited
errors.

Paths, methods and anything else a client controls are escaped before they reach a record, so a
request cannot forge log lines (CR/LF), drive the operator's terminal (ESC and other controls)
or reorder what is shown (bidi overrides). Each record also carries the same facts as
``record.geofence`` (a dict) for JSON formatters. The text never repeats the logger's name:
the handler's format (``%(name)s``) shows it.
"""

from __future__ import annotations

import re
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from geofence._model import Decision, RequestInfo

if TYPE_CHECKING:
    import logging

INFO, WARNING, ERROR = 20, 30, 40  # logging's levels, without importing it


class LazyLogger:
    """The ``geofence`` logger, with :mod:`logging` imported only once something is logged.

    ``logging`` (with the ``traceback``, ``tokenize`` and ``string`` it imports) is 0.7 MB of a
    bare process (issue 15). A process that has not imported it has configured no handler, so
    only its last-resort handler could show a record, and it shows WARNING and above: INFO
    records are dropped without the import (a block's line, a reload's note), and anything
    WARNING or above imports ``logging`` and is logged as usual. Once ``logging`` is imported,
    by the app or by us, every call goes to the real logger.
    """

    __slots__ = ("_name", "_real")

    def __init__(self, name: str) -> None:
        self._name = name
        self._real: logging.Logger | None = None

    def _logger(self) -> logging.Logger:
        real = self._real
        if real is None:
            import logging

            real = self._real = logging.getLogger(self._name)
        return real

    def isEnabledFor(self, level: int) -> bool:
        # Asked for every block and warning: one frame more than the real logger's own check.
        real = self._real
        if real is None:
            if "logging" not in sys.modules:
                return level >= WARNING
            real = self._logger()
        return real.isEnabledFor(level)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._logger(), name)


logger = cast("logging.Logger", LazyLogger("geofence"))

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


def log_decision(
    decision: Decision,
    request: RequestInfo,
    limits: DecisionLimits | None = None,
) -> None:
    """One INFO record: ``block|warn|would block|would warn ref=... client_ip=... path=...``.

    With ``limits``, a line is written only when they admit it (see :class:`DecisionLimits`):
    its ``repeated=N`` says how many decisions with the same ref were held back since the
    previous line for that ref, and a summary record first reports lines held back by the
    global cap."""
    if not logger.isEnabledFor(INFO):
        return
    repeated = 0
    action = decision.action
    verb = action if decision.enforced or action == "allow" else f"would {action}"
    if limits is not None:
        ref = decision.ref
        # The verb too: when a rule moves from warn to enforce, its first block is news.
        key = f"{verb} {ref}" if ref is not None else f"{verb} {decision.client_ip} {decision.rule}"
        admitted, summary = limits.admit(key)
        if summary is not None:
            log_suppressed(*summary)
        if admitted is None:
            return
        repeated = admitted
    path = escape(request.path)
    rule = escape(decision.rule) if decision.rule is not None else None
    report_rules = [escape(r) for r in decision.report_rules]
    account = escape(decision.account) if decision.account is not None else None
    structured = {
        "ref": decision.ref,
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
        "repeated": repeated,
    }
    logger.info(
        "%s ref=%s client_ip=%s country=%s subdivisions=%s rule=%s reason=%s method=%s "
        "path=%s%s%s%s",
        verb,
        _bare(decision.ref),
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
        # Decisions with this ref that were not written since its previous line.
        f" repeated={repeated}" if repeated else "",
        extra={"geofence": structured},
    )


def log_suppressed(capped: int, forgotten: int) -> None:
    """The summary of block/warn lines the limits held back: ``capped`` over the global cap,
    ``forgotten`` repeats of references dropped from the bounded table before their next
    line could carry the count."""
    total = capped + forgotten
    logger.info(
        "%d block/warn lines suppressed (%d over the cap of lines per second, %d repeats of "
        "references no longer tracked)",
        total,
        capped,
        forgotten,
        extra={"geofence": {"suppressed": total, "capped": capped, "forgotten": forgotten}},
    )


class DecisionLimits:
    """Which block/warn lines are written, so that a flood of requests cannot flood the log.

    - Each reference (``decision.ref``: one client, rule, reason and account, whatever the
      path) is written at most once per ``interval`` seconds for each verb (block, warn,
      would block, would warn); the decisions held back meanwhile are counted and
      the count is carried on that reference's next line (``repeated=N``).
    - On top of that, at most ``rate`` lines per second are written (a token bucket holding
      ``rate`` tokens, so a burst of ``rate`` new clients is written at once); a line over the
      cap is counted, and a summary record says how many, at most once per ``summary_every``
      seconds, written with the next decision after that.
    - At most ``max_refs`` references are remembered (the least recently written is forgotten
      first; the repeats it still held go to the summary), so memory stays bounded whatever
      the number of clients. A forgotten reference is written again the next time it comes.

    Every decision is thus a line, a repeat counted on a later line of its reference, or a
    count in a summary: the numbers add up. ``clock`` is a monotonic clock in seconds (tests
    inject one). Thread-safe: the bookkeeping is under one lock, the writing outside it.
    """

    def __init__(
        self,
        *,
        interval: float = 60.0,
        rate: float = 10.0,
        summary_every: float = 60.0,
        max_refs: int = 4096,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self.rate = rate
        self.summary_every = summary_every
        self.max_refs = max_refs
        self.clock = clock
        self._lock = threading.Lock()
        # ref -> [when its next line may be written, repeats held back since its last line];
        # in the order lines were written, oldest first.
        self._refs: dict[str, list[float]] = {}
        self._tokens = rate
        self._filled_at: float | None = None
        self._capped = 0
        self._forgotten = 0
        self._summary_at: float | None = None

    def admit(self, key: str) -> tuple[int | None, tuple[int, int] | None]:
        """(repeats, summary). ``repeats``: None to stay silent, else how many decisions with
        ``key`` were held back since its last line. ``summary``: (capped, forgotten) counts to
        report first (:func:`log_suppressed`), or None."""
        with self._lock:
            now = self.clock()
            summary = self._summary(now)
            entry = self._refs.get(key)
            if entry is not None and now < entry[0]:
                entry[1] += 1
                return None, summary
            if not self._take_token(now):
                self._capped += 1
                if self._summary_at is None:
                    self._summary_at = now + self.summary_every
                return None, summary
            if entry is None:
                if len(self._refs) >= self.max_refs:
                    oldest = next(iter(self._refs))
                    self._forgotten += int(self._refs.pop(oldest)[1])
                    if self._summary_at is None:
                        self._summary_at = now + self.summary_every
                self._refs[key] = [now + self.interval, 0]
                return 0, summary
            repeats = int(entry[1])
            # Written now: the most recent, so the last to be forgotten.
            del self._refs[key]
            self._refs[key] = [now + self.interval, 0]
            return repeats, summary

    def _summary(self, now: float) -> tuple[int, int] | None:
        if self._summary_at is None or now < self._summary_at:
            return None
        summary = (self._capped, self._forgotten)
        self._capped = self._forgotten = 0
        self._summary_at = None
        return summary if summary != (0, 0) else None

    def _take_token(self, now: float) -> bool:
        if self._filled_at is not None:
            self._tokens = min(self.rate, self._tokens + (now - self._filled_at) * self.rate)
        self._filled_at = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True

    def pending(self) -> tuple[int, int, int]:
        """(repeats held by remembered references, lines over the cap, repeats of forgotten
        references) not yet reported: for tests and for a last summary."""
        with self._lock:
            held = sum(int(entry[1]) for entry in self._refs.values())
            return held, self._capped, self._forgotten


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
    if not logger.isEnabledFor(ERROR):
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

"""Replay: who would a policy block? Access logs in, the engine's decisions out, as a report.

    >>> from geofence.replay import replay
    >>> report = replay(["access.log.gz"], policy="new.toml", baseline="old.toml")
    >>> report.newly_blocked_share, report.to_dict()["policy"]["countries"]

**Formats** (``format=``; "auto" detects from a file's first 20 non-blank lines: the format
that reads most of them wins; a file none reads is a :class:`ReplayError` naming every format
tried). Each reader's module documents the vendor layout it follows:
``combined`` (nginx/Apache combined and common, and nginx's ``main``: combined plus
``"$http_x_forwarded_for"``), ``alb`` (AWS ALB), ``cloudfront`` (CloudFront standard logs, by
their ``#Fields`` line), ``cloudflare`` (Logpush ``http_requests`` JSON), ``jsonl`` and ``csv``
(fields named as nginx variables). Plain or gzip, told by the magic bytes; CR LF tolerated;
``-`` is standard input; streamed, one line at a time.

**Records** (:class:`Record`): time (aware UTC; when the request came in where the log
says so: ALB ``request_creation_time``, nginx ``msec`` less ``request_time``), peer, the
X-Forwarded-For value the log recorded (None when the format has none), method, path, host
("" when the log has none), user. The path is the request target without query string,
percent-decoded as UTF-8 (as ASGI servers and WSGI frameworks route it; ``%2F`` becomes
``/``, invalid UTF-8 is replaced).

**Client IP.** A record is decided as the app behind the log's writer would decide it: the
log's client address is the socket peer, and its forwarding column (nginx ``main``,
CloudFront ``x-forwarded-for``, JSON/CSV ``http_x_forwarded_for``, Cloudflare
``RequestHeaders``) is given as the header the policy reads (``client_ip.header``; rewritten
as ``for=`` elements for ``forwarded``). So a peer in ``trusted_proxies`` has its chain
walked as in the app. Under ``hops`` the engine never looks at the peer: replay such a policy
only on logs whose forwarding column is what the app receives.

**Decisions** are those of ``Engine.decide(request, now=line's time or at)``. :func:`replay`
counts outcomes, so it memoises them per (client facts, method, path, host if a rule reads
it, phase segment), each client's facts (address resolved, looked up) found once per (peer,
forwarding value); :func:`decisions` returns each client's own decision, memoised per (peer,
forwarding value, method, path, host, minute, phase segment). See
:mod:`geofence.replay._loop` for why both are exact at a rule's date. No decision is logged
or sent as an event.

**Large logs**: ``replay(..., jobs=N)`` (CLI ``--jobs N``) replays over N processes: plain logs
split into line-aligned byte ranges, gzip, CSV and CloudFront logs one per process; the report
is that of one process (only ``decisions``, the engine calls, differs). :func:`decide_batches`
is the decision step on Arrow record batches (columns named as nginx variables; extra
``replay``), for Spark ``mapInArrow``, Ray Data or Dask. See :mod:`geofence.replay._jobs` and
:mod:`geofence.replay._arrow`.

**Report** (:class:`Report`): totals by kind (``allow``, ``warn``, ``block``, and
``would_warn`` / ``would_block`` in report mode), by rule, country, reason and path (paths of
lines not allowed; the first 50,000 distinct exactly, later ones as "(other paths)"); with a
baseline, the transitions (kind before -> after) and the lines newly blocked (enforced block
now, not before; without a baseline every enforced block); unparsable lines counted, the first
five kept with file and line number. ``to_dict()`` is what ``--json`` writes.

**Accounts** (``replay(..., accounts=True, account_field=None)``; CLI ``--accounts OUT.csv``,
``--account-field NAME``): each record with an account (the named field of JSON lines, CSV
and Cloudflare lines, else the format's user field, ``$remote_user``) is decided by
``engine.decide(request, now=line's time or at, account=Account(id))`` on an engine of its
own whose store is always ``memory://`` (a policy given as a path or mapping has its
``[accounts] store`` replaced before it is loaded: a replay never contacts the production
store), bypassing the memo. ``report.accounts.rows()`` are the accounts warned, in account
grace, blocked or suspended, with their own enforce date; ``to_dict()["accounts"]`` counts
them by action. See :mod:`geofence.replay._accounts`.

**Progress** (``progress=Progress(stream)``; the CLI on a terminal only): lines and bytes
read (the compressed position for gzip), the rate; see :mod:`geofence.replay._progress`.

**HTML** (:func:`render_html`; CLI ``--html OUT``): one self-contained page (inline CSS,
charts as inline SVG, no script, a CSP by hash) rendered from ``Report.to_dict()``, the same
figures as ``--json``, each marked ``data-figure`` for tools. See :mod:`geofence.replay._html`.
"""

from __future__ import annotations

from geofence.replay._arrow import decide_batches
from geofence.replay._formats import FORMATS, detect
from geofence.replay._html import render_html
from geofence.replay._progress import Progress
from geofence.replay._record import Record, Unparsable
from geofence.replay._report import KINDS, FileSummary, Report, Totals
from geofence.replay._run import LogFile, decisions, read_log, replay
from geofence.replay._source import ReplayError

__all__ = [
    "FORMATS",
    "KINDS",
    "FileSummary",
    "LogFile",
    "Progress",
    "Record",
    "ReplayError",
    "Report",
    "Totals",
    "Unparsable",
    "decide_batches",
    "decisions",
    "detect",
    "read_log",
    "render_html",
    "replay",
]

"""Find the real client address from the socket peer and (trusted) forwarding headers.

The rules (DESIGN.md, "Client IP"):

* By default the client is the socket peer and every forwarding header is ignored: anyone can
  send ``X-Forwarded-For``.
* With ``trusted_proxies`` the header is read only when the peer is in those networks. Its
  chain is walked from the right past trusted entries; the first untrusted entry is the client
  and nothing left of it is read (that part is whatever the client chose to send).
* With ``hops = N`` the header is always read and the N-th entry from the right is the client.
  The peer is not consulted, so this also works behind a proxy on a Unix socket.
* Anything malformed or ambiguous where an address is needed resolves to no client at all
  (``unresolved_client``), never to the proxy's own address, which would put every client
  behind that proxy into one country.

Which header is read, whether it is a list or one address, and how its entries are spelled come
from the forwarding-header table (:mod:`geofence.clientip._headers`): a header is one row there.

Work is bounded whatever the headers hold: lines are cut from the right (``rsplit`` with a
limit, a fixed window per line) and at most :data:`MAX_HOPS` entries are walked, so a 1 MB
header costs about what a short one does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, NamedTuple

from geofence._cache import BoundedCache
from geofence.clientip._addresses import (
    IP,
    NetworkSet,
    parse_ip_uncached,
    parse_peer,
    unusable_reason,
)
from geofence.clientip._headers import HEADER_NAMES, Syntax, forwarding_header
from geofence.hotpath import new_tuple

if TYPE_CHECKING:  # not at run time: geofence.config imports the header table from here
    from geofence.config._policy import ClientIPPolicy

MAX_HOPS = 32  # non-empty entries walked from the right before giving up
_MAX_ELEMENTS = 64  # list elements split off the right, empty ones included
_WINDOW = 4096  # characters of each header line looked at, from the right
_MAX_ENTRY = 128  # longer list elements are never addresses (and are not cached)
_CACHE_SIZE = 8192  # per resolver, for peers, list elements and whole short lines
_MAX_LINE = 256  # longer X-Forwarded-For lines are neither cached nor walked inline
MAX_LINE = _MAX_LINE  # for the engine, which caches decisions per line too


class ClientIP(NamedTuple):
    """How the client was found. A named tuple: one is built for most requests."""

    ip: IP | None  # None: unresolved_client
    detail: str  # human words: how it was found, or why it could not be


_new = new_tuple  # skips NamedTuple's Python-level __new__ on the hot path
# IPv6 outside ::/96 (unspecified, IPv4-compatible) and ff00::/8 (multicast): value >> 32 and
# value >> 120 != 0xFF, as comparisons, which allocate nothing for a 128-bit int.
_V6_USUAL_FROM = 1 << 32
_V6_USUAL_TO = 0xFF << 120


def _unresolved(reason: str) -> ClientIP:
    return ClientIP(None, "unresolved: " + reason)


class _Mark:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


# What one list element is, as cached per resolver: an IP (a usable, untrusted address),
# _TRUSTED, _EMPTY (skipped, RFC 9110 section 5.6.1), or a str (the unresolved detail).
_TRUSTED = _Mark("trusted")
_EMPTY = _Mark("empty")
Kind = IP | _Mark | str

_UNUSABLE = {
    "multicast": "a multicast address",
    "unspecified": "the unspecified address",
    "broadcast": "the broadcast address",
    "IPv4-compatible": "an IPv4-compatible IPv6 address (deprecated by RFC 4291)",
}

_PORT = re.compile(r"[0-9]{1,5}")
_OBFPORT = re.compile(r"_[A-Za-z0-9._-]+")  # RFC 7239 section 6.3
_TCHAR = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]"
# RFC 9110 quoted-string: qdtext or quoted-pair (obs-text included, control characters not).
_QUOTED = r'"(?:[\t !#-\[\]-~\x80-\xff]|\\[\t -~\x80-\xff])*"'
# One optional forwarded-pair with optional whitespace around it; always matches.
_PAIR = re.compile(rf"[ \t]*(?:({_TCHAR}+)=({_TCHAR}+|{_QUOTED})[ \t]*)?")
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)


def _show(text: str) -> str:
    """Hostile text for a message: escaped (no control or non-ASCII characters) and short."""
    shown = ascii(text[:48])
    if len(shown) > 60 or len(text) > 48:
        return shown[:60] + "..."
    return shown


def _node(token: str, obfuscated_port: bool) -> IP | str:
    """One address as a header spells it: port, brackets (and quotes, in lists) allowed."""
    if token[:1] == "[":
        close = token.find("]")
        if close < 0:
            return f"{_show(token)} is not an IP address"
        port = token[close + 1 :]
        address = token[1:close]
        if ":" not in address:  # brackets are for IPv6 only
            return f"{_show(token)} is not an IP address"
    elif token.count(":") == 1:  # IPv4 with a port; IPv6 has at least two colons
        address, _, port = token.partition(":")
        port = ":" + port
    else:
        address, port = token, ""
    if port and not (
        port[0] == ":"
        and (
            (_PORT.fullmatch(port, 1) is not None and int(port[1:]) <= 65535)
            or (obfuscated_port and _OBFPORT.fullmatch(port, 1) is not None)
        )
    ):
        return f"{_show(token)} is not an IP address (bad port)"
    if "%" in address:
        return f"{_show(token)} has a zone id, which a header may not carry"
    ip = parse_ip_uncached(address)  # the resolver remembers the whole element instead
    if ip is None:
        return f"{_show(token)} is not an IP address"
    return ip


def _list_entry(element: str) -> IP | _Mark | str:
    """One X-Forwarded-For element (or a single-valued header's value)."""
    token = element.strip(" \t")
    if not token:
        return _EMPTY
    if len(token) > 64:
        return f"{_show(token)} is not an IP address"
    if token[0] == '"':
        if len(token) < 2 or token[-1] != '"':
            return f"{_show(token)} is not an IP address"
        token = token[1:-1]
    return _node(token, obfuscated_port=False)


def _forwarded_entry(element: str) -> IP | _Mark | str:
    """One RFC 7239 forwarded-element; only its ``for=`` parameter matters."""
    if not element.strip(" \t"):
        return _EMPTY
    params: dict[str, str] = {}
    pos, end = 0, len(element)
    while True:
        match = _PAIR.match(element, pos)
        if match is None:  # cannot happen: the pattern matches the empty string
            return f"malformed forwarded element {_show(element)}"
        if match[1] is not None:
            name = match[1].lower()
            if name in params:  # RFC 7239 section 4: each parameter at most once per element
                return f"malformed forwarded element {_show(element)}"
            params[name] = match[2]
        pos = match.end()
        if pos == end:
            break
        if element[pos] != ";":
            return f"malformed forwarded element {_show(element)}"
        pos += 1
    value = params.get("for")
    if value is None:
        return f"forwarded element {_show(element)} has no for="
    if value[0] == '"':
        value = _QUOTED_PAIR.sub(r"\1", value[1:-1])
    if value.lower() == "unknown":
        return "a proxy reported the client as for=unknown"
    if value[:1] == "_":
        return f"a proxy hid the client behind the identifier {_show(value)}"
    if not value:
        return "forwarded element with an empty for="
    return _node(value, obfuscated_port=True)


class _Stop:
    """Where a walk must stop: what lies further left was not (or cannot be) split."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


_TOO_LONG = _Stop("is too long to walk")
_UNBALANCED = _Stop("has unbalanced quotes")


def _split_list(lines: list[str]) -> Iterator[str | _Stop]:
    """Elements of the joined lines, right to left, at most _MAX_ELEMENTS of them."""
    budget = _MAX_ELEMENTS
    for line in reversed(lines):
        if budget <= 0:
            yield _TOO_LONG
            return
        cut = len(line) > _WINDOW
        parts = (line[-_WINDOW:] if cut else line).rsplit(",", budget)
        stop = cut or (len(parts) > budget and "," in parts[0])
        if stop:
            del parts[0]  # a partial element, or the unsplit rest
        budget -= len(parts)
        yield from reversed(parts)
        if stop:
            yield _TOO_LONG
            return


def _opening_quote(line: str, low: int, close: int) -> int:
    """Index of the quote opening the quoted-string that ends at ``close``, or -1."""
    at = close
    for _ in range(16):  # escaped quotes skipped; real addresses have none
        at = line.rfind('"', low, at)
        if at < 0:
            return -1
        slashes = 0
        while slashes < 16 and line[at - 1 - slashes : at - slashes] == "\\":
            slashes += 1
        if slashes == 16:
            return -1
        if slashes % 2 == 0:
            return at
    return -1


def _split_forwarded(lines: list[str]) -> Iterator[str | _Stop]:
    """Like :func:`_split_list`, but commas inside quoted-strings do not split.

    Lazy: quotes that do not pair up only matter when the walk has to go past them.
    """
    budget = _MAX_ELEMENTS
    for line in reversed(lines):
        if budget <= 0:
            yield _TOO_LONG
            return
        if len(line) <= _WINDOW and '"' not in line:
            parts = line.rsplit(",", budget)
            stop = len(parts) > budget and "," in parts[0]
            if stop:
                del parts[0]
            budget -= len(parts)
            yield from reversed(parts)
            if stop:
                yield _TOO_LONG
                return
            continue
        cut = len(line) > _WINDOW
        low = len(line) - _WINDOW if cut else 0
        end = pos = len(line)
        while True:
            if budget <= 0:
                yield _TOO_LONG
                return
            comma = line.rfind(",", low, pos)
            quote = line.rfind('"', max(comma, low), pos)
            if quote > comma:
                opening = _opening_quote(line, low, quote)
                if opening < 0:
                    # With a cut line the quoted-string may have begun before the window.
                    yield _TOO_LONG if cut else _UNBALANCED
                    return
                pos = opening
                continue
            budget -= 1
            if comma < 0:
                if cut:
                    yield _TOO_LONG
                    return
                yield line[:end]
                break
            yield line[comma + 1 : end]
            end = pos = comma


Split = Callable[[list[str]], Iterator[str | _Stop]]
Entry = Callable[[str], Kind]

# How each syntax of the header table is read: how a list header's lines are split into
# entries (right to left), and how one entry (or a single-valued header's value) is read.
_SYNTAXES: dict[Syntax, tuple[Split, Entry]] = {
    "address": (_split_list, _list_entry),
    "forwarded": (_split_forwarded, _forwarded_entry),
}


class ClientResolver:
    """Resolves one request's client address; built once per engine, shared by threads."""

    def __init__(self, policy: ClientIPPolicy) -> None:
        header = policy.header.lower()
        try:
            row = forwarding_header(header)
        except KeyError:  # the loader refuses it first; this guards a hand-built ClientIPPolicy
            listed = ", ".join(HEADER_NAMES)
            raise ValueError(f"client_ip.header {policy.header!r} is not one of {listed}") from None
        self._header = header
        self._hops = policy.hops
        self._trusted = NetworkSet(policy.trusted_proxies)
        self._read_header = bool(self._trusted) or self._hops is not None
        self._split, self._entry = _SYNTAXES[row.syntax]
        self._single_valued = not row.is_list
        # resolve()'s shortcut splits a line on every comma, which only plain address lists allow.
        self._plain_list = row.is_list and row.syntax == "address"
        # Details are built here so that a request only picks one.
        hops = self._hops
        if row.is_list:
            unit = "element" if row.syntax == "forwarded" else "entry"
            what = f"{header} for=" if row.syntax == "forwarded" else header
            self._past = tuple(
                f"{what}, first untrusted {unit} from the right, "
                f"past {n} trusted prox{'y' if n == 1 else 'ies'}"
                for n in range(1, MAX_HOPS + 2)
            )
            self._hops_detail = f"{header} {unit} {hops} from the right (hops = {hops})"
        else:
            self._past = (f"{header}, set by a trusted proxy",) * (MAX_HOPS + 1)
            self._hops_detail = f"{header}, set by the proxy (hops = {hops})"
        if self._hops is None and not self._trusted:
            self._peer_detail = "socket peer (no trusted proxies configured)"
        else:
            self._peer_detail = "socket peer (not a trusted proxy)"
        # Per-resolver caches (trust differs between resolvers). Keys are client-controlled:
        # entries and lines are only remembered when short (_MAX_ENTRY, _MAX_LINE).
        self._peers: BoundedCache[str | None, ClientIP | IP] = BoundedCache(_CACHE_SIZE)
        # Read by the engine: a ClientIP here means the peer is the client, headers unread.
        self.peers = self._peers
        self._entries: BoundedCache[str, Kind] = BoundedCache(_CACHE_SIZE)
        self._lines: BoundedCache[str, ClientIP] = BoundedCache(_CACHE_SIZE)
        # Per-request reads call these bound methods, held in a local: CPython 3.11+ runs
        # ``cache.get(key)`` at full speed only on an exact dict (on a subclass the call is not
        # specialized: ~170 more instructions a call), a bound ``get`` at the speed of a dict's.
        self._known_peer = self._peers.get
        self._known_line = self._lines.get
        self._known_entry = self._entries.get

    # -- per request ---------------------------------------------------------------------------

    def resolve(self, peer: str | None, headers: Sequence[tuple[str, str]]) -> ClientIP:
        """Never raises, whatever the input."""
        try:
            proxy: IP | None = None
            if self._hops is None:
                known_peer = self._known_peer
                known = known_peer(peer)
                if known is None:
                    known = self._peer(peer)
                if isinstance(known, ClientIP):
                    return known
                proxy = known
            header = self._header
            size = len(header)
            lines = []  # a loop, not a comprehension: no extra frame on Python < 3.12
            for name, value in headers:
                if len(name) == size and name.lower() == header:
                    lines.append(value)
            if self._plain_list and len(lines) == 1:
                # The common case: one short X-Forwarded-For line, often seen before (the same
                # client through the same proxies). Anything unusual takes the full walk.
                line = lines[0]
                if line.__class__ is str and len(line) <= _MAX_LINE:
                    known_line = self._known_line
                    seen = known_line(line)
                    if seen is not None:
                        return seen
                    found = self._walk_line(line)
                    if found is not None:
                        return self._lines.put(line, found)
            return self._from_header(proxy, lines)
        except Exception:  # a bug must neither crash the request nor let it through
            return _unresolved("internal error while reading the client address")

    @property
    def header(self) -> str:
        """The forwarding header read (lower case), e.g. ``x-forwarded-for``."""
        return self._header

    def proxied_line(self, peer: str | None, headers: Sequence[tuple[str, str]]) -> str | None:
        """:meth:`single_line` when ``peer`` is a trusted proxy already seen (or under
        ``hops``, where the peer is not consulted); None for any other peer, whose headers
        are not scanned for it (a new peer is resolved first)."""
        if self._hops is None and self._known_peer(peer).__class__ is not IP:
            return None
        return self.single_line(headers)

    def single_line(self, headers: Sequence[tuple[str, str]]) -> str | None:
        """The value of the forwarding header when the request has exactly one line of it,
        short enough to be a cache key; else None. With the peer, such a line decides who
        the client is (:meth:`resolve` reads nothing else). Never raises."""
        header = self._header
        size = len(header)
        found: object = None
        try:
            for name, value in headers:
                if len(name) == size and name.lower() == header:
                    if found is not None:
                        return None
                    found = value
        except Exception:  # malformed headers: resolve() tells what is wrong with them
            return None
        if isinstance(found, str) and len(found) <= _MAX_LINE:
            return found
        return None

    @property
    def peer_detail(self) -> str | None:
        """The ``detail`` of every :class:`ClientIP` that is the socket peer itself (the same
        string object, so ``is`` tells), or None under ``hops`` (the peer never is)."""
        return self._peer_detail if self._hops is None else None

    @property
    def trusted(self) -> NetworkSet:
        """The trusted proxies (``client_ip.trusted_proxies``)."""
        return self._trusted

    @property
    def direct(self) -> bool:
        """Whether the client is always the socket peer (no trusted proxies, no ``hops``):
        then :meth:`peer_client` answers without headers."""
        return self._hops is None and not self._trusted

    def peer_client(self, peer: str | None) -> ClientIP:
        """:meth:`resolve` for a :attr:`direct` resolver, without its per-peer cache: for a
        caller that caches its own answers per peer (the engine's decisions). Never raises."""
        try:
            ip = parse_peer(peer)
            if ip is None:
                return self._peer_unresolved(peer)
            value = ip.value
            # unusable_reason() inline for what nearly every address is: IPv4 below 224/4 but
            # 0.0.0.0, IPv6 outside ff00::/8 and ::/96 (unspecified, IPv4-compatible).
            if (
                (0 < value < 0xE0000000)
                if ip.version == 4
                else (_V6_USUAL_FROM <= value < _V6_USUAL_TO)
            ):
                return _new(ClientIP, (ip, self._peer_detail))
            return self._client(ip, self._peer_detail, "socket peer ")
        except Exception:  # a bug must neither crash the request nor let it through
            return _unresolved("internal error while reading the client address")

    def _peer_unresolved(self, peer: object) -> ClientIP:
        if peer is None:
            hint = " (a Unix socket? use client_ip.hops)" if self._read_header else ""
            return _unresolved(f"no socket peer address{hint}")
        shown = _show(peer) if isinstance(peer, str) else type(peer).__name__
        return _unresolved(f"socket peer {shown} is not an IP address")

    def _walk_line(self, line: str) -> ClientIP | None:
        """Resolve one short list line whose entries are all addresses; else None."""
        get = self._known_entry
        hops = self._hops
        counted = 0
        for element in reversed(line.rsplit(",")):
            kind = get(element) or self._kind(element)
            if kind is _TRUSTED:
                counted += 1
                if counted >= MAX_HOPS:
                    return None
                continue
            if kind.__class__ is not IP:
                return None
            counted += 1
            if hops is None:
                return _new(ClientIP, (kind, self._past[counted - 1]))
            if counted == hops:
                return _new(ClientIP, (kind, self._hops_detail))
        return None

    def _peer(self, peer: str | None) -> ClientIP | IP:
        """The final answer for this peer, or the peer itself when it is a trusted proxy."""
        ip = parse_peer(peer)
        result: ClientIP | IP
        if ip is None:
            result = self._peer_unresolved(peer)
            if peer is not None:
                return result  # not cached: the key may be anything
        elif self._trusted.holds(ip):
            result = ip
        else:
            # Not remembered: whoever caches per peer (the engine's decisions) keeps the
            # answer, and parsing again costs less than a second cache written for every
            # new client. Only proxies, whose requests the engine cannot cache by peer, are.
            value = ip.value
            # unusable_reason() inline, as in peer_client()
            if (
                (0 < value < 0xE0000000)
                if ip.version == 4
                else (_V6_USUAL_FROM <= value < _V6_USUAL_TO)
            ):
                return _new(ClientIP, (ip, self._peer_detail))
            return self._client(ip, self._peer_detail, "socket peer ")
        return self._peers.put(peer, result)

    @staticmethod
    def _client(ip: IP, detail: str, what: str = "") -> ClientIP:
        reason = unusable_reason(ip)
        if reason is not None:
            return _unresolved(f"{what}{ip.text} is {_UNUSABLE[reason]}")
        return _new(ClientIP, (ip, detail))

    def _kind(self, element: str) -> Kind:
        """What ``element`` is, when it is not in the cache yet (callers look there first)."""
        kind = self._entry(element)
        if isinstance(kind, IP):
            if self._trusted.holds(kind):
                kind = _TRUSTED
            else:
                reason = unusable_reason(kind)
                if reason is not None:
                    kind = f"{kind.text} is {_UNUSABLE[reason]}"
        if len(element) <= _MAX_ENTRY:
            self._entries.put(element, kind)
        return kind

    def _from_header(self, proxy: IP | None, found: Sequence[object]) -> ClientIP:
        header = self._header
        sender = "the proxy" if proxy is None else f"the trusted proxy {proxy.text}"
        if not found:
            return _unresolved(f"{sender} sent no {header} header")
        for line in found:
            if not isinstance(line, str):
                return _unresolved(f"a {header} value is not text")
        lines: list[str] = list(found)  # type: ignore[arg-type]
        if self._single_valued:
            return self._single(lines, sender)
        if self._hops is not None:
            return self._walk_hops(self._split(lines), self._hops)
        return self._walk_trusted(self._split(lines), sender)

    def _walk_trusted(self, elements: Iterator[str | _Stop], sender: str) -> ClientIP:
        skipped = 0
        get = self._known_entry
        for element in elements:
            if isinstance(element, _Stop):
                return _unresolved(f"{self._header} {element.reason}")
            kind = get(element) or self._kind(element)
            if kind is _EMPTY:
                continue
            if kind is _TRUSTED:
                skipped += 1
                if skipped >= MAX_HOPS:
                    return _unresolved(f"more than {MAX_HOPS} trusted entries in {self._header}")
                continue
            if kind.__class__ is str:
                return _unresolved(kind)
            return _new(ClientIP, (kind, self._past[skipped]))
        if skipped == 0:
            return _unresolved(f"{sender} sent an empty {self._header}")
        return _unresolved(f"every {self._header} entry is a trusted proxy")

    def _walk_hops(self, elements: Iterator[str | _Stop], hops: int) -> ClientIP:
        seen = 0
        get = self._known_entry
        for element in elements:
            if isinstance(element, _Stop):
                return _unresolved(f"{self._header} {element.reason}")
            kind = get(element) or self._kind(element)
            if kind is _EMPTY:
                continue
            if kind.__class__ is str:
                return _unresolved(kind)
            seen += 1
            if seen == hops:
                return _new(ClientIP, (kind, self._hops_detail))
        return _unresolved(
            f"{self._header} has {seen} entr{'y' if seen == 1 else 'ies'}, fewer than hops = {hops}"
        )

    def _single(self, lines: list[str], sender: str) -> ClientIP:
        header = self._header
        if len(lines) > 1:
            return _unresolved(f"{len(lines)} {header} lines; it must be one line, one address")
        value = lines[0]
        if len(value) > _MAX_ENTRY:
            return _unresolved(f"{header} is too long to be an address")
        if "," in value:
            return _unresolved(f"{header} holds a list {_show(value)}, not one address")
        kind = self._known_entry(value) or self._kind(value)
        if kind is _EMPTY:
            return _unresolved(f"{sender} sent an empty {header}")
        if kind is _TRUSTED:
            shown = _show(value.strip(" \t"))
            return _unresolved(f"{header} {shown} is a trusted proxy, not a client")
        if isinstance(kind, str):
            return _unresolved(kind)
        if self._hops is not None:
            return _new(ClientIP, (kind, self._hops_detail))
        return _new(ClientIP, (kind, self._past[0]))

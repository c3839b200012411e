"""How an account lives in Redis: its keys, the Lua script of each operation, their replies.

Two keys per account, both carrying the account in one hash tag so that they sit in one
Cluster slot (a script may only touch keys of one slot)::

    {prefix}:{<id>}:state   hash: n (strikes ever), s/sa/su (suspension, at, until),
                            g:<rule> (first match of that rule), c:<country> (seen)
    {prefix}:{<id>}:window  sorted set: the strikes inside the window, scored by their time

Only the strings the engine passes in are stored (times, counts, rule names, countries),
never a client address.

Every time comes from the caller as ``repr(float)``, which parses back to the same double in
Lua and in Redis, and is stored as that very string. Lua is never asked to turn a number
into a string: it prints 14 digits and the engine's times carry more, so a date computed in
Lua would drift from the one the memory store returns. The dates a script may have to write
(a suspension's end) are therefore computed by the caller and passed in.

Expiry (the server's clock, so with slack for clocks that differ between hosts): the window
expires ``window`` + :data:`SLACK` after its last strike, as every strike in it is then
stale. The state expires :data:`IDLE` after the account's last record, or when its
suspension ends plus :data:`IDLE`, and never while a suspension until cleared is running. An
account idle that long forgets its grace dates, strikes and countries: it is new again.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from geofence.accounts._store import AccountState, Suspension

IDLE = 400 * 86400  # longer than any roll-out's grace period: forgetting restarts it
SLACK = 300  # seconds of clock difference between app hosts and the Redis server

_ESCAPES = {"%": "%25", "{": "%7B", "}": "%7D"}
_UNESCAPES = {v: k for k, v in _ESCAPES.items()}
_ESCAPED = re.compile("|".join(_UNESCAPES))
_EMPTY_ID = "%"  # an escaped id is never a lone "%", and "" would make an empty hash tag


def escape(account: str) -> str:
    """The account id as it appears between the braces of a key.

    ``{`` and ``}`` would end or move the hash tag and split an account over two slots;
    ``%`` is escaped too so that ``%7B`` in an id cannot collide with an escaped ``{``.
    """
    if not account:
        return _EMPTY_ID
    return "".join(_ESCAPES.get(c, c) for c in account)


def unescape(escaped: str) -> str:
    if escaped == _EMPTY_ID:
        return ""
    return _ESCAPED.sub(lambda m: _UNESCAPES[m.group()], escaped)


def key_base(prefix: str) -> str:
    # The prefix is escaped like an id: a brace in it would become the hash tag of every
    # account, one slot for the whole store.
    return escape(prefix) + ":{"


def keys(prefix: str, account: str) -> tuple[str, str]:
    base = key_base(prefix) + escape(account) + "}"
    return base + ":state", base + ":window"


def state_pattern(prefix: str) -> str:
    """The SCAN pattern of every account's state key (glob characters in the prefix escaped)."""
    base = "".join("\\" + c if c in "*?[]\\" else c for c in key_base(prefix))
    return base + "*}:state"


def account_of(key: str, prefix: str) -> str | None:
    """The account id of a state key found by SCAN, None for a key that only looks like one."""
    head, tail = key_base(prefix), "}:state"
    if not key.startswith(head) or not key.endswith(tail):
        return None
    escaped = key[len(head) : -len(tail)]
    if not escaped or "{" in escaped or "}" in escaped:
        return None
    return unescape(escaped)


def flag(value: bool) -> str:
    return "1" if value else "0"


def number(value: float) -> str:
    """A time or duration as the scripts receive it (``inf`` for until cleared)."""
    return repr(float(value))


# Shared by the scripts: "inf" is spelled out rather than left to tonumber, whose handling
# of it depends on the C library.
_PRELUDE = """
local function num(s)
  if s == 'inf' then return math.huge end
  return tonumber(s)
end
local function recent(window, horizon, now)
  redis.call('ZREMRANGEBYSCORE', window, '-inf', horizon)
  -- Strikes stamped a little after now count too: processes stamp with their own clocks.
  return redis.call('ZCOUNT', window, '(' .. horizon, '+inf')
end
"""

# KEYS: state, window.
# ARGV: 1 at, 2 has grace, 3 rule, 4 grace seconds, 5 enforce_from or '', 6 strike,
# 7 strike in grace, 8 strike if suspended, 9 has country, 10 country, 11 has limits,
# 12 threshold, 13 horizon (at - window), 14 action, 15 the end of a suspension starting at
# `at`, 16 window ttl, 17 idle ttl.
# Reply: started, struck, tripped, new country (0 or 1), recent, then the state hash as
# HGETALL gives it.
RECORD = (
    _PRELUDE
    + """
local state, window = KEYS[1], KEYS[2]
local at = num(ARGV[1])
local started, struck, tripped, fresh = 0, 0, 0, 0
redis.call('HSETNX', state, 'n', 0)
local in_grace = false
if ARGV[2] == '1' then
  local field = 'g:' .. ARGV[3]
  local first = redis.call('HGET', state, field)
  if not first then
    first, started = ARGV[1], 1
    redis.call('HSET', state, field, first)
  end
  local untl = num(first) + num(ARGV[4])
  if ARGV[5] ~= '' then untl = math.max(num(ARGV[5]), untl) end
  in_grace = at < untl
end
local held = redis.call('HMGET', state, 's', 'su')
local running = held[2] and at < num(held[2])
local strike = ARGV[6]
if running and held[1] == 'suspend' then
  strike = ARGV[8]
elseif in_grace then
  strike = ARGV[7]
end
if strike == '1' and ARGV[11] == '1' then
  struck = 1
  local n = redis.call('HINCRBY', state, 'n', 1)
  if not running then
    -- the strike number is unique per account, so equal times stay separate members
    redis.call('ZADD', window, ARGV[1], n)
    if recent(window, ARGV[13], ARGV[1]) >= tonumber(ARGV[12]) then
      tripped = 1
      redis.call('DEL', window)
      redis.call('HSET', state, 's', ARGV[14], 'sa', ARGV[1], 'su', ARGV[15])
    else
      redis.call('EXPIRE', window, ARGV[16])
    end
  end
end
if ARGV[9] == '1' then
  fresh = redis.call('HSETNX', state, 'c:' .. ARGV[10], '1')
end
local count = 0
if ARGV[11] == '1' then count = recent(window, ARGV[13], ARGV[1]) end
local su = redis.call('HGET', state, 'su')
if su and at < num(su) then
  if num(su) == math.huge then
    redis.call('PERSIST', state)
  else
    local ttl = math.ceil(num(su) - at) + tonumber(ARGV[17])
    redis.call('EXPIRE', state, string.format('%d', ttl))
  end
else
  redis.call('EXPIRE', state, ARGV[17])
end
return {started, struck, tripped, fresh, count, redis.call('HGETALL', state)}
"""
)

# KEYS: state, window. ARGV: 1 now, 2 has limits, 3 horizon (now - window).
# Reply: {} for an unknown account, else recent and the state hash.
FETCH = (
    _PRELUDE
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return {} end
local count = 0
if ARGV[2] == '1' then count = recent(KEYS[2], ARGV[3], ARGV[1]) end
return {count, redis.call('HGETALL', KEYS[1])}
"""
)

# KEYS: state, window. ARGV: 1 now, 2 idle ttl. Reply: 1 when a running suspension was lifted.
CLEAR = (
    _PRELUDE
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local su = redis.call('HGET', KEYS[1], 'su')
local lifted = 0
if su and num(ARGV[1]) < num(su) then lifted = 1 end
redis.call('DEL', KEYS[2])
redis.call('HDEL', KEYS[1], 's', 'sa', 'su')
redis.call('EXPIRE', KEYS[1], ARGV[2])
return lifted
"""
)


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    if isinstance(value, str):
        return value
    raise ValueError(f"expected a string, got {value!r}")


def _time(value: object) -> float:
    parsed = float(_text(value))
    if math.isnan(parsed):
        raise ValueError("a stored time is NaN")
    return parsed


def decode_state(flat: object, recent: object) -> AccountState:
    """The state from a script's HGETALL (a flat field, value list) and its window count.

    Raises ValueError (or TypeError) for anything this module did not write.
    """
    if not isinstance(flat, Sequence) or isinstance(flat, (bytes, str)) or len(flat) % 2:
        raise ValueError(f"not a hash: {flat!r}")
    if not isinstance(recent, int):
        raise ValueError(f"not a count: {recent!r}")
    grace: dict[str, float] = {}
    countries: set[str] = set()
    strikes = 0
    suspension: Suspension | None = None
    suspended_at = suspended_until = None
    for i in range(0, len(flat), 2):
        name, value = _text(flat[i]), flat[i + 1]
        if name == "n":
            strikes = int(_text(value))
        elif name == "s":
            action = _text(value)
            if action not in ("suspend", "flag"):
                raise ValueError(f"unknown suspension {action!r}")
            suspension = "suspend" if action == "suspend" else "flag"
        elif name == "sa":
            suspended_at = _time(value)
        elif name == "su":
            suspended_until = _time(value)
        elif name.startswith("g:"):
            grace[name[2:]] = _time(value)
        elif name.startswith("c:"):
            countries.add(name[2:])
        else:
            raise ValueError(f"unknown field {name!r}")
    return AccountState(
        grace=grace,
        strikes=strikes,
        recent=recent,
        suspension=suspension,
        suspended_at=suspended_at,
        suspended_until=suspended_until,
        countries=frozenset(countries),
    )

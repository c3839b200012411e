"""One contract for every account store: memory (the reference), Redis over TCP, a Unix
socket and TLS, a Redis Cluster and a master found through Sentinel.

Each test runs once per store kind (``make_store`` in conftest.py). The expectations are
written out, so they hold the memory store to the contract too; the last test also feeds
random sequences to memory and to the store under test and compares every answer.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from geofence.accounts import (
    EMPTY,
    FOREVER,
    AccountState,
    Grace,
    Hit,
    Limits,
    MemoryStore,
    Outcome,
    Store,
)

MakeStore = Callable[[Limits | None], Store]  # the make_store fixture of conftest.py
DAY = 86_400.0
HOUR = 3_600.0
# More digits than Lua prints (14): a date that went through a float-to-text conversion on
# the server would come back different.
T = 1_780_000_000.123456
LIMITS = Limits(threshold=3, window=HOUR, action="suspend", suspend_for=DAY)
GRACE = Grace("unsupported", seconds=14 * DAY, enforce_from=T + 7 * DAY)
ODD_IDS = [
    "plain",
    "a{b}",
    "{a}",
    "{",
    "}",
    "}{",
    "%",
    "%7B",
    "%257B",
    "%7D%25",
    "with space",
    "tab\tand\nnewline",
    "ünïcödé",
    "组织",
    "emoji 🛰",
    "*",
    "a:b:state",
    "x}:window",
    "[ab]?",
    "back\\slash",
]


def strike(at: float, **flags: bool) -> Hit:
    return Hit(at, strike=True, **flags)


def strikes(store: Store, account: str, times: list[float]) -> list[Outcome]:
    return [store.record(account, strike(at)) for at in times]


# -- unknown accounts ------------------------------------------------------------------------


def test_an_unknown_account_is_empty(make_store: MakeStore) -> None:
    store = make_store(LIMITS)
    assert store.fetch("nobody", T) == EMPTY
    assert store.clear("nobody", T) is False
    assert list(store.accounts(T)) == []
    assert asyncio.run(store.afetch("nobody", T)) == EMPTY
    # reading and clearing created nothing
    assert list(store.accounts(T)) == []


def test_a_record_that_changes_nothing_still_makes_the_account_known(
    make_store: MakeStore,
) -> None:
    store = make_store(LIMITS)
    outcome = store.record("quiet", Hit(T))
    assert outcome == Outcome(AccountState())
    assert [name for name, _ in store.accounts(T)] == ["quiet"]


# -- account grace ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("grace", "until"),
    [
        (Grace("r", seconds=14 * DAY, enforce_from=T + 7 * DAY), T + 14 * DAY),  # own date later
        (Grace("r", seconds=DAY, enforce_from=T + 7 * DAY), T + 7 * DAY),  # enforce_from later
        (Grace("r", seconds=DAY, enforce_from=None), T + DAY),
        (Grace("r", seconds=DAY, enforce_from=T - 30 * DAY), T + DAY),  # first match after it
    ],
)
def test_grace_starts_at_the_first_match_with_its_own_date(
    make_store: MakeStore, grace: Grace, until: float
) -> None:
    store = make_store(LIMITS)
    outcome = store.record("org", Hit(T, grace=grace))
    assert outcome.grace_started is True
    assert outcome.grace_until == until
    assert outcome.in_grace(T) and not outcome.in_grace(until)
    assert outcome.state.grace == {"r": T}
    assert store.fetch("org", T).grace == {"r": T}


def test_grace_starts_once_per_rule(make_store: MakeStore) -> None:
    store = make_store(LIMITS)
    first = store.record("org", Hit(T, grace=GRACE))
    again = store.record("org", Hit(T + DAY, grace=GRACE))
    assert (first.grace_started, again.grace_started) == (True, False)
    assert again.grace_until == first.grace_until == T + 14 * DAY
    # after the account's own date: still the same first match, no longer in grace
    late = store.record("org", Hit(T + 20 * DAY, grace=GRACE))
    assert late.grace_started is False
    assert late.grace_until == T + 14 * DAY and not late.in_grace(T + 20 * DAY)
    other = Grace("other", seconds=DAY, enforce_from=None)
    second_rule = store.record("org", Hit(T + 2 * DAY, grace=other))
    assert second_rule.grace_started is True
    assert second_rule.grace_until == T + 3 * DAY
    assert store.fetch("org", T).grace == {"unsupported": T, "other": T + 2 * DAY}
    # accounts have their own grace
    assert store.record("another", Hit(T + 5, grace=GRACE)).grace_started is True


def test_a_hit_without_grace_leaves_grace_alone(make_store: MakeStore) -> None:
    store = make_store(LIMITS)
    store.record("org", Hit(T, grace=GRACE))
    outcome = store.record("org", Hit(T + 1))
    assert outcome.grace_until is None and outcome.grace_started is False
    assert outcome.state.grace == {"unsupported": T}


# -- which strike counts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "counted"),
    [
        ({"strike": True}, False),  # a block strike does not count while in grace
        ({"strike_in_grace": True}, True),  # strikes.count has warn
        ({"strike_if_suspended": True}, False),
        ({}, False),
    ],
)
def test_strikes_in_grace(make_store: MakeStore, flags: dict[str, bool], counted: bool) -> None:
    store = make_store(LIMITS)
    outcome = store.record("org", Hit(T, grace=GRACE, **flags))
    assert outcome.in_grace(T)
    assert outcome.struck is counted
    assert outcome.state.strikes == outcome.state.recent == int(counted)


@pytest.mark.parametrize(
    ("flags", "counted"),
    [
        ({"strike": True}, True),
        ({"strike_in_grace": True}, False),
        ({"strike_if_suspended": True}, False),
    ],
)
def test_strikes_outside_grace(
    make_store: MakeStore, flags: dict[str, bool], counted: bool
) -> None:
    store = make_store(LIMITS)
    store.record("org", Hit(T, grace=GRACE))
    outcome = store.record("org", Hit(T + 15 * DAY, grace=GRACE, **flags))
    assert not outcome.in_grace(T + 15 * DAY)
    assert outcome.struck is counted
    assert outcome.state.strikes == int(counted)


@pytest.mark.parametrize(
    ("flags", "counted"),
    [
        ({"strike": True}, False),
        ({"strike_in_grace": True}, False),
        ({"strike_if_suspended": True}, True),
    ],
)
def test_strikes_while_suspended(
    make_store: MakeStore, flags: dict[str, bool], counted: bool
) -> None:
    store = make_store(LIMITS)
    strikes(store, "org", [T, T + 1, T + 2])
    assert store.fetch("org", T + 3).suspended(T + 3)
    outcome = store.record("org", Hit(T + 3, **flags))
    assert outcome.struck is counted
    assert outcome.state.strikes == 3 + int(counted)
    assert outcome.tripped is False


def test_without_limits_nothing_counts(make_store: MakeStore) -> None:
    store = make_store(None)
    for i in range(5):
        outcome = store.record("org", strike(T + i, strike_if_suspended=True))
        assert outcome.struck is False and outcome.tripped is False
    assert store.fetch("org", T + 5) == AccountState()


# -- threshold, window, suspension ----------------------------------------------------------


def test_threshold_within_a_sliding_window(make_store: MakeStore) -> None:
    store = make_store(LIMITS)
    first, second = strikes(store, "org", [T, T + 1000])
    assert (first.state.recent, second.state.recent) == (1, 2)
    # T has left the window ending at T + 3700: two strikes in it, no suspension
    third = store.record("org", strike(T + 3700))
    assert (third.state.strikes, third.state.recent, third.tripped) == (3, 2, False)
    assert store.fetch("org", T + 3700).recent == 2
    fourth = store.record("org", strike(T + 3800))
    assert fourth.tripped is True
    assert fourth.state.strikes == 4
    assert fourth.state.recent == 0  # a suspension starts a new window
    assert fourth.state.suspended(T + 3800)


def test_a_strike_exactly_one_window_old_is_out(make_store: MakeStore) -> None:
    store = make_store(LIMITS)
    strikes(store, "org", [T, T + HOUR / 2])
    assert store.fetch("org", T + HOUR - 0.001).recent == 2
    assert store.fetch("org", T + HOUR).recent == 1
    assert store.record("org", strike(T + HOUR)).tripped is False


def test_suspension(make_store: MakeStore) -> None:
    store = make_store(LIMITS)
    outcomes = strikes(store, "org", [T, T + 10, T + 20])
    assert [o.tripped for o in outcomes] == [False, False, True]
    state = outcomes[-1].state
    assert (state.suspension, state.suspended_at, state.suspended_until) == (
        "suspend",
        T + 20,
        T + 20 + DAY,
    )
    assert state.suspended(T + 20) and state.suspended(T + 20 + DAY - 1)
    assert not state.suspended(T + 20 + DAY)
    assert store.fetch("org", T + 30) == state
    # once over, the account is not suspended, and remembers the last suspension
    after = store.fetch("org", T + 20 + DAY)
    assert not after.suspended(T + 20 + DAY) and after.suspension == "suspend"


def test_flag_only_reports(make_store: MakeStore) -> None:
    store = make_store(Limits(threshold=2, window=HOUR, action="flag", suspend_for=DAY))
    first, second = strikes(store, "org", [T, T + 1])
    assert first.tripped is False
    assert second.tripped is True
    state = second.state
    assert state.suspension == "flag"
    assert not state.suspended(T + 1) and state.tripped(T + 1)
    # while flagged, block strikes go on counting but start no new flag
    more = strikes(store, "org", [T + 2, T + 3, T + 4])
    assert [o.struck for o in more] == [True, True, True]
    assert not any(o.tripped for o in more)
    assert more[-1].state.strikes == 5 and more[-1].state.recent == 0
    # after the flag, a new window
    later = strikes(store, "org", [T + 1 + DAY, T + 2 + DAY])
    assert [o.tripped for o in later] == [False, True]
    assert later[-1].state.suspended_at == T + 2 + DAY


def test_suspend_for_zero_is_until_cleared(make_store: MakeStore) -> None:
    store = make_store(Limits(threshold=1, window=HOUR, action="suspend", suspend_for=0))
    outcome = store.record("org", strike(T))
    assert outcome.tripped is True
    assert outcome.state.suspended_until == FOREVER == math.inf
    assert store.fetch("org", T + 100 * 365 * DAY).suspended(T + 100 * 365 * DAY)
    assert store.clear("org", T + 100 * 365 * DAY) is True
    assert not store.fetch("org", T + 100 * 365 * DAY).suspended(T + 100 * 365 * DAY)


def test_strikes_while_tripped_count_but_start_nothing(make_store: MakeStore) -> None:
    store = make_store(LIMITS)
    strikes(store, "org", [T, T + 1, T + 2])
    during = [store.record("org", strike(T + 3 + i, strike_if_suspended=True)) for i in range(5)]
    assert not any(o.tripped for o in during)
    assert [o.state.strikes for o in during] == [4, 5, 6, 7, 8]
    assert all(o.state.recent == 0 for o in during)
    assert during[-1].state.suspended_at == T + 2  # the first suspension is left as it was
    end = T + 2 + DAY
    again = strikes(store, "org", [end, end + 1, end + 2])
    assert [o.tripped for o in again] == [False, False, True]
    assert again[-1].state.suspended_at == end + 2
    assert again[-1].state.strikes == 11


def test_trips_once_per_suspension_at_equal_times(make_store: MakeStore) -> None:
    store = make_store(LIMITS)
    outcomes = strikes(store, "org", [T] * 6)
    assert [o.tripped for o in outcomes] == [False, False, True, False, False, False]
    assert outcomes[1].state.recent == 2  # strikes at one time are distinct strikes


# -- clear -----------------------------------------------------------------------------------


def test_clear_lifts_a_suspension_and_resets_the_window(make_store: MakeStore) -> None:
    store = make_store(LIMITS)
    store.record("org", Hit(T - 1, grace=GRACE, country="CN"))
    strikes(store, "org", [T, T + 1, T + 2])
    assert store.clear("org", T + 3) is True
    state = store.fetch("org", T + 3)
    assert not state.suspended(T + 3)
    assert (state.suspension, state.suspended_at, state.suspended_until) == (None, None, None)
    # counts, grace and countries stay: clear lifts, it does not forget
    assert (state.strikes, state.recent) == (3, 0)
    assert state.grace == {"unsupported": T - 1} and state.countries == {"CN"}
    assert store.clear("org", T + 3) is False  # nothing left to lift
    # the window starts afresh: two more strikes are not three
    assert not any(o.tripped for o in strikes(store, "org", [T + 4, T + 5]))


def test_clear_resets_the_window_of_an_account_not_suspended(make_store: MakeStore) -> None:
    store = make_store(LIMITS)
    strikes(store, "org", [T, T + 1])
    assert store.clear("org", T + 2) is False
    assert store.fetch("org", T + 2).recent == 0
    assert store.record("org", strike(T + 3)).tripped is False


def test_clear_after_the_suspension_ended_lifts_nothing(make_store: MakeStore) -> None:
    store = make_store(LIMITS)
    strikes(store, "org", [T, T + 1, T + 2])
    assert store.clear("org", T + 2 + DAY) is False
    assert store.fetch("org", T + 2 + DAY).suspension is None


def test_clear_of_a_flag(make_store: MakeStore) -> None:
    store = make_store(Limits(threshold=1, window=HOUR, action="flag", suspend_for=0))
    store.record("org", strike(T))
    assert store.clear("org", T + 1) is True
    assert store.record("org", strike(T + 2)).tripped is True


# -- countries -------------------------------------------------------------------------------


def test_each_country_is_new_once(make_store: MakeStore) -> None:
    store = make_store(LIMITS)
    seen = [store.record("org", Hit(T + i, country=c)).new_country for i, c in enumerate("AABAB")]
    assert seen == [True, False, True, False, False]
    assert store.fetch("org", T).countries == {"A", "B"}
    assert store.record("other", Hit(T, country="A")).new_country is True


# -- listing and ids -------------------------------------------------------------------------


def test_accounts_lists_every_account_sorted(make_store: MakeStore) -> None:
    store = make_store(LIMITS)
    for i, account in enumerate(["b", "a", "c"]):
        for at in range(i + 1):
            store.record(account, strike(T + at))
    listed = list(store.accounts(T + 10))
    assert [name for name, _ in listed] == ["a", "b", "c"]
    assert listed == [(name, store.fetch(name, T + 10)) for name in ("a", "b", "c")]
    assert [state.suspended(T + 10) for _, state in listed] == [False, False, True]
    # recent is counted at the time asked for
    assert [s.recent for _, s in store.accounts(T + 1.5 + HOUR)] == [0, 0, 0]


def test_odd_ids_are_accounts_of_their_own(make_store: MakeStore) -> None:
    store = make_store(LIMITS)
    for i, account in enumerate(ODD_IDS):
        for at in range(i % 4):
            store.record(account, strike(T + at, strike_if_suspended=True))
        store.record(account, Hit(T, country=f"C{i}"))
    for i, account in enumerate(ODD_IDS):
        state = store.fetch(account, T + 5)
        assert state.countries == {f"C{i}"}, account
        assert state.strikes == i % 4, account
        assert state.suspended(T + 5) is (i % 4 == 3)
    listed = list(store.accounts(T + 5))
    assert [name for name, _ in listed] == sorted(ODD_IDS)
    assert store.clear("%7B", T + 5) is True  # ODD_IDS[7], suspended
    assert store.fetch("{", T + 5).suspended(T + 5) is True  # and not this one


def test_an_empty_id_is_an_account_too(make_store: MakeStore) -> None:
    # Account() refuses it, but the CLI may be asked for it: no crash, no collision.
    store = make_store(LIMITS)
    store.record("", Hit(T, country="X"))
    store.record("%", Hit(T, country="Y"))
    assert store.fetch("", T).countries == {"X"}
    assert [name for name, _ in store.accounts(T)] == ["", "%"]


def test_rule_names_and_countries_are_kept_as_given(make_store: MakeStore) -> None:
    store = make_store(LIMITS)
    rule = "rule: with {braces}, ünïcödé and g:colons"
    store.record("org", Hit(T, grace=Grace(rule, DAY, None), country="c:XX"))
    state = store.fetch("org", T)
    assert state.grace == {rule: T} and state.countries == {"c:XX"}


# -- asyncio ---------------------------------------------------------------------------------


def test_async_calls_give_the_same_answers(make_store: MakeStore) -> None:
    store, reference = make_store(LIMITS), MemoryStore(LIMITS)
    hits = [Hit(T, grace=GRACE, country="CN"), *(strike(T + 15 * DAY + i) for i in range(4))]

    async def run() -> list[object]:
        answers: list[object] = []
        for hit in hits:
            answers.append(await store.arecord("org", hit))
            answers.append(await store.afetch("org", hit.at + 1))
        return answers

    expected: list[object] = []
    for hit in hits:
        expected += [reference.record("org", hit), reference.fetch("org", hit.at + 1)]
    assert asyncio.run(run()) == expected
    # and the sync calls see what the async ones wrote
    assert store.fetch("org", T + 15 * DAY + 10) == reference.fetch("org", T + 15 * DAY + 10)


def test_concurrent_async_calls_on_one_loop(make_store: MakeStore) -> None:
    store = make_store(Limits(threshold=10, window=HOUR, action="suspend", suspend_for=DAY))

    async def run() -> list[Outcome]:
        return await asyncio.gather(*(store.arecord("org", strike(T)) for _ in range(25)))

    outcomes = asyncio.run(run())
    assert sum(o.tripped for o in outcomes) == 1
    # once suspended, a block strike is not one (strike_if_suspended is False here)
    assert sum(o.struck for o in outcomes) == 10
    assert store.fetch("org", T + 30).strikes == 10


# -- the same answers as the reference -------------------------------------------------------

_times = st.floats(min_value=0, max_value=3 * DAY, allow_nan=False).map(lambda d: T + d)
_hits = st.builds(
    Hit,
    at=_times,
    grace=st.none()
    | st.builds(
        Grace,
        rule=st.sampled_from(["r1", "r2"]),
        seconds=st.sampled_from([0.0, 60.0, HOUR, DAY]),
        enforce_from=st.none() | _times,
    ),
    strike=st.booleans(),
    strike_in_grace=st.booleans(),
    strike_if_suspended=st.booleans(),
    country=st.none() | st.sampled_from(["CN", "RU", "IR"]),
)
_operations = st.lists(
    st.tuples(st.sampled_from(["a", "b{c}"]), st.sampled_from(["record", "fetch", "clear"]), _hits),
    max_size=25,
)
_limits = st.none() | st.builds(
    Limits,
    threshold=st.integers(1, 4),
    window=st.sampled_from([60.0, HOUR, DAY]),
    action=st.sampled_from(["suspend", "flag"]),
    suspend_for=st.sampled_from([0.0, 600.0, DAY]),
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(limits=_limits, operations=_operations)
def test_the_same_answers_as_the_memory_store(
    make_store: MakeStore,
    store_kind: str,
    limits: Limits | None,
    operations: list[tuple[str, str, Hit]],
) -> None:
    if store_kind == "memory":
        pytest.skip("the reference itself")
    store, reference = make_store(limits), MemoryStore(limits)
    for account, operation, hit in operations:
        if operation == "record":
            assert store.record(account, hit) == reference.record(account, hit)
        elif operation == "fetch":
            assert store.fetch(account, hit.at) == reference.fetch(account, hit.at)
        else:
            assert store.clear(account, hit.at) == reference.clear(account, hit.at)
    assert list(store.accounts(T + DAY)) == list(reference.accounts(T + DAY))

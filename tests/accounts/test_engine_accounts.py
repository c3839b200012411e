"""Accounts through the core: every sentence of DESIGN "Accounts" that the engine decides,
on the memory store (the Redis stores answer the same: see test_store_contract.py)."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from tests_support import ANON_DB, CITY_DB

import geofence
from geofence import Account, Event, RequestInfo
from geofence._events import REQUEST_KINDS

E = datetime(2026, 7, 9, tzinfo=timezone.utc)  # the rule's enforce_from
DAY = timedelta(days=1)
GB, US, CN, RU = "81.2.69.142", "216.160.83.56", "175.16.199.1", "2a02:d0c0::1"
SE = "89.160.20.112"


def policy(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "geoip": {"country_db": CITY_DB},
        "accounts": {},
        "strikes": {"threshold": 3, "window": "1h", "suspend_for": "1d"},
        "rules": [
            {
                "name": "unsupported",
                "action": "block",
                "regions": ["CN", "RU"],
                "warn_from": (E - 14 * DAY).isoformat(),
                "enforce_from": E.isoformat(),
                "account_grace": "14d",
            }
        ],
    }
    base.update(extra)
    return base


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def kinds(self, account: str | None = None) -> list[str]:
        """Transitions only: request events (block, warn) are tested in tests/core."""
        return [
            e.kind
            for e in self.events
            if (account is None or e.account == account) and e.kind not in REQUEST_KINDS
        ]


@pytest.fixture
def events() -> Recorder:
    return Recorder()


def engine(events: Recorder | None = None, **extra: Any) -> geofence.Engine:
    return geofence.Engine.from_config(policy(**extra), on_event=events)


def req(ip: str, path: str = "/v1/models") -> RequestInfo:
    return RequestInfo(peer=ip, method="GET", path=path)


# -- without accounts nothing changes -----------------------------------------------------------


def test_without_an_account_the_decision_is_the_plain_one() -> None:
    eng = engine()
    plain = geofence.Engine.from_config(_no_accounts())
    for ip in (GB, US, CN, RU, SE, "10.0.0.1"):
        for when in (E - 20 * DAY, E - DAY, E + DAY):
            assert eng.decide(req(ip), when) == plain.decide(req(ip), when)


def _no_accounts() -> dict[str, Any]:
    cfg = policy()
    del cfg["accounts"], cfg["strikes"]
    del cfg["rules"][0]["account_grace"]
    return cfg


def test_without_accounts_table_an_account_changes_nothing() -> None:
    plain = geofence.Engine.from_config(_no_accounts())
    for ip in (GB, CN):
        with_account = plain.decide(req(ip), E + DAY, Account("org_1", home_country="CN"))
        assert with_account == plain.decide(req(ip), E + DAY)
        assert with_account.account is None


def test_decision_carries_the_account_id() -> None:
    decision = engine().decide(req(GB), E, Account("org_1"))
    assert (decision.action, decision.reason, decision.account) == ("allow", "default", "org_1")


def test_a_plain_string_is_an_account_id() -> None:
    assert engine().decide(req(GB), E, "org_7").account == "org_7"  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [42, object(), b"org", ""])
def test_anything_else_is_logged_and_ignored(bad: object, caplog: pytest.LogCaptureFixture) -> None:
    eng = engine()
    with caplog.at_level(logging.ERROR, logger="geofence"):
        decision = eng.decide(req(CN), E + DAY, bad)  # type: ignore[arg-type]
    assert (decision.action, decision.reason, decision.account) == ("block", "rule", None)


# -- account grace --------------------------------------------------------------------------------


def test_account_grace_starts_at_first_match_after_enforce_from(events: Recorder) -> None:
    eng = engine(events)
    first = E + 2 * DAY
    acct = Account("org_late")
    decision = eng.decide(req(CN), first, acct)
    assert (decision.action, decision.reason, decision.enforced) == ("warn", "account_grace", True)
    assert decision.enforce_from == first + 14 * DAY
    assert decision.rule == "unsupported"
    # Later requests keep the same own date, and the event fired once.
    again = eng.decide(req(RU), first + 13 * DAY, acct)
    assert (again.action, again.enforce_from) == ("warn", first + 14 * DAY)
    assert events.kinds("org_late") == ["account_grace_started"]
    started = events.events[0]
    assert started.rule == "unsupported"
    assert started.detail["until"] == first + 14 * DAY
    # Half-open: at exactly its own date the account is blocked.
    blocked = eng.decide(req(CN), first + 14 * DAY, acct)
    assert (blocked.action, blocked.reason, blocked.status) == ("block", "rule", 451)


def test_first_match_in_the_warn_window_ends_at_enforce_from_plus_grace() -> None:
    eng = engine()
    acct = Account("org_early")
    # first match 10 days before E: own date max(E, E - 10d + 14d) = E + 4d
    early = eng.decide(req(CN), E - 10 * DAY, acct)
    assert (early.action, early.reason, early.enforce_from) == (
        "warn",
        "account_grace",
        E + 4 * DAY,
    )
    assert eng.decide(req(CN), E + 3 * DAY, acct).action == "warn"
    assert eng.decide(req(CN), E + 4 * DAY, acct).action == "block"


def test_first_match_long_before_gives_enforce_from() -> None:
    eng = engine(
        rules=[{**policy()["rules"][0], "warn_from": (E - 30 * DAY).isoformat()}],
    )
    acct = Account("org_very_early")
    assert eng.decide(req(CN), E - 30 * DAY, acct).enforce_from == E  # max(E, E - 16d)
    assert eng.decide(req(CN), E, acct).action == "block"


def test_grace_is_per_account() -> None:
    eng = engine()
    eng.decide(req(CN), E + DAY, Account("a"))
    late = eng.decide(req(CN), E + 10 * DAY, Account("b"))
    assert late.enforce_from == E + 24 * DAY
    assert eng.decide(req(CN), E + 16 * DAY, Account("a")).action == "block"
    assert eng.decide(req(CN), E + 16 * DAY, Account("b")).action == "warn"


def test_grace_does_not_start_before_the_rule_does() -> None:
    eng = engine()
    off = eng.decide(req(CN), E - 20 * DAY, Account("org_1"))
    assert (off.action, off.reason) == ("allow", "default")
    # The first match is the one that counts.
    assert eng.decide(req(CN), E + DAY, Account("org_1")).enforce_from == E + 15 * DAY


def test_allowed_requests_do_not_start_grace(events: Recorder) -> None:
    eng = engine(events)
    eng.decide(req(GB), E + DAY, Account("org_1"))
    assert events.kinds() == []


# -- strikes and suspension ---------------------------------------------------------------------


def strict(
    events: Recorder | None = None, extra: dict[str, Any] | None = None, **strikes: Any
) -> geofence.Engine:
    """Strikes on a rule without dates or grace: every request from CN or RU is a strike."""
    cfg: dict[str, Any] = {"threshold": 3, "window": "1h", "suspend_for": "1d", **strikes}
    rules = [{"name": "no-cn", "action": "block", "regions": ["CN", "RU"]}]
    return engine(events, strikes=cfg, rules=rules, **(extra or {}))


def test_threshold_strikes_suspend_and_every_request_is_blocked(events: Recorder) -> None:
    eng = strict(events)
    acct = Account("org_vpn")
    t = E
    for _ in range(2):
        assert eng.decide(req(CN), t, acct).reason == "rule"
        t += timedelta(minutes=1)
    suspended = eng.decide(req(CN), t, acct)
    assert (suspended.action, suspended.reason, suspended.status) == (
        "block",
        "account_suspended",
        403,
    )
    assert events.kinds("org_vpn").count("account_suspended") == 1
    assert events.kinds("org_vpn").count("account_strike") == 3
    # From an allowed country too, until suspend_for has passed.
    elsewhere = eng.decide(req(GB), t + timedelta(hours=23), acct)
    assert (elsewhere.action, elsewhere.reason, elsewhere.enforced) == (
        "block",
        "account_suspended",
        True,
    )
    assert eng.decide(req(GB), t + DAY, acct).reason == "default"
    assert events.kinds("org_vpn").count("account_suspended") == 1


def test_strikes_outside_the_window_do_not_add_up() -> None:
    eng = strict()
    acct = Account("org_slow")
    for i in range(10):
        decision = eng.decide(req(CN), E + i * timedelta(minutes=31), acct)
        assert decision.reason == "rule", i


def test_suspend_for_zero_lasts_until_cleared() -> None:
    eng = strict(suspend_for=0)
    acct = Account("org_forever")
    for i in range(3):
        eng.decide(req(CN), E + i * timedelta(seconds=1), acct)
    assert eng.decide(req(GB), E + 3650 * DAY, acct).reason == "account_suspended"
    store = eng._ledger.store  # type: ignore[union-attr]
    assert store.clear("org_forever", (E + 3650 * DAY).timestamp()) is True
    # The cleared state reaches this process after `refresh` (5 s by default).
    assert eng.decide(req(GB), E + 3650 * DAY + timedelta(seconds=6), acct).reason == "default"


def test_flag_only_emits_the_event(events: Recorder) -> None:
    eng = strict(events, action="flag")
    acct = Account("org_flag")
    for i in range(5):
        decision = eng.decide(req(CN), E + i * timedelta(seconds=1), acct)
        assert decision.reason == "rule"
    assert eng.decide(req(GB), E + timedelta(seconds=10), acct).action == "allow"
    flagged = [e for e in events.events if e.kind == "account_suspended"]
    assert len(flagged) == 1
    assert flagged[0].detail["action"] == "flag"


def test_warn_strikes_only_when_counted() -> None:
    cfg_rules = [{"name": "warned", "action": "warn", "regions": ["CN"]}]
    not_counted = engine(strikes={"threshold": 2, "window": "1h"}, rules=cfg_rules)
    counted = engine(strikes={"threshold": 2, "window": "1h", "count": ["warn"]}, rules=cfg_rules)
    for eng, expected in ((not_counted, "rule"), (counted, "account_suspended")):
        acct = Account("org_w")
        for i in range(2):
            last = eng.decide(req(CN), E + i * timedelta(seconds=1), acct)
        assert last.reason == expected


def test_no_strikes_table_counts_nothing(events: Recorder) -> None:
    cfg = policy()
    del cfg["strikes"]
    eng = geofence.Engine.from_config(cfg, on_event=events)
    for i in range(100):
        eng.decide(req(CN), E + 30 * DAY + i * timedelta(seconds=1), Account("org_x"))
    assert "account_strike" not in events.kinds()


def test_suspension_status_and_json_code() -> None:
    eng = strict(status=451)
    acct = Account("org_s")
    for i in range(3):
        eng.decide(req(CN), E + i * timedelta(seconds=1), acct)
    answer = eng.answer(req(GB), E + timedelta(seconds=5), acct)
    assert answer.response is not None
    assert answer.response.status == 451
    assert b'"code": "account_suspended"' in answer.response.body
    assert ("Cache-Control", "private, no-store") in answer.response.headers


# -- home country -------------------------------------------------------------------------------


def test_home_regions_matches_whatever_the_ip(events: Recorder) -> None:
    eng = engine(
        events,
        rules=[{"name": "registered-in-cn", "action": "block", "home_regions": ["CN"]}],
    )
    decision = eng.decide(req(US), E, Account("org_h", home_country="cn"))
    assert (decision.action, decision.rule, decision.country) == ("block", "registered-in-cn", "US")
    assert eng.decide(req(US), E, Account("org_g", home_country="GB")).action == "allow"
    assert eng.decide(req(US), E, Account("org_n")).action == "allow"
    # Without an account the rule never matches.
    assert eng.decide(req(US), E).action == "allow"


def test_home_mismatch_with_anonymizers_is_the_vpn_signal(events: Recorder) -> None:
    eng = engine(
        events,
        geoip={"country_db": CITY_DB, "anonymous_db": ANON_DB},
        rules=[
            {
                "name": "vpn-abroad",
                "action": "block",
                "home_mismatch": True,
                "anonymizers": ["vpn"],
            }
        ],
    )
    us_account = Account("org_m", home_country="US")
    # GB and a VPN, for an account at home in the US: blocked, and the event fires once.
    for _ in range(2):
        decision = eng.decide(req(GB), E, us_account)
        assert (decision.action, decision.rule) == ("block", "vpn-abroad")
    # At home, no VPN: allowed. A GB account on the same VPN: no mismatch.
    assert eng.decide(req(US), E, us_account).action == "allow"
    assert eng.decide(req(GB), E, Account("org_gb", home_country="GB")).action == "allow"
    mismatches = [e for e in events.events if e.kind == "account_home_mismatch"]
    assert [(e.account, e.detail["country"]) for e in mismatches] == [("org_m", "GB")]


def test_home_mismatch_needs_both_countries() -> None:
    eng = engine(rules=[{"name": "abroad", "action": "warn", "home_mismatch": True}])
    assert eng.decide(req(GB), E, Account("a", home_country="US")).action == "warn"
    assert eng.decide(req(GB), E, Account("b")).action == "allow"  # no home country
    assert eng.decide(req("214.1.1.1"), E, Account("c", home_country="US")).action == "allow"


def test_home_rules_are_cached_per_home_country() -> None:
    eng = engine(rules=[{"name": "registered-in-cn", "action": "block", "home_regions": ["CN"]}])
    for _ in range(3):
        assert eng.decide(req(US), None, Account("a", home_country="CN")).action == "block"
        assert eng.decide(req(US), None, Account("b", home_country="US")).action == "allow"
        assert eng.decide(req(US)).action == "allow"


# -- exemptions ---------------------------------------------------------------------------------


def test_exempt_accounts_by_id_and_group() -> None:
    eng = engine(exempt={"accounts": ["org_partner", "@enterprise"], "paths": ["/healthz"]})
    by_id = eng.decide(req(CN), E + 30 * DAY, Account("org_partner"))
    by_group = eng.decide(req(CN), E + 30 * DAY, Account("org_x", groups=("enterprise",)))
    other = eng.decide(req(CN), E + 30 * DAY, Account("org_y", groups=("free",)))
    assert (by_id.action, by_id.reason, by_id.country) == ("allow", "exempt_account", "CN")
    assert (by_group.action, by_group.reason) == ("allow", "exempt_account")
    assert other.reason in ("account_grace", "rule")
    # Exempt paths come first.
    assert eng.decide(req(CN, "/healthz"), E, Account("org_partner")).reason == "exempt_path"


def test_exempt_account_is_never_suspended() -> None:
    eng = strict(extra={"exempt": {"accounts": ["@staff"]}})
    acct = Account("org_staff", groups=["staff"])  # type: ignore[arg-type]
    for i in range(10):
        assert eng.decide(req(CN), E + i * timedelta(seconds=1), acct).reason == "exempt_account"


# -- the store, the refresh, report mode ---------------------------------------------------------


class Spy:
    """Counts the calls the engine makes to its (real, memory) store."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.store, name)
        if callable(attribute):

            def counted(*args: Any, **kwargs: Any) -> Any:
                self.calls.append(name)
                return attribute(*args, **kwargs)

            return counted
        return attribute


def spied(eng: geofence.Engine) -> Spy:
    ledger = eng._ledger
    assert ledger is not None
    spy = Spy(ledger.store)
    ledger.store = spy  # type: ignore[assignment]
    return spy


def test_repeated_allowed_request_makes_no_store_call_within_refresh() -> None:
    eng = engine()
    spy = spied(eng)
    acct = Account("org_1")
    for i in range(50):
        eng.decide(req(GB), E + i * timedelta(milliseconds=10), acct)
    assert spy.calls == ["record"]
    eng.decide(req(GB), E + timedelta(seconds=6), acct)
    assert spy.calls == ["record", "record"]


def test_live_requests_use_the_memo() -> None:
    eng = engine()
    spy = spied(eng)
    acct = Account("org_live")
    first = eng.answer(req(GB), None, acct)
    second = eng.answer(req(GB), None, acct)
    assert second is first
    assert eng.cached(GB, "GET", "/v1/models", acct) is first
    assert eng.cached(GB, "GET", "/v1/models", Account("org_other")) is None
    assert spy.calls == ["record"]


def test_each_strike_is_one_store_call() -> None:
    eng = strict(threshold=1000)
    spy = spied(eng)
    for i in range(20):
        eng.decide(req(CN), E + i * timedelta(milliseconds=10), Account("org_1"))
    assert spy.calls == ["record"] * 20


def test_report_mode_records_nothing_and_blocks_nothing(events: Recorder) -> None:
    eng = engine(events, mode="report")
    acct = Account("org_r")
    for i in range(10):
        decision = eng.decide(req(CN), E + 30 * DAY + i * timedelta(seconds=1), acct)
        assert (decision.action, decision.enforced) == ("block", False)
    assert events.kinds() == []


def test_event_callback_that_raises_never_reaches_the_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def boom(event: Event) -> None:
        raise RuntimeError("mail server down")

    eng = geofence.Engine.from_config(policy(), on_event=boom)
    with caplog.at_level(logging.ERROR, logger="geofence"):
        decision = eng.decide(req(CN), E + DAY, Account("org_1"))
    assert decision.reason == "account_grace"
    assert "on_event callback failed" in caplog.text


def test_events_carry_decision_account_and_time(events: Recorder) -> None:
    eng = strict(events)
    for i in range(3):
        eng.decide(req(CN), E + i * timedelta(seconds=1), Account("org_e"))
    suspended = next(e for e in events.events if e.kind == "account_suspended")
    assert suspended.account == "org_e"
    assert suspended.at == E + 2 * timedelta(seconds=1)
    assert suspended.decision is not None and suspended.decision.reason == "account_suspended"
    assert suspended.detail["until"] == E + 2 * timedelta(seconds=1) + DAY


def test_adecide_gives_the_same_decisions() -> None:
    sync, async_ = strict(), strict()

    async def run() -> list[geofence.Decision]:
        return [
            await async_.adecide(req(ip), E + i * timedelta(seconds=1), Account("org_a"))
            for i, ip in enumerate([GB, CN, CN, CN, GB, US])
        ]

    expected = [
        sync.decide(req(ip), E + i * timedelta(seconds=1), Account("org_a"))
        for i, ip in enumerate([GB, CN, CN, CN, GB, US])
    ]
    assert asyncio.run(run()) == expected
    assert expected[-1].reason == "account_suspended"


def test_account_never_reaches_the_store_as_an_ip() -> None:
    eng = strict()
    for i in range(5):
        eng.decide(req(CN), E + i * timedelta(seconds=1), Account("org_ip"))
    state = dict(eng._ledger.store.accounts(E.timestamp() + 10))  # type: ignore[union-attr]
    text = repr(state)
    for ip in (CN, GB):
        assert ip not in text


def test_log_line_names_the_account_escaped(caplog: pytest.LogCaptureFixture) -> None:
    eng = strict()
    with caplog.at_level(logging.INFO, logger="geofence"):
        eng.decide(req(CN), E, Account("org\n1"))
    (record,) = [r for r in caplog.records if r.name == "geofence"]
    assert 'account="org\\x0a1"' in record.getMessage()
    assert "\n" not in record.getMessage()
    assert record.geofence["account"] == "org\\x0a1"  # type: ignore[attr-defined]


def test_cached_with_an_id_string_defers_to_answer() -> None:
    eng = engine()
    eng.answer(req(GB), None, Account("org_1"))
    assert eng.cached(GB, "GET", "/v1/models", "org_1") is None  # type: ignore[arg-type]
    assert eng.answer(req(GB), None, "org_1").decision.account == "org_1"  # type: ignore[arg-type]

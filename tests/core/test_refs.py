"""``decision.ref``: the reference a blocked person quotes to support."""

from __future__ import annotations

import re
from datetime import datetime, timezone

from tests_support import CITY_DB

from geofence import Account, Engine, RequestInfo
from geofence._refs import LENGTH, Refs

CN, CN2, GB, US = "175.16.199.1", "175.16.199.2", "81.2.69.142", "216.160.83.56"
T = datetime(2030, 1, 1, tzinfo=timezone.utc)
REF = re.compile(r"[0-9A-HJKMNP-TV-Z]{5}-[0-9A-HJKMNP-TV-Z]{5}")


def engine(**extra: object) -> Engine:
    config: dict[str, object] = {
        "geoip": {"country_db": CITY_DB, "reload_interval": 0},
        "rules": [
            {"name": "cn", "action": "block", "regions": ["CN"]},
            {"name": "gb", "action": "warn", "regions": ["GB"]},
        ],
        **extra,
    }
    return Engine.from_config(config)


def decide(e: Engine, ip: str, account: Account | None = None) -> str | None:
    return e.decide(RequestInfo(peer=ip, path="/v1/x"), T, account).ref


def test_blocks_and_warns_have_a_reference_allows_none() -> None:
    e = engine()
    block, warn, allow = decide(e, CN), decide(e, GB), decide(e, US)
    assert block is not None and REF.fullmatch(block) and len(block) == LENGTH
    assert warn is not None and REF.fullmatch(warn)
    assert allow is None


def test_the_same_client_and_rule_keep_their_reference_and_others_differ() -> None:
    e = engine()
    first = decide(e, CN)
    # Repeated (cached) and decided afresh by another engine of this process: the same.
    assert decide(e, CN) == first == decide(engine(), CN)
    assert decide(e, CN2) != first
    assert e.decide(RequestInfo(peer=CN, path="/other"), T).ref == first  # not per path


def test_the_reference_reveals_nothing_without_the_key() -> None:
    # Another key (another process) gives other references for the same facts.
    a, b = Refs(b"k" * 16), Refs(b"j" * 16)
    assert a.make(CN, "cn", "rule") != b.make(CN, "cn", "rule")
    assert a.make(CN, "cn", "rule") == Refs(b"k" * 16).make(CN, "cn", "rule")
    # Digits of the address never show through.
    assert not any(part in decide(engine(), CN) or "" for part in ("175", "199"))


def test_an_account_gets_its_own_reference() -> None:
    e = engine(accounts={"store": "memory://"})
    plain = decide(e, CN)
    mine, theirs = decide(e, CN, Account("org_a")), decide(e, CN, Account("org_b"))
    assert mine is not None and theirs is not None
    assert len({plain, mine, theirs}) == 3
    assert decide(e, CN, Account("org_a")) == mine


def test_a_database_failure_block_has_a_reference() -> None:
    assert Refs().make("1.2.3.4", None, "db_error") != Refs().make("1.2.3.5", None, "db_error")

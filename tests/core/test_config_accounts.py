"""Configuration of accounts: durations, [accounts], [strikes], exempt accounts, and the rule
keys home_regions, home_mismatch and account_grace. Every bad value names its key path."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import pytest

from geofence import ConfigError, load_policy
from geofence.config import AccountsPolicy, Policy, StrikesPolicy

ACCOUNTS: dict[str, Any] = {"accounts": {}}


def block(**fields: Any) -> dict[str, Any]:
    """A config with [accounts] and one block rule on CN with ``fields``."""
    return {**ACCOUNTS, "rules": [{"action": "block", "regions": ["CN"], **fields}]}


def error_of(config: Any) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_policy(config)
    error = caught.value
    assert str(error) == f"{error.key}: {error.reason}"
    return error


def assert_bad(config: Any, key: str, *fragments: str) -> ConfigError:
    error = error_of(config)
    assert error.key == key, str(error)
    for fragment in fragments:
        assert fragment in error.reason, str(error)
    return error


# -- durations ------------------------------------------------------------------------------------

# Every duration key, with a config that puts a value there (None: the key is left out).
DURATION_KEYS: dict[str, Any] = {
    "geoip.reload_interval": lambda v: {"geoip": {"reload_interval": v}},
    "accounts.timeout": lambda v: {"accounts": {"timeout": v}},
    "accounts.refresh": lambda v: {"accounts": {"refresh": v}},
    "strikes.window": lambda v: {**ACCOUNTS, "strikes": {"window": v}},
    "strikes.suspend_for": lambda v: {**ACCOUNTS, "strikes": {"suspend_for": v}},
    "rules[0].account_grace": lambda v: block(account_grace=v),
}


def seconds_at(key: str, policy: Policy) -> float:
    if key == "geoip.reload_interval":
        return policy.geoip.reload_interval
    if key.startswith("accounts."):
        assert policy.accounts is not None
        return float(getattr(policy.accounts, key.split(".")[1]))
    if key.startswith("strikes."):
        assert policy.strikes is not None
        return float(getattr(policy.strikes, key.split(".")[1]))
    grace = policy.rules[0].account_grace
    assert grace is not None
    return grace


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (1, 1.0),
        (90, 90.0),
        (86_400, 86_400.0),
        (60.0, 60.0),  # a whole number written as a float (JSON writers do that)
        ("1ms", 0.001),
        ("50ms", 0.05),
        ("250ms", 0.25),
        ("1500ms", 1.5),
        ("30s", 30.0),
        ("15m", 900.0),
        ("24h", 86_400.0),
        ("14d", 14 * 86_400.0),
        ("0010s", 10.0),  # leading zeros are harmless here (no octal reading)
        ("3650d", 3650 * 86_400.0),  # the longest duration
        (3650 * 86_400, 3650 * 86_400.0),
    ],
)
def test_durations(value: Any, seconds: float) -> None:
    policy = load_policy(DURATION_KEYS["strikes.window"](value))
    assert policy.strikes is not None
    assert policy.strikes.window == seconds
    assert isinstance(policy.strikes.window, float)


def test_milliseconds_are_exact() -> None:
    # 50 * 0.001 would be 0.05000000000000001; "50ms" must mean what the user wrote.
    policy = load_policy({"accounts": {"timeout": "50ms"}})
    assert policy.accounts is not None and policy.accounts.timeout == 0.05


# (value, fragment of the reason): refused by every duration key.
BAD_DURATIONS: list[tuple[Any, str]] = [
    ("1.5h", 'write "90m"'),
    ("1.5d", 'write "36h"'),
    ("0.5s", 'write "500ms"'),
    (".5s", 'write "500ms"'),
    ("1.0s", 'write "1s"'),
    ("0.5ms", "the smallest unit is ms"),
    ("10 s", 'write it without the space ("10s")'),
    ("50 ms", '("50ms")'),
    (" 5s", 'remove the spaces ("5s")'),
    ("5s\n", "remove the spaces"),
    ("-1s", "is negative"),
    ("-0s", "is negative"),
    ("+5s", "without the '+'"),
    ("", "is empty"),
    ("   ", "is empty"),
    ("14D", 'units are lower-case ms, s, m, h, d (did you mean "14d"?)'),
    ("10S", 'did you mean "10s"?'),
    ("10MS", 'did you mean "10ms"?'),
    ("1M", '"M" could be minutes or months'),
    ("10sec", 'write seconds as "s" ("10s")'),
    ("2 hours", 'without the space ("2h")'),
    ("5mins", '("5m")'),
    ("3days", '("3d")'),
    ("2w", 'weeks are written in days, e.g. "14d"'),
    ("1y", "months and years have no fixed length"),
    ("1mo", "months and years have no fixed length"),
    ("5us", "the smallest unit is ms"),
    ("5\u00b5s", "the smallest unit is ms"),
    ("1h30m", 'has more than one unit; a duration takes one; write "90m"'),
    ("1d12h", 'write "36h"'),
    ("60", 'has no unit; expected a number of seconds (60, not "60") or a string with one unit'),
    ("1.5", 'has no unit; write "1500ms"'),
    ("10x", "unknown unit 'x'; use one of ms, s, m, h, d"),
    ("1e3s", "unknown unit"),
    ("abc", "is not a duration; use an integer number of seconds or a string with one unit"),
    ("s", "is not a duration"),
    ("\uff15s", "is not a duration"),  # a full-width digit: ASCII digits only
    ("1" * 30 + "s", "far too large"),
    ("9" * 200, "is not a duration"),
    ("3651d", "is more than"),
    (3651 * 86_400, "is more than"),
    (10**400, "the number is more than"),
    (-1, "-1 is negative"),
    (True, "got a boolean (true)"),
    (False, "got a boolean (false)"),
    (None, "got nothing (None / null)"),
    (["1s"], "got a list"),
    ({"s": 1}, "got a table"),
    (math.nan, "nan is not allowed"),
    (math.inf, "inf is not allowed"),
    (-math.inf, "-inf is not allowed"),
    (-1.5, "-1.5 is negative"),
]


@pytest.mark.parametrize("key", list(DURATION_KEYS))
@pytest.mark.parametrize(("value", "fragment"), BAD_DURATIONS)
def test_bad_durations_name_the_key(key: str, value: Any, fragment: str) -> None:
    assert_bad(DURATION_KEYS[key](value), key, fragment)


def test_a_type_error_lists_the_forms() -> None:
    assert_bad(
        {"accounts": {"timeout": "50 mS"}},
        "accounts.timeout",
        "'50 mS': write it without the space (\"50ms\")",
    )
    error = assert_bad({"accounts": {"refresh": True}}, "accounts.refresh")
    assert error.reason == (
        'expected a duration (an integer number of seconds or a string with one unit: "250ms", '
        '"30s", "15m", "24h", "14d"), got a boolean (true)'
    )


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("accounts.timeout", 0, "must be more than 0 (every store call would fail at once)"),
        ("accounts.timeout", "0ms", "must be more than 0"),
        ("accounts.timeout", 11, "is more than 10s (it is how long a request may wait"),
        ("accounts.timeout", "10001ms", "is more than 10s"),
        ("accounts.timeout", 0.05, '0.05 is not a whole number of seconds; write "50ms"'),
        ("accounts.timeout", 1e-9, "use whole seconds or milliseconds"),
        ("accounts.refresh", "61m", "is more than 1h (a suspension made by another process"),
        ("accounts.refresh", -1, "use a duration >= 0"),
        ("strikes.window", 0, "must be more than 0"),
        ("strikes.window", "3651d", "is more than 3650d; use a shorter duration"),
        ("strikes.suspend_for", "-1s", "(0 = until cleared with geofence accounts clear)"),
        ("rules[0].account_grace", 0, "omit account_grace to block every account"),
        ("rules[0].account_grace", "0d", "must be more than 0"),
        ("geoip.reload_interval", -1, ">= 0, e.g. 60 (0 = never)"),
        ("geoip.reload_interval", "-1s", ">= 0"),
    ],
)
def test_duration_bounds_per_key(key: str, value: Any, fragment: str) -> None:
    assert_bad(DURATION_KEYS[key](value), key, fragment)


@pytest.mark.parametrize(
    ("key", "value", "seconds"),
    [
        ("accounts.timeout", "1ms", 0.001),
        ("accounts.timeout", "10s", 10.0),
        ("accounts.timeout", 10, 10.0),
        ("accounts.timeout", "10000ms", 10.0),
        ("accounts.refresh", 0, 0.0),
        ("accounts.refresh", "0s", 0.0),
        ("accounts.refresh", "1h", 3600.0),
        ("strikes.window", "1ms", 0.001),
        ("strikes.suspend_for", 0, 0.0),
        ("strikes.suspend_for", "3650d", 3650 * 86_400.0),
        ("rules[0].account_grace", "14d", 14 * 86_400.0),
        ("rules[0].account_grace", 1, 1.0),
        # reload_interval keeps what it took before durations had units: any number >= 0 ...
        ("geoip.reload_interval", 0, 0.0),
        ("geoip.reload_interval", 30.5, 30.5),
        ("geoip.reload_interval", 0.25, 0.25),
        # ... and takes units now, like every duration.
        ("geoip.reload_interval", "1m", 60.0),
        ("geoip.reload_interval", "500ms", 0.5),
        ("geoip.reload_interval", "0s", 0.0),
    ],
)
def test_duration_values_per_key(key: str, value: Any, seconds: float) -> None:
    assert seconds_at(key, load_policy(DURATION_KEYS[key](value))) == seconds


def test_reload_interval_strings_still_need_a_unit() -> None:
    assert_bad({"geoip": {"reload_interval": "60"}}, "geoip.reload_interval", '"60s"')
    assert_bad({"geoip": {"reload_interval": "30.5s"}}, "geoip.reload_interval", 'write "30500ms"')


# -- [accounts] -------------------------------------------------------------------------------


def test_no_accounts_table_means_no_accounts() -> None:
    policy = load_policy({})
    assert policy.accounts is None and policy.strikes is None and policy.exempt_accounts == ()


def test_empty_accounts_table_gives_the_defaults() -> None:
    policy = load_policy({"accounts": {}})
    assert policy.accounts == AccountsPolicy()
    assert policy.accounts == AccountsPolicy(
        store="memory://", key_prefix="geofence", timeout=0.05, refresh=5.0, on_store_error="local"
    )
    assert policy.strikes is None  # [strikes] is its own opt-in


def test_every_accounts_key() -> None:
    policy = load_policy(
        {
            "accounts": {
                "store": "memory://",
                "key_prefix": "myapp:geo-fence/v1.2_x",
                "timeout": "250ms",
                "refresh": "30s",
                "on_store_error": "block",
            }
        }
    )
    assert policy.accounts == AccountsPolicy(
        store="memory://",
        key_prefix="myapp:geo-fence/v1.2_x",
        timeout=0.25,
        refresh=30.0,
        on_store_error="block",
    )


@pytest.mark.parametrize("choice", ["local", "allow", "block"])
def test_on_store_error_choices(choice: str) -> None:
    policy = load_policy({"accounts": {"on_store_error": choice}})
    assert policy.accounts is not None and policy.accounts.on_store_error == choice


BAD_ACCOUNTS: list[tuple[dict[str, Any], str, str]] = [
    ({"accounts": 5}, "accounts", 'expected a table, e.g. {store = "memory://"}'),
    ({"accounts": "memory://"}, "accounts", "expected a table"),
    ({"accounts": ["memory://"]}, "accounts", "expected a table"),
    ({"accounts": None}, "accounts", "expected a table"),
    ({"accounts": {"stor": "memory://"}}, "accounts.stor", "did you mean 'store'?"),
    ({"accounts": {"Timeout": 1}}, "accounts.Timeout", "did you mean 'timeout'?"),
    ({"accounts": {"zzz": 1}}, "accounts.zzz", "accepts: key_prefix, on_store_error, refresh"),
    ({"accounts": {"threshold": 5}}, "accounts.threshold", "belongs in [strikes]"),
    ({"accounts": {"account_grace": "14d"}}, "accounts.account_grace", "belongs in a [[rules]]"),
    ({"timeout": "50ms"}, "timeout", "'timeout' belongs in [accounts]"),
    ({"store": "memory://"}, "store", "belongs in [accounts]"),
    ({"account": {}}, "account", "did you mean 'accounts'?"),
    # store
    ({"accounts": {"store": "memory://x"}}, "accounts.store", "memory:// takes no host"),
    ({"accounts": {"store": "ftp://x"}}, "accounts.store", "unknown scheme 'ftp://'"),
    ({"accounts": {"store": "memory"}}, "accounts.store", "is not a store URI"),
    ({"accounts": {"store": ""}}, "accounts.store", "is not a store URI"),
    ({"accounts": {"store": 5}}, "accounts.store", 'expected a store URI, e.g. "memory://"'),
    ({"accounts": {"store": None}}, "accounts.store", "got nothing"),
    # key_prefix
    ({"accounts": {"key_prefix": ""}}, "accounts.key_prefix", 'omit it for the default "geofence"'),
    ({"accounts": {"key_prefix": 5}}, "accounts.key_prefix", "expected a string"),
    ({"accounts": {"key_prefix": "a b"}}, "accounts.key_prefix", "whitespace or a control"),
    ({"accounts": {"key_prefix": "geofence "}}, "accounts.key_prefix", "whitespace"),
    ({"accounts": {"key_prefix": "a\tb"}}, "accounts.key_prefix", "whitespace"),
    ({"accounts": {"key_prefix": "a\x00b"}}, "accounts.key_prefix", "control character"),
    ({"accounts": {"key_prefix": "a\u200bb"}}, "accounts.key_prefix", "control character"),
    ({"accounts": {"key_prefix": "{app}"}}, "accounts.key_prefix", "Redis Cluster hash tags"),
    ({"accounts": {"key_prefix": "app}"}}, "accounts.key_prefix", "contains '}'"),
    ({"accounts": {"key_prefix": "app*"}}, "accounts.key_prefix", "pattern character of Redis"),
    ({"accounts": {"key_prefix": "app?"}}, "accounts.key_prefix", "SCAN"),
    ({"accounts": {"key_prefix": "app[1]"}}, "accounts.key_prefix", "SCAN"),
    ({"accounts": {"key_prefix": "a\\b"}}, "accounts.key_prefix", "SCAN"),
    ({"accounts": {"key_prefix": "caf\u00e9"}}, "accounts.key_prefix", "(ASCII)"),
    ({"accounts": {"key_prefix": "a,b"}}, "accounts.key_prefix", "use letters, digits"),
    ({"accounts": {"key_prefix": "x" * 65}}, "accounts.key_prefix", "keep it under 64"),
    # on_store_error
    ({"accounts": {"on_store_error": "fail"}}, "accounts.on_store_error", '"local", "allow"'),
    ({"accounts": {"on_store_error": "Local"}}, "accounts.on_store_error", "did you mean"),
    ({"accounts": {"on_store_error": True}}, "accounts.on_store_error", "got a boolean"),
]


@pytest.mark.parametrize(
    ("config", "key", "fragment"),
    BAD_ACCOUNTS,
    ids=[f"{k}-{i}" for i, (_, k, _) in enumerate(BAD_ACCOUNTS)],
)
def test_bad_accounts(config: dict[str, Any], key: str, fragment: str) -> None:
    assert_bad(config, key, fragment)


def test_key_prefix_at_the_length_limit() -> None:
    policy = load_policy({"accounts": {"key_prefix": "x" * 64}})
    assert policy.accounts is not None and policy.accounts.key_prefix == "x" * 64


def test_missing_redis_package_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from geofence.accounts import _uri

    def no_redis(uri: object) -> str:
        raise ModuleNotFoundError("No module named 'redis'", name="redis")

    monkeypatch.setattr(_uri, "check_store_uri", no_redis)
    error = assert_bad(
        {"accounts": {"store": "redis://:hunter2@db:6379/0"}},
        "accounts.store",
        "needs the redis package",
        'pip install "geofence-middleware[accounts]"',
    )
    assert "hunter2" not in str(error)  # the password is redacted


def test_other_import_errors_are_not_disguised(monkeypatch: pytest.MonkeyPatch) -> None:
    from geofence.accounts import _uri

    def broken(uri: object) -> str:
        raise ModuleNotFoundError("No module named 'geofence.nothing'", name="geofence.nothing")

    monkeypatch.setattr(_uri, "check_store_uri", broken)
    with pytest.raises(ModuleNotFoundError):
        load_policy({"accounts": {"store": "redis://db:6379/0"}})


HAS_REDIS = (
    importlib.util.find_spec("redis") is not None
    and importlib.util.find_spec("geofence.accounts._redis") is not None
)


@pytest.mark.skipif(not HAS_REDIS, reason="needs the redis package and geofence.accounts._redis")
@pytest.mark.parametrize(
    "uri",
    [
        "redis://localhost:6379/0",
        "rediss://cache.example.com:6380/0",
        "unix:///run/redis/redis.sock",
        "redis+cluster://h1:7000,h2:7000",
        "redis+sentinel://h1:26379,h2:26379/mymaster",
    ],
)
def test_redis_store_uris(uri: str) -> None:
    policy = load_policy({"accounts": {"store": uri}})
    assert policy.accounts is not None and policy.accounts.store == uri


# -- [strikes] --------------------------------------------------------------------------------


def test_empty_strikes_table_gives_the_defaults() -> None:
    policy = load_policy({**ACCOUNTS, "strikes": {}})
    assert policy.strikes == StrikesPolicy()
    assert policy.strikes == StrikesPolicy(
        count=frozenset({"block"}),
        threshold=50,
        window=86_400.0,
        action="suspend",
        suspend_for=30 * 86_400.0,
        status=403,
    )


def test_every_strikes_key() -> None:
    policy = load_policy(
        {
            **ACCOUNTS,
            "strikes": {
                "count": ["warn", "block", "warn"],
                "threshold": 3,
                "window": "15m",
                "action": "suspend",
                "suspend_for": 0,
                "status": 451,
            },
        }
    )
    assert policy.strikes == StrikesPolicy(
        count=frozenset({"block", "warn"}),
        threshold=3,
        window=900.0,
        action="suspend",
        suspend_for=0.0,
        status=451,
    )


def test_flag_strikes() -> None:
    policy = load_policy({**ACCOUNTS, "strikes": {"action": "flag", "suspend_for": "7d"}})
    assert policy.strikes is not None
    assert (policy.strikes.action, policy.strikes.suspend_for) == ("flag", 7 * 86_400.0)


@pytest.mark.parametrize("threshold", [1, 1_000_000])
def test_threshold_limits(threshold: int) -> None:
    policy = load_policy({**ACCOUNTS, "strikes": {"threshold": threshold}})
    assert policy.strikes is not None and policy.strikes.threshold == threshold


BAD_STRIKES: list[tuple[dict[str, Any], str, str]] = [
    ({"strikes": {}}, "strikes", "needs an [accounts] table"),
    ({"strikes": {"threshold": 5}}, "strikes", 'add [accounts] (store = "memory://" by default)'),
    ({"strikes": {"threshold": "x"}}, "strikes", "needs an [accounts] table"),  # first things first
    ({**ACCOUNTS, "strikes": 5}, "strikes", "expected a table"),
    ({**ACCOUNTS, "strikes": {"treshold": 5}}, "strikes.treshold", "did you mean 'threshold'?"),
    ({**ACCOUNTS, "strikes": {"timeout": 1}}, "strikes.timeout", "belongs in [accounts]"),
    ({"threshold": 5}, "threshold", "belongs in [strikes]"),
    ({"strike": {}}, "strike", "did you mean 'strikes'?"),
    # count
    ({**ACCOUNTS, "strikes": {"count": []}}, "strikes.count", "nothing would count as a strike"),
    ({**ACCOUNTS, "strikes": {"count": "block"}}, "strikes.count", 'write ["block"]'),
    ({**ACCOUNTS, "strikes": {"count": ["allow"]}}, "strikes.count[0]", '"block", "warn"'),
    ({**ACCOUNTS, "strikes": {"count": ["block", "Warn"]}}, "strikes.count[1]", "'warn'"),
    ({**ACCOUNTS, "strikes": {"count": [1]}}, "strikes.count[0]", "got an integer"),
    # threshold
    ({**ACCOUNTS, "strikes": {"threshold": 0}}, "strikes.threshold", "at least 1 (got 0)"),
    ({**ACCOUNTS, "strikes": {"threshold": -5}}, "strikes.threshold", "at least 1"),
    ({**ACCOUNTS, "strikes": {"threshold": 1_000_001}}, "strikes.threshold", "at most 1,000,000"),
    ({**ACCOUNTS, "strikes": {"threshold": True}}, "strikes.threshold", "got a boolean"),
    ({**ACCOUNTS, "strikes": {"threshold": 5.0}}, "strikes.threshold", "whole number of strikes"),
    ({**ACCOUNTS, "strikes": {"threshold": "50"}}, "strikes.threshold", "got a string"),
    # action
    ({**ACCOUNTS, "strikes": {"action": "ban"}}, "strikes.action", '"flag", "suspend"'),
    ({**ACCOUNTS, "strikes": {"action": "suspended"}}, "strikes.action", "did you mean"),
    # status
    (
        {**ACCOUNTS, "strikes": {"status": 404}},
        "strikes.status",
        "use 403 (Forbidden, the default)",
    ),
    ({**ACCOUNTS, "strikes": {"status": "403"}}, "strikes.status", "got a string"),
    ({**ACCOUNTS, "strikes": {"status": True}}, "strikes.status", "got a boolean"),
    (
        {**ACCOUNTS, "strikes": {"action": "flag", "status": 403}},
        "strikes.status",
        'action = "flag" suspends nobody',
    ),
]


@pytest.mark.parametrize(
    ("config", "key", "fragment"),
    BAD_STRIKES,
    ids=[f"{k}-{i}" for i, (_, k, _) in enumerate(BAD_STRIKES)],
)
def test_bad_strikes(config: dict[str, Any], key: str, fragment: str) -> None:
    assert_bad(config, key, fragment)


# -- rule keys ----------------------------------------------------------------------------------


def test_rule_account_keys_default_to_nothing() -> None:
    rule = load_policy(block()).rules[0]
    assert (rule.home_regions, rule.home_mismatch, rule.account_grace) == ((), False, None)


def test_home_regions_are_normalised_like_regions() -> None:
    policy = load_policy(
        {
            **ACCOUNTS,
            "regions": {"sanctioned": ["CU", "IR", "KP"]},
            "rules": [
                {
                    "action": "block",
                    "home_regions": ["CN", "@sanctioned", "RU", "IR", "XK", "CN"],
                    "home_mismatch": True,
                    "account_grace": "14d",
                }
            ],
        }
    )
    rule = policy.rules[0]
    assert rule.home_regions == ("CN", "CU", "IR", "KP", "RU", "XK")
    assert rule.home_mismatch is True
    assert rule.account_grace == 14 * 86_400.0


def test_a_block_rule_with_only_account_conditions_is_a_rule() -> None:
    # home_regions and home_mismatch are conditions: not "a block rule that blocks everything".
    only_home = {**ACCOUNTS, "rules": [{"action": "block", "home_regions": ["CN"]}]}
    assert load_policy(only_home).rules[0].home_regions == ("CN",)
    only_mismatch = {**ACCOUNTS, "rules": [{"action": "block", "home_mismatch": True}]}
    assert load_policy(only_mismatch).rules[0].home_mismatch is True
    # An empty home_regions and a false home_mismatch are no conditions at all.
    nothing = {
        **ACCOUNTS,
        "rules": [{"action": "block", "home_regions": [], "home_mismatch": False}],
    }
    assert_bad(nothing, "rules[0]", "would block every request")


def test_account_conditions_on_warn_and_allow_rules() -> None:
    policy = load_policy(
        {
            **ACCOUNTS,
            "rules": [
                {"action": "warn", "home_regions": ["RU"]},
                {"action": "allow", "home_mismatch": True},
            ],
        }
    )
    assert policy.rules[0].home_regions == ("RU",) and policy.rules[1].home_mismatch is True


def test_account_grace_with_report_mode_and_dates() -> None:
    rule = load_policy(
        block(
            mode="report",
            warn_from="2024-06-25T00:00:00Z",
            enforce_from="2024-07-09T00:00:00Z",
            account_grace="336h",
        )
    ).rules[0]
    assert rule.account_grace == 14 * 86_400.0 and rule.mode == "report"


def test_no_op_account_keys_need_no_accounts_table() -> None:
    # Empty lists and false ask nothing of an Account (templates often carry them).
    policy = load_policy(
        {
            "rules": [
                {"action": "block", "regions": ["CN"], "home_regions": [], "home_mismatch": False}
            ],
            "exempt": {"accounts": []},
        }
    )
    assert policy.accounts is None and policy.rules[0].home_regions == ()


BAD_RULES: list[tuple[dict[str, Any], str, str]] = [
    # needs [accounts]
    (
        {"rules": [{"action": "block", "regions": ["CN"], "account_grace": "14d"}]},
        "rules[0].account_grace",
        'needs an [accounts] table (per-account state); add [accounts] (store = "memory://" by '
        "default)",
    ),
    (
        {"rules": [{"action": "block", "home_regions": ["CN"]}]},
        "rules[0].home_regions",
        "needs an [accounts] table",
    ),
    (
        {"rules": [{"action": "block", "regions": ["CN"], "home_mismatch": True}]},
        "rules[0].home_mismatch",
        "needs an [accounts] table",
    ),
    (
        {"rules": [{"action": "warn", "home_regions": ["CN"]}]},
        "rules[0].home_regions",
        "add [accounts]",
    ),
    # home_regions
    (block(home_regions="CN"), "rules[0].home_regions", 'write ["CN"]'),
    (block(home_regions=["UK"]), "rules[0].home_regions[0]", "did you mean 'GB'?"),
    (block(home_regions=["CN", "cn"]), "rules[0].home_regions[1]", "did you mean 'CN'?"),
    (block(home_regions=[5]), "rules[0].home_regions[0]", "expected a region code string"),
    (block(home_regions=[""]), "rules[0].home_regions[0]", "empty region code"),
    (
        block(home_regions=["UA-43"]),
        "rules[0].home_regions[0]",
        "'UA-43' is a subdivision, and an account's home_country is a country; write 'UA'",
    ),
    (block(home_regions=["GB-ENG"]), "rules[0].home_regions[0]", "regions = ['GB-ENG']"),
    (block(home_regions=["*"]), "rules[0].home_regions[0]", "omit home_regions to match every"),
    (block(home_regions=["unknown"]), "rules[0].home_regions[0]", "without a home_country"),
    (block(home_regions=["@nope"]), "rules[0].home_regions[0]", "no groups are defined"),
    (
        {**block(home_regions=["CN", "@sanctioned"]), "regions": {"sanctioned": ["CU", "UA-43"]}},
        "rules[0].home_regions[1]",
        "the group '@sanctioned' contains 'UA-43', which is not a country",
    ),
    (
        {**block(home_regions=["@anywhere"]), "regions": {"anywhere": ["*"]}},
        "rules[0].home_regions[0]",
        "list the group's countries here instead",
    ),
    # home_mismatch
    (block(home_mismatch="yes"), "rules[0].home_mismatch", "expected true or false"),
    (block(home_mismatch=1), "rules[0].home_mismatch", "got an integer"),
    (block(home_mismatch=None), "rules[0].home_mismatch", "got nothing"),
    # account_grace
    (
        {**ACCOUNTS, "rules": [{"action": "warn", "regions": ["CN"], "account_grace": "14d"}]},
        "rules[0].account_grace",
        "only applies to block rules (it delays the block for each account), and this rule "
        'is "warn"',
    ),
    (
        {**ACCOUNTS, "rules": [{"action": "allow", "regions": ["CN"], "account_grace": 60}]},
        "rules[0].account_grace",
        'this rule is "allow"',
    ),
    (block(account_grace="14 days"), "rules[0].account_grace", '("14d")'),
    (block(account_grace=None), "rules[0].account_grace", "got nothing"),
    # unknown keys
    (block(home_region=["CN"]), "rules[0].home_region", "did you mean 'home_regions'?"),
    (block(grace="14d"), "rules[0].grace", "unknown key"),
    ({"home_regions": ["CN"]}, "home_regions", "belongs in a [[rules]] entry"),
]


@pytest.mark.parametrize(
    ("config", "key", "fragment"),
    BAD_RULES,
    ids=[f"{k}-{i}" for i, (_, k, _) in enumerate(BAD_RULES)],
)
def test_bad_rule_account_keys(config: dict[str, Any], key: str, fragment: str) -> None:
    assert_bad(config, key, fragment)


def test_the_second_rule_is_named() -> None:
    config = {
        "rules": [
            {"action": "block", "regions": ["RU"]},
            {"action": "block", "regions": ["CN"], "account_grace": "1d"},
        ]
    }
    assert_bad(config, "rules[1].account_grace", "needs an [accounts] table")


# -- [exempt] accounts ------------------------------------------------------------------------


def test_exempt_accounts_are_kept_as_written() -> None:
    policy = load_policy(
        {
            **ACCOUNTS,
            # A [regions] group of the same name changes nothing: "@name" in exempt.accounts is
            # a name in Account.groups, the app's own groups.
            "regions": {"enterprise": ["CN"]},
            "exempt": {
                "accounts": ["org_a1", "@enterprise", "Org_A1", "org_a1", "@staff", "user 42"]
            },
        }
    )
    assert policy.exempt_accounts == ("org_a1", "@enterprise", "Org_A1", "@staff", "user 42")


BAD_EXEMPT: list[tuple[dict[str, Any], str, str]] = [
    ({"exempt": {"accounts": ["org_a1"]}}, "exempt.accounts", "needs an [accounts] table"),
    ({"exempt": {"accounts": ["@staff"]}}, "exempt.accounts", "add [accounts]"),
    ({**ACCOUNTS, "exempt": {"accounts": "org_a1"}}, "exempt.accounts", 'write ["org_a1"]'),
    ({**ACCOUNTS, "exempt": {"accounts": 5}}, "exempt.accounts", "got an integer"),
    ({**ACCOUNTS, "exempt": {"accounts": [5]}}, "exempt.accounts[0]", "expected an account id"),
    ({**ACCOUNTS, "exempt": {"accounts": ["a", None]}}, "exempt.accounts[1]", "got nothing"),
    ({**ACCOUNTS, "exempt": {"accounts": [""]}}, "exempt.accounts[0]", "is empty"),
    ({**ACCOUNTS, "exempt": {"accounts": ["  "]}}, "exempt.accounts[0]", "is empty"),
    ({**ACCOUNTS, "exempt": {"accounts": ["@"]}}, "exempt.accounts[0]", "'@' names no group"),
    ({**ACCOUNTS, "exempt": {"accounts": ["@ "]}}, "exempt.accounts[0]", "names no group"),
    ({**ACCOUNTS, "exempt": {"accounts": [" org"]}}, "exempt.accounts[0]", "compared exactly"),
    ({**ACCOUNTS, "exempt": {"accounts": ["org "]}}, "exempt.accounts[0]", "remove them"),
    ({**ACCOUNTS, "exempt": {"accounts": ["@ staff"]}}, "exempt.accounts[0]", "at the start"),
    ({**ACCOUNTS, "exempt": {"accounts": ["a\nb"]}}, "exempt.accounts[0]", "control character"),
    ({**ACCOUNTS, "exempt": {"accounts": ["x" * 257]}}, "exempt.accounts[0]", "under 256"),
    ({**ACCOUNTS, "exempt": {"account": ["a"]}}, "exempt.account", "did you mean 'accounts'?"),
]


@pytest.mark.parametrize(
    ("config", "key", "fragment"),
    BAD_EXEMPT,
    ids=[f"{k}-{i}" for i, (_, k, _) in enumerate(BAD_EXEMPT)],
)
def test_bad_exempt_accounts(config: dict[str, Any], key: str, fragment: str) -> None:
    assert_bad(config, key, fragment)


# -- order, files ---------------------------------------------------------------------------------


def test_errors_follow_schema_order() -> None:
    # A rule comes before [accounts] in the schema, so its error is reported first.
    config = {
        "accounts": {"timeout": "soon"},
        "rules": [{"action": "block", "regions": ["UK"]}],
    }
    assert error_of(config).key == "rules[0].regions[0]"
    # A malformed [accounts] still counts as present for the keys that need it: the error is
    # the one in [accounts], not "needs an [accounts] table".
    config = {**block(account_grace="1d"), "accounts": {"timeout": "soon"}}
    assert error_of(config).key == "accounts.timeout"


TOML = """
[geoip]
reload_interval = "5m"

[regions]
sanctioned = ["CU", "IR"]

[[rules]]
name = "unsupported-regions"
action = "block"
regions = ["CN", "RU", "@sanctioned"]
home_regions = ["CN", "@sanctioned"]
warn_from = 2024-06-25T00:00:00Z
enforce_from = 2024-07-09T00:00:00Z
account_grace = "14d"

[[rules]]
name = "vpn-from-home"
action = "block"
home_mismatch = true

[exempt]
accounts = ["org_a1", "@enterprise"]

[accounts]
store = "memory://"
key_prefix = "geofence"
timeout = "50ms"
refresh = "5s"
on_store_error = "local"

[strikes]
count = ["block"]
threshold = 50
window = "24h"
action = "suspend"
suspend_for = "30d"
status = 403
"""


def check_full(policy: Policy) -> None:
    assert policy.geoip.reload_interval == 300.0
    first, second = policy.rules
    assert first.home_regions == ("CN", "CU", "IR")
    assert first.account_grace == 14 * 86_400.0
    assert second.home_mismatch is True and second.account_grace is None
    assert policy.exempt_accounts == ("org_a1", "@enterprise")
    assert policy.accounts == AccountsPolicy()
    assert policy.strikes == StrikesPolicy()


def test_toml_file(tmp_path: Path) -> None:
    path = tmp_path / "geofence.toml"
    path.write_text(TOML, encoding="utf-8")
    check_full(load_policy(path))


JSON: dict[str, Any] = {
    "geoip": {"reload_interval": "5m"},
    "regions": {"sanctioned": ["CU", "IR"]},
    "rules": [
        {
            "name": "unsupported-regions",
            "action": "block",
            "regions": ["CN", "RU", "@sanctioned"],
            "home_regions": ["CN", "@sanctioned"],
            "warn_from": "2024-06-25T00:00:00Z",
            "enforce_from": "2024-07-09T00:00:00Z",
            "account_grace": "14d",
        },
        {"name": "vpn-from-home", "action": "block", "home_mismatch": True},
    ],
    "exempt": {"accounts": ["org_a1", "@enterprise"]},
    "accounts": {
        "store": "memory://",
        "key_prefix": "geofence",
        "timeout": "50ms",
        "refresh": "5s",
        "on_store_error": "local",
    },
    "strikes": {
        "count": ["block"],
        "threshold": 50,
        "window": "24h",
        "action": "suspend",
        "suspend_for": "30d",
        "status": 403,
    },
}


def test_json_file(tmp_path: Path) -> None:
    path = tmp_path / "geofence.json"
    path.write_text(json.dumps(JSON), encoding="utf-8")
    check_full(load_policy(path))


def test_dict() -> None:
    check_full(load_policy(JSON))


def test_empty_accounts_table_in_toml(tmp_path: Path) -> None:
    path = tmp_path / "g.toml"
    path.write_text("[accounts]\n\n[strikes]\n", encoding="utf-8")
    policy = load_policy(path)
    assert policy.accounts == AccountsPolicy() and policy.strikes == StrikesPolicy()


def test_json_empty_accounts_and_integer_seconds(tmp_path: Path) -> None:
    path = tmp_path / "g.json"
    path.write_text(
        '{"accounts": {"timeout": 1, "refresh": 0}, "strikes": {"window": 3600.0}}',
        encoding="utf-8",
    )
    policy = load_policy(path)
    assert policy.accounts == AccountsPolicy(timeout=1.0, refresh=0.0)
    assert policy.strikes is not None and policy.strikes.window == 3600.0


@pytest.mark.parametrize(
    ("name", "text", "key", "fragment"),
    [
        ("g.toml", '[accounts]\ntimeout = "50 ms"\n', "accounts.timeout", '("50ms")'),
        ("g.toml", "[strikes]\nthreshold = 5\n", "strikes", "needs an [accounts] table"),
        ("g.toml", "[accounts]\n[strikes]\nwindow = 1.5\n", "strikes.window", 'write "1500ms"'),
        ("g.json", '{"accounts": {"refresh": "1.5h"}}', "accounts.refresh", 'write "90m"'),
        ("g.json", '{"exempt": {"accounts": ["a"]}}', "exempt.accounts", "needs an [accounts]"),
    ],
)
def test_errors_in_files_name_key_and_file(
    tmp_path: Path, name: str, text: str, key: str, fragment: str
) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    error = assert_bad(path, key, fragment)
    assert error.reason.endswith(f"(in {path})")

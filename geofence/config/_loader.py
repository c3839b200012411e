"""Load and validate a configuration (dict, TOML file or JSON file) into a :class:`Policy`.

Every problem raises ``ConfigError(key_path, reason)``, where the reason says what was expected
and how to fix it. Nothing is dropped or guessed silently: a policy decides who gets blocked,
so a typo must stop the app at startup instead of quietly matching nobody (or everybody).
"""

from __future__ import annotations

import os
import re
import string
import sys
from collections.abc import Collection, Mapping, Sequence
from datetime import date, datetime, time, timedelta, timezone
from ipaddress import IPv4Network, IPv6Address, IPv6Network, ip_network
from types import MappingProxyType
from typing import Any, Literal, NoReturn, TypeVar

from geofence._errors import ConfigError
from geofence.clientip._headers import HEADER_NAMES, SINGLE_VALUED_HEADERS
from geofence.config._policy import (
    ANONYMIZERS,
    LOADER,
    READERS,
    AccountsPolicy,
    ClientIPPolicy,
    GeoIPPolicy,
    Message,
    MetricsPolicy,
    Network,
    PagePolicy,
    Policy,
    RulePolicy,
    StrikesPolicy,
)
from geofence.http._locale import SHIPPED
from geofence.http._locale import canonical as canonical_language
from geofence.rules import (
    ANY,
    GROUP_NAME,
    UNKNOWN,
    GlobError,
    RegionCodeError,
    check_code,
    glob_to_regex,
    is_country,
    is_subdivision,
)
from geofence.rules._groups import BUILTIN_GROUPS

# tomllib, json, difflib, unicodedata, urllib.parse and importlib.util are imported by the
# functions that use them: an engine built from a mapping with no hint to give needs none, and
# each costs resident memory in every worker (tests/test_import_cost.py).

T = TypeVar("T", bound=str)

MODES: tuple[Literal["enforce", "report", "off"], ...] = ("enforce", "report", "off")
DEFAULTS: tuple[Literal["allow", "block"], ...] = ("allow", "block")
ON_ERROR: tuple[Literal["allow", "block"], ...] = ("allow", "block")
ACTIONS: tuple[Literal["block", "warn", "allow"], ...] = ("block", "warn", "allow")
RULE_MODES: tuple[Literal["enforce", "report"], ...] = ("enforce", "report")
ON_STORE_ERROR: tuple[Literal["local", "allow", "block"], ...] = ("local", "allow", "block")
STRIKE_COUNTS = ("block", "warn")
STRIKE_ACTIONS: tuple[Literal["flag", "suspend"], ...] = ("flag", "suspend")

TOP_KEYS = (
    "mode",
    "default",
    "allow_private",
    "on_error",
    "info_url",
    "message",
    "client_ip",
    "geoip",
    "regions",
    "rules",
    "exempt",
    "accounts",
    "strikes",
    "page",
    "metrics",
)
CLIENT_IP_KEYS = ("trusted_proxies", "header", "hops")
GEOIP_KEYS = ("country_db", "anonymous_db", "asn_db", "reload_interval", "reader", "max_age")
RULE_KEYS = (
    "name",
    "action",
    "regions",
    "except_regions",
    "anonymizers",
    "asns",
    "hosts",
    "paths",
    "methods",
    "warn_from",
    "enforce_from",
    "status",
    "mode",
    "home_regions",
    "home_mismatch",
    "account_grace",
    "message",
    "code",
    "info_url",
)
EXEMPT_KEYS = ("ips", "paths", "accounts")
ACCOUNTS_KEYS = ("store", "key_prefix", "timeout", "refresh", "on_store_error")
STRIKES_KEYS = ("count", "threshold", "window", "action", "suspend_for", "status")
PAGE_KEYS = ("languages", "default_language", "template")
METRICS_KEYS = ("prometheus", "opentelemetry")

# Where each key lives, to answer "unknown key" with "it belongs in [geoip]".
_SECTIONS = {
    "the top level": TOP_KEYS,
    "[client_ip]": CLIENT_IP_KEYS,
    "[geoip]": GEOIP_KEYS,
    "a [[rules]] entry": RULE_KEYS,
    "[exempt]": EXEMPT_KEYS,
    "[accounts]": ACCOUNTS_KEYS,
    "[strikes]": STRIKES_KEYS,
    "[page]": PAGE_KEYS,
    "[metrics]": METRICS_KEYS,
}

MAX_HOPS = 32  # more proxies than this in front of one app is a typo, not a deployment
MAX_MESSAGE = 1000
MAX_URL = 2000
MAX_NAME = 200
STATUSES = (451, 403)
STRIKE_STATUSES = (403, 451)
MAX_THRESHOLD = 1_000_000  # strikes; more is a typo (or a threshold that is never reached)
MAX_KEY_PREFIX = 64
MAX_ACCOUNT_ID = 256

# Durations (DESIGN "Durations"): an integer number of seconds, or "<digits><unit>".
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0}
_DURATION = re.compile(r"([0-9]+)(ms|s|m|h|d)\Z")
_DURATION_FORMS = (
    'an integer number of seconds or a string with one unit: "250ms", "30s", "15m", "24h", "14d"'
)
MAX_DURATION = 3650 * 86_400.0  # 10 years: any duration longer than that is a typo
MAX_TIMEOUT = 10.0  # accounts.timeout bounds the wait of a request on the store
MAX_REFRESH = 3600.0  # accounts.refresh delays another process's suspension by up to this
_DIGITS_SHOWN = 15  # longer numbers are not shown back in full (and are far too large anyway)

# RFC 9110 token characters: what an HTTP method may consist of.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_ISO_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))?\Z"
)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")
_TIME_EXAMPLE = '"2024-07-09T00:00:00Z"'

# Address ranges that carry an IPv4 address. The client-IP resolver counts such a peer as its
# IPv4 address, so a network written in these ranges must be rewritten to IPv4 or refused:
# kept as IPv6 it would never match anything.
_MAPPED = IPv6Network("::ffff:0:0/96")
_NAT64 = IPv6Network("64:ff9b::/96")
_6TO4 = IPv6Network("2002::/16")
_TEREDO = IPv6Network("2001::/32")
_EMBEDDED_IPV4 = (
    (_MAPPED, "IPv4-mapped"),
    (_NAT64, "NAT64"),
    (_6TO4, "6to4"),
    (_TEREDO, "Teredo"),
)


def load_policy(obj: Mapping[str, Any] | str | os.PathLike[str]) -> Policy:
    """Validate ``obj`` (a mapping, or a path to a ``.toml`` / ``.json`` file).

    Relative database paths are resolved against the config file's directory, or against the
    current directory for a mapping. Raises :class:`ConfigError` on the first problem found.
    """
    if isinstance(obj, Mapping):
        return _Loader(base_dir=None).policy(obj)
    if isinstance(obj, str | os.PathLike):
        shown = os.fspath(obj)
        if not isinstance(shown, str):
            raise ConfigError("", f"config path must be text, got bytes {shown!r}")
        data, base_dir = _read_file(shown)
        try:
            return _Loader(base_dir=base_dir).policy(data)
        except ConfigError as error:
            raise ConfigError(error.key, f"{error.reason} (in {shown})") from None
    raise ConfigError(
        "",
        "expected a mapping (dict) or the path of a .toml / .json file, got " + _kind(obj),
    )


# -- files -------------------------------------------------------------------------------------


class _DuplicateKeyError(Exception):
    pass


def _read_file(shown: str) -> tuple[Mapping[str, Any], str]:
    path = os.path.abspath(os.path.expanduser(shown))
    extension = os.path.splitext(path)[1].lower()
    if extension not in (".toml", ".json"):
        found = f"{extension!r}" if extension else "no extension"
        raise ConfigError(
            shown, f"unknown config file type ({found}); geofence reads .toml and .json files"
        )
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise ConfigError(shown, "no such file; check the path") from None
    except IsADirectoryError:
        raise ConfigError(shown, "is a directory; give the path of a .toml or .json file") from None
    except PermissionError:
        raise ConfigError(shown, "permission denied; make the file readable by the app") from None
    except OSError as error:
        raise ConfigError(shown, f"cannot read the file: {error.strerror or error}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ConfigError(
            shown, f"line {line}: the file is not UTF-8 text; save it as UTF-8"
        ) from None
    data = _parse_toml(shown, text) if extension == ".toml" else _parse_json(shown, text)
    return data, os.path.dirname(path)


def _parse_toml(shown: str, text: str) -> Mapping[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised by the Python 3.10 CI job
        import tomli as tomllib  # type: ignore[import-not-found,unused-ignore]

    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        where = re.search(r"\s*\(at line (\d+), column (\d+)\)\s*$", message)
        if where:
            message = message[: where.start()]
            place = f"line {where.group(1)}, column {where.group(2)}"
        else:
            message = re.sub(r"\s*\(at end of document\)\s*$", "", message)
            place = "end of file"
        raise ConfigError(shown, f"{place}: {message} (TOML syntax error)") from None
    except RecursionError:
        raise ConfigError(shown, "nested too deeply to be a geofence config") from None
    return data


def _parse_json(shown: str, text: str) -> Mapping[str, Any]:
    import json

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in items:
            if key in result:
                raise _DuplicateKeyError(key)
            result[key] = value
        return result

    def constant(name: str) -> NoReturn:
        raise ValueError(f"{name} is not a JSON number")

    try:
        data = json.loads(text, object_pairs_hook=pairs, parse_constant=constant)
    except json.JSONDecodeError as error:
        raise ConfigError(
            shown, f"line {error.lineno}, column {error.colno}: {error.msg} (JSON syntax error)"
        ) from None
    except _DuplicateKeyError as error:
        raise ConfigError(
            shown, f"duplicate key {error.args[0]!r}; each key may appear once per object"
        ) from None
    except ValueError as error:
        raise ConfigError(shown, f"{error}; write a number") from None
    except RecursionError:
        raise ConfigError(shown, "nested too deeply to be a geofence config") from None
    if not isinstance(data, dict):
        raise ConfigError(
            shown, f"the top level must be a JSON object ({{...}}), got {_kind(data)}"
        )
    return data


# -- the schema ----------------------------------------------------------------------------------


class _Loader:
    def __init__(self, base_dir: str | None) -> None:
        # None: relative paths are taken from the current directory (a dict config).
        self.base_dir = base_dir

    def policy(self, raw: Mapping[str, Any]) -> Policy:
        # Checked in the order of the schema, so the first error reported is the first in the file.
        _check_keys(raw, TOP_KEYS, "", "the top level")
        mode = _choice(raw, "mode", MODES, "enforce")
        default = _choice(raw, "default", DEFAULTS, "allow")
        allow_private = _bool(raw, "allow_private", True)
        on_error = _choice(raw, "on_error", ON_ERROR, "allow")
        info_url = _info_url(raw.get("info_url"))
        # [page] first: the languages a message table may use are the shipped ones, and its
        # JSON text falls back to the page's default language.
        page = self.page(_table(raw, "page", 'e.g. {default_language = "en"}'))
        messages = _messages(raw["message"], "message", page) if "message" in raw else Message()
        client_ip = _client_ip(_table(raw, "client_ip", 'e.g. {trusted_proxies = ["10.0.0.0/8"]}'))
        geoip = self.geoip(_table(raw, "geoip", 'e.g. {country_db = "/var/lib/GeoIP/x.mmdb"}'))
        groups = _groups(raw.get("regions", {}))
        # Whether [accounts] is there at all: rules and exemptions that need it say so first,
        # and the table itself is checked where it stands in the schema.
        has_accounts = "accounts" in raw
        rules = _rules(raw.get("rules", []), groups, geoip, has_accounts, page)
        exempt = _table(raw, "exempt", 'e.g. {paths = ["/healthz"]}')
        _check_keys(exempt, EXEMPT_KEYS, "exempt", "[exempt]")
        exempt_ips = _networks(exempt.get("ips", []), "exempt.ips", trust=False)
        exempt_paths = _paths(exempt.get("paths", []), "exempt.paths")
        exempt_accounts = _exempt_accounts(exempt.get("accounts", []), "exempt.accounts")
        if exempt_accounts and not has_accounts:
            _needs_accounts("exempt.accounts", "exempt accounts are matched on the Account")
        accounts = (
            _accounts(_table(raw, "accounts", 'e.g. {store = "memory://"}'))
            if has_accounts
            else None
        )
        strikes = None
        if "strikes" in raw:
            table = _table(raw, "strikes", 'e.g. {threshold = 50, window = "24h"}')
            if accounts is None:
                _needs_accounts("strikes", "strikes are counted per account, in the account store")
            strikes = _strikes(table)
        return Policy(
            mode=mode,
            default=default,
            allow_private=allow_private,
            on_error=on_error,
            info_url=info_url,
            message=messages.text,
            client_ip=client_ip,
            geoip=geoip,
            regions=MappingProxyType(groups),
            rules=rules,
            exempt_ips=exempt_ips,
            exempt_paths=exempt_paths,
            accounts=accounts,
            strikes=strikes,
            exempt_accounts=exempt_accounts,
            messages=messages,
            page=page,
            metrics=_metrics(_table(raw, "metrics", "e.g. {prometheus = true}")),
            made_by=LOADER,  # the only Policy(...) call that succeeds (see _policy.py)
        )

    def geoip(self, raw: Mapping[str, Any]) -> GeoIPPolicy:
        _check_keys(raw, GEOIP_KEYS, "geoip", "[geoip]")
        return GeoIPPolicy(
            country_db=self.db_path(raw.get("country_db"), "geoip.country_db"),
            anonymous_db=self.db_path(raw.get("anonymous_db"), "geoip.anonymous_db"),
            asn_db=self.db_path(raw.get("asn_db"), "geoip.asn_db"),
            reload_interval=_duration(
                raw.get("reload_interval", 60),
                "geoip.reload_interval",
                example="60",
                zero="0 = never",
                # Before durations had units this key took any number of seconds: it still does.
                fractions=True,
            ),
            reader=_choice(raw, "reader", READERS, "auto", prefix="geoip."),
            max_age=(
                _duration(raw["max_age"], "geoip.max_age", example='"30d"')
                if "max_age" in raw
                else None
            ),
        )

    def page(self, raw: Mapping[str, Any]) -> PagePolicy:
        _check_keys(raw, PAGE_KEYS, "page", "[page]")
        languages = SHIPPED
        if "languages" in raw:
            values = _list(raw["languages"], "page.languages", 'language tags, e.g. ["en", "es"]')
            if not values:
                _fail("page.languages", 'is empty; list at least one, e.g. ["en"], or omit it')
            languages = _unique(
                [_language(v, f"page.languages[{i}]") for i, v in enumerate(values)]
            )
        default_language = languages[0] if "en" not in languages else "en"
        if "default_language" in raw:
            default_language = _language(raw["default_language"], "page.default_language")
            if default_language not in languages:
                _fail(
                    "page.default_language",
                    f"{default_language!r} is not in page.languages; add it there or pick one "
                    f"of {', '.join(languages)}",
                )
        template = path = None
        if "template" in raw:
            path = self.db_path(raw["template"], "page.template", "templates/blocked.html")
            assert path is not None
            template = _template(path)
        return PagePolicy(languages, default_language, template, path)

    def db_path(
        self, value: Any, key: str, example: str = "/var/lib/GeoIP/City.mmdb"
    ) -> str | None:
        if value is None:
            return None
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str):
            _fail(
                key,
                f'expected a file path, e.g. "{example}", got {_kind(value)}',
            )
        if not value.strip():
            hint = "; omit it to use the embedded default" if key.endswith("country_db") else ""
            _fail(key, f"is empty{hint}")
        if "\x00" in value:
            _fail(key, "contains a NUL character; write the file's path")
        path = os.path.expanduser(value)
        if self.base_dir is not None:
            # Relative to the config file, so the file works wherever the app is started.
            return os.path.normpath(os.path.join(self.base_dir, path))
        return os.path.abspath(path)


def _messages(value: Any, key: str, page: PagePolicy) -> Message:
    """A message: one string for every language, or a table of shipped language -> text."""
    if not isinstance(value, Mapping):
        return Message(_message(value, key), own=True)
    if not value:
        _fail(key, 'is an empty table; write {en = "...", es = "..."} or one string')
    table: dict[str, str] = {}
    for tag, text in value.items():
        language = _language(tag, f"{key}.{tag}")
        if language in table:
            _fail(f"{key}.{tag}", f"repeats the language {language!r}")
        table[language] = _message(text, f"{key}.{tag}")
    # JSON bodies stay English (API clients key on the code); then the page's default.
    first = next(iter(table.values()))
    text = table.get("en") or table.get(page.default_language) or first
    return Message(text, MappingProxyType(table), own=True)


def _language(value: Any, key: str) -> str:
    shipped = ", ".join(SHIPPED)
    if not isinstance(value, str):
        _fail(key, f"expected a language tag ({shipped}), got {_kind(value)}")
    tag = canonical_language(value)
    if tag is None:
        folded = value.strip().lower().replace("_", "-")
        hint = _LANGUAGE_HINTS.get(folded) or _LANGUAGE_HINTS.get(folded.partition("-")[0])
        fix = f"write {hint!r}" if hint else f"geofence ships pages in {shipped}"
        _fail(key, f"{value!r} is not a language geofence ships a page for; {fix}")
    return tag


# Tags people write for the shipped languages, e.g. a region where a script is meant.
_LANGUAGE_HINTS = {
    "zh": "zh-Hans",
    "zh-cn": "zh-Hans",
    "zh-sg": "zh-Hans",
    "zh-tw": "zh-Hant",
    "zh-hk": "zh-Hant",
    "zh-mo": "zh-Hant",
    "en-us": "en",
    "en-gb": "en",
}


def _error_code(value: Any, key: str) -> str:
    if not isinstance(value, str) or not _CODE.fullmatch(value):
        shown = repr(value) if isinstance(value, str) else _kind(value)
        _fail(
            key,
            f"{shown} is not an error code; API clients key on it, so use lower-case letters, "
            'digits and "_" (at most 64, starting with a letter), e.g. "vpn_not_allowed"',
        )
    return value


_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")
# What a [page] template may show (DESIGN "[page]"); each value is escaped for HTML.
TEMPLATE_FIELDS = ("heading", "message", "info_url", "ref", "lang", "dir", "status")
MAX_TEMPLATE = 100_000  # bytes: a page, not an application


def _template(path: str) -> str:
    key = "page.template"
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_TEMPLATE + 1)
    except OSError as error:
        _fail(key, f"cannot read {path!r} ({error.strerror or error}); check the path")
    if len(data) > MAX_TEMPLATE:
        _fail(key, f"{path!r} is larger than {MAX_TEMPLATE} bytes; keep the page small")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        _fail(key, f"{path!r} is not UTF-8 (byte {error.start}); save it as UTF-8")
    for match in string.Template.pattern.finditer(text):
        if match.group("invalid") is not None:
            line = text.count("\n", 0, match.start()) + 1
            _fail(key, f"line {line}: a lone '$'; write '$$' for a dollar sign")
        name = match.group("named") or match.group("braced")
        if name is not None and name not in TEMPLATE_FIELDS:
            line = text.count("\n", 0, match.start()) + 1
            allowed = ", ".join("$" + f for f in TEMPLATE_FIELDS)
            _fail(key, f"line {line}: unknown placeholder ${name}; the page offers {allowed}")
    return text


def _metrics(raw: Mapping[str, Any]) -> MetricsPolicy:
    _check_keys(raw, METRICS_KEYS, "metrics", "[metrics]")
    prometheus = _bool(raw, "prometheus", False, prefix="metrics.")
    opentelemetry = _bool(raw, "opentelemetry", False, prefix="metrics.")
    # Checked at load, so that a missing library stops the server before it serves.
    for wanted, module, extra in (
        (prometheus, "prometheus_client", "prometheus"),
        (opentelemetry, "opentelemetry.metrics", "opentelemetry"),
    ):
        if wanted and not _importable(module):
            _fail(
                f"metrics.{extra}",
                f"needs the {module.partition('.')[0]} package; install it with "
                f'pip install "geofence-middleware[{extra}]", or set {extra} = false',
            )
    return MetricsPolicy(prometheus, opentelemetry)


def _importable(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package that is missing or broken
        return False


def _rules(
    raw: Any,
    groups: Mapping[str, tuple[str, ...]],
    geoip: GeoIPPolicy,
    has_accounts: bool,
    page: PagePolicy,
) -> tuple[RulePolicy, ...]:
    if isinstance(raw, Mapping):
        _fail(
            "rules",
            "expected a list of rules, got a table; in TOML write each rule as [[rules]] "
            "(double brackets)",
        )
    items = _list(raw, "rules", 'a list of rules, e.g. [{action = "block", regions = ["CN"]}]')
    rules: list[RulePolicy] = []
    names: dict[str, str] = {}
    for index, item in enumerate(items):
        key = f"rules[{index}]"
        if not isinstance(item, Mapping):
            _fail(
                key,
                f'expected a table, e.g. {{action = "block", regions = ["CN"]}}, got {_kind(item)}',
            )
        rule = _rule(item, key, groups, geoip, has_accounts, page)
        if rule.name in names:
            _fail(
                f"{key}.name",
                f"{rule.name!r} is already the name of {names[rule.name]}; rule names must be "
                "unique (they appear in decisions and logs)",
            )
        names[rule.name] = key
        rules.append(rule)
    return tuple(rules)


def _rule(
    raw: Mapping[str, Any],
    key: str,
    groups: Mapping[str, tuple[str, ...]],
    geoip: GeoIPPolicy,
    has_accounts: bool,
    page: PagePolicy,
) -> RulePolicy:
    _check_keys(raw, RULE_KEYS, key, "a [[rules]] entry")
    if "action" not in raw:
        _fail(f"{key}.action", 'is missing; every rule needs action = "block", "warn" or "allow"')
    action = _choice(raw, "action", ACTIONS, "block", prefix=f"{key}.")
    name = _rule_name(raw.get("name"), key)
    region_list = _region_list(raw.get("regions", []), f"{key}.regions", groups)
    except_list = _region_list(raw.get("except_regions", []), f"{key}.except_regions", groups)
    anonymizers = _anonymizers(raw.get("anonymizers", []), f"{key}.anonymizers")
    paths = _paths(raw.get("paths", []), f"{key}.paths")
    methods = _methods(raw.get("methods", []), f"{key}.methods")
    hosts = _hosts(raw.get("hosts", []), f"{key}.hosts")
    asns = _asns(raw.get("asns", []), f"{key}.asns")
    warn_from = _moment(raw, "warn_from", key)
    enforce_from = _moment(raw, "enforce_from", key)
    status = _status(raw, key)
    mode = _choice(raw, "mode", RULE_MODES, "enforce", prefix=f"{key}.")
    home_regions = _home_regions(raw.get("home_regions", []), f"{key}.home_regions", groups)
    home_mismatch = _bool(raw, "home_mismatch", False, prefix=f"{key}.")
    account_grace = (
        _duration(
            raw["account_grace"],
            f"{key}.account_grace",
            example='"14d"',
            if_zero="omit account_grace to block every account from enforce_from on",
        )
        if "account_grace" in raw
        else None
    )

    if warn_from is not None and enforce_from is None:
        _fail(
            f"{key}.warn_from",
            "needs enforce_from: the grace period runs from warn_from until enforce_from; add "
            f'enforce_from = {_TIME_EXAMPLE[1:-1]}, or drop warn_from and use action = "warn"',
        )
    if warn_from is not None and enforce_from is not None and warn_from >= enforce_from:
        _fail(
            f"{key}.warn_from",
            f"must be earlier than enforce_from ({warn_from.isoformat()} is not before "
            f"{enforce_from.isoformat()})",
        )
    if "status" in raw and action != "block":
        _fail(
            f"{key}.status", f'only applies to block rules, and this rule is "{action}"; remove it'
        )
    if account_grace is not None and action != "block":
        _fail(
            f"{key}.account_grace",
            "only applies to block rules (it delays the block for each account), and this rule "
            f'is "{action}"; remove it',
        )
    # Without [accounts] the Account a request carries changes no decision (DESIGN "Accounts"),
    # so these keys would silently do nothing. An empty list or false asks for nothing.
    if home_regions and not has_accounts:
        _needs_accounts(f"{key}.home_regions", "it matches on the Account's home_country")
    if home_mismatch and not has_accounts:
        _needs_accounts(f"{key}.home_mismatch", "it compares with the Account's home_country")
    if account_grace is not None and not has_accounts:
        _needs_accounts(f"{key}.account_grace", "per-account state")
    if anonymizers and geoip.anonymous_db is None:
        _fail(
            f"{key}.anonymizers",
            "needs geoip.anonymous_db (a GeoIP2 Anonymous IP database) to tell VPNs, Tor and "
            'proxies apart; set it, e.g. anonymous_db = "/var/lib/GeoIP/GeoIP2-Anonymous-IP.mmdb"',
        )
    if asns and geoip.asn_db is None:
        _fail(
            f"{key}.asns",
            "needs geoip.asn_db (a GeoLite2-ASN or GeoIP2-ISP database) to know the client's "
            'autonomous system; set it, e.g. asn_db = "/var/lib/GeoIP/GeoLite2-ASN.mmdb"',
        )
    conditions = (
        region_list,
        except_list,
        anonymizers,
        paths,
        methods,
        home_regions,
        hosts,
        asns,
    )
    if action == "block" and not (any(conditions) or home_mismatch):
        # An empty list is "no constraint": a block rule left with none blocks every request,
        # which is far more often a mistake (an empty list from a template) than the intent.
        _fail(
            key,
            "this block rule has no conditions, so it would block every request; give it "
            'regions (e.g. regions = ["CN"]), anonymizers, asns, hosts, paths, methods or '
            "home_regions, or use "
            'default = "block" if blocking everything is intended',
        )
    return RulePolicy(
        name=name,
        action=action,
        regions=region_list,
        except_regions=except_list,
        anonymizers=anonymizers,
        paths=paths,
        methods=methods,
        warn_from=warn_from,
        enforce_from=enforce_from,
        status=status,
        mode=mode,
        key=key,
        home_regions=home_regions,
        home_mismatch=home_mismatch,
        account_grace=account_grace,
        hosts=hosts,
        asns=asns,
        message=_messages(raw["message"], f"{key}.message", page) if "message" in raw else None,
        code=_error_code(raw["code"], f"{key}.code") if "code" in raw else None,
        info_url=_info_url(raw.get("info_url"), f"{key}.info_url"),
    )


def _rule_name(value: Any, key: str) -> str:
    if value is None:
        return key
    if not isinstance(value, str):
        _fail(f"{key}.name", f'expected a string, e.g. "unsupported-regions", got {_kind(value)}')
    if not value.strip():
        _fail(f"{key}.name", f"is empty; give the rule a name or omit it (it defaults to {key!r})")
    if len(value) > MAX_NAME:
        _fail(f"{key}.name", f"is {len(value)} characters long; keep it under {MAX_NAME}")
    _no_control(value, f"{key}.name", "names appear in logs and headers")
    return value


def _status(raw: Mapping[str, Any], key: str) -> int:
    value = raw.get("status", 451)
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(f"{key}.status", f"expected 451 or 403 (an integer), got {_kind(value)}")
    if value not in STATUSES:
        _fail(
            f"{key}.status",
            f"{value} is not allowed; use 451 (Unavailable For Legal Reasons, the default) or 403",
        )
    return value


# -- regions -----------------------------------------------------------------------------------


def _groups(raw: Any) -> dict[str, tuple[str, ...]]:
    if isinstance(raw, list | tuple):
        _fail(
            "regions",
            "the top-level [regions] table defines named groups, e.g. "
            '{sanctioned = ["CU", "IR"]}; put a rule\'s region list in its [[rules]] entry',
        )
    if not isinstance(raw, Mapping):
        _fail(
            "regions",
            'expected a table of named groups, e.g. {sanctioned = ["CU", "IR"]}, got ' + _kind(raw),
        )
    groups: dict[str, tuple[str, ...]] = {}
    for name, members in raw.items():
        if not isinstance(name, str):
            _fail("regions", f"group names must be strings, got {_kind(name)} {name!r}")
        key = f"regions.{name}"
        if not GROUP_NAME.match(name):
            fixed = re.sub(r"[^a-z0-9_-]", "_", name.lstrip("@").lower())
            hint = (
                "write the name without '@' (the '@' goes in front when you use it)"
                if (name.startswith("@"))
                else f"e.g. {fixed!r}"
            )
            _fail(
                key,
                f"{name!r} is not a valid group name: use lower-case letters, digits, '-' and "
                f"'_'; {hint}",
            )
        codes = _list(members, key, 'a list of region codes, e.g. ["CU", "IR"]')
        if not codes:
            _fail(
                key,
                "is empty; a rule using an empty group would have no region condition and match "
                "every client: list its codes or remove the group",
            )
        builtin = BUILTIN_GROUPS.get(name)
        if builtin is not None:
            _fail(
                key,
                f"{name!r} is the name of a built-in group ({builtin.title}; `geofence regions "
                f'{name}` lists it): use "@{name}" in rules as it is, or give your group '
                f"another name, e.g. 'my-{name}'",
            )
        result: list[str] = []
        for index, code in enumerate(codes):
            item = f"{key}[{index}]"
            if isinstance(code, str) and code.startswith("@"):
                # Built-in groups may be used here; the policy's own groups may not (no
                # chains to follow, and no cycles to refuse).
                if code[1:] in BUILTIN_GROUPS:
                    result.extend(BUILTIN_GROUPS[code[1:]].codes)
                    continue
                if code[1:] in raw:
                    _fail(
                        item,
                        f"groups cannot contain other groups ({code!r}); list the codes of "
                        f"{code!r} here instead (built-in groups such as '@eu' are allowed)",
                    )
                _group(code, item, groups)  # raises: unknown group, with suggestions
            result.append(_code(code, item))
        groups[name] = _unique(result)
    return groups


def _region_list(raw: Any, key: str, groups: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    codes = _list(raw, key, 'a list of region codes, e.g. ["CN"]')
    result: list[str] = []
    for index, code in enumerate(codes):
        item = f"{key}[{index}]"
        if isinstance(code, str) and code.startswith("@"):
            result.extend(_group(code, item, groups))
        else:
            result.append(_code(code, item))
    return _unique(result)


def _home_regions(raw: Any, key: str, groups: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    """Like :func:`_region_list`, but countries only: Account.home_country is a country."""
    codes = _list(raw, key, 'a list of country codes, e.g. ["CN", "RU"]')
    result: list[str] = []
    for index, code in enumerate(codes):
        item = f"{key}[{index}]"
        if isinstance(code, str) and code.startswith("@"):
            for member in _group(code, item, groups):
                if not is_country(member):
                    _fail(
                        item,
                        f"the group {code!r} contains {member!r}, which is not a country; "
                        "home_regions holds countries (an account's home_country is one), so "
                        "list the group's countries here instead",
                    )
                result.append(member)
        else:
            checked = _code(code, item)
            if not is_country(checked):
                _fail(item, _not_a_home(checked))
            result.append(checked)
    return _unique(result)


def _not_a_home(code: str) -> str:
    if code == ANY:
        return (
            "'*' is not a country, and home_regions holds countries (an account's "
            "home_country); omit home_regions to match every account"
        )
    if code == UNKNOWN:
        return (
            "'unknown' is not a country, and an account without a home_country matches no "
            "home_regions; list countries"
        )
    if is_subdivision(code):
        return (
            f"{code!r} is a subdivision, and an account's home_country is a country; write "
            f"{code.split('-', 1)[0]!r} for the whole country, or match where the request "
            f"comes from with regions = [{code!r}]"
        )
    return f"{code!r} is not a country"  # pragma: no cover - check_code lets nothing else in


def _group(reference: str, key: str, groups: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    name = reference[1:]
    if name in groups:
        return groups[name]
    builtin = BUILTIN_GROUPS.get(name)
    if builtin is not None:
        return builtin.codes
    import difflib

    # The policy's own groups first: a typo is more likely in a name the user wrote.
    close = difflib.get_close_matches(name, list(groups), n=1, cutoff=0.6) or (
        difflib.get_close_matches(name, list(BUILTIN_GROUPS), n=1, cutoff=0.6)
    )
    hint = f" (did you mean '@{close[0]}'?)" if close else ""
    builtins = "built-in groups are listed by `geofence regions`"
    if not groups:
        _fail(
            key,
            f"unknown group {reference!r}{hint}: no groups are defined in [regions] and "
            f"{builtins}; define it under [regions], e.g. [regions] {name or 'name'} = "
            '["CU", "IR"]',
        )
    known = ", ".join("@" + g for g in sorted(groups))
    raise ConfigError(key, f"unknown group {reference!r}{hint}; known groups: {known}; {builtins}")


def _code(code: Any, key: str) -> str:
    if not isinstance(code, str):
        _fail(key, f'expected a region code string, e.g. "CN", got {_kind(code)}')
    try:
        return check_code(code)
    except RegionCodeError as error:
        _fail(key, str(error))


# -- rule conditions ----------------------------------------------------------------------------


def _anonymizers(raw: Any, key: str) -> tuple[str, ...]:
    values = _list(raw, key, 'a list of network types, e.g. ["tor", "vpn"]')
    result: list[str] = []
    for index, value in enumerate(values):
        result.append(_one_of(value, ANONYMIZERS, f"{key}[{index}]"))
    return _unique(result)


def _paths(raw: Any, key: str) -> tuple[str, ...]:
    values = _list(raw, key, 'a list of path globs, e.g. ["/v1/*"]')
    for index, value in enumerate(values):
        item = f"{key}[{index}]"
        if not isinstance(value, str):
            _fail(item, f'expected a path glob string, e.g. "/v1/*", got {_kind(value)}')
        try:
            glob_to_regex(value)
        except GlobError as error:
            _fail(item, str(error))
    return _unique(values)


def _methods(raw: Any, key: str) -> tuple[str, ...]:
    values = _list(raw, key, 'a list of HTTP methods, e.g. ["GET", "POST"]')
    result: list[str] = []
    for index, value in enumerate(values):
        item = f"{key}[{index}]"
        if not isinstance(value, str):
            _fail(item, f'expected an HTTP method string, e.g. "POST", got {_kind(value)}')
        if value == "*":
            _fail(item, "'*' is not a method; omit methods to match every method")
        if not _TOKEN.match(value):
            _fail(item, f'{value!r} is not an HTTP method (letters only, e.g. "GET" or "POST")')
        result.append(value.upper())
    return _unique(result)


_HOST_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?\Z")
MAX_ASN = 4_294_967_295  # 32-bit AS numbers (RFC 6793)
_AS_TEXT = re.compile(r"[Aa][Ss]([0-9]{1,10})\Z")


def _hosts(raw: Any, key: str) -> tuple[str, ...]:
    values = _list(raw, key, 'a list of host globs, e.g. ["api.example.com", "*.example.com"]')
    return _unique([_host(value, f"{key}[{index}]") for index, value in enumerate(values)])


def _host(value: Any, key: str) -> str:
    """One ``hosts`` glob, normalised: lower-case, no trailing dot, an IPv6 literal without
    brackets. ``*`` stands for one or more whole labels (DESIGN "Hosts")."""
    if not isinstance(value, str):
        _fail(key, f'expected a host glob string, e.g. "api.example.com", got {_kind(value)}')
    host = value.strip().lower()
    if not host:
        _fail(key, "is empty; omit hosts to match every host")
    if "://" in host or "/" in host:
        _fail(key, f'{value!r} is not a host: write the host alone, e.g. "api.example.com"')
    if host.startswith("["):
        if not host.endswith("]"):
            _fail(key, f"{value!r}: hosts match without the port; write {host.split(']')[0]}]")
        host = host[1:-1]
    if ":" in host:
        if host.count(":") == 1:
            _fail(
                key,
                f"{value!r}: hosts match without the port; write {host.split(':')[0]!r}",
            )
        try:
            return IPv6Address(host).compressed
        except ValueError:
            _fail(key, f'{value!r} is not an IPv6 address (write an IPv6 host as "[::1]")')
    if host.endswith("."):
        host = host[:-1]  # the fully qualified form names the same host
    if host == "*" or set(host.split(".")) == {"*"}:
        _fail(key, f"{value!r} matches every host; omit hosts to match every host")
    for label in host.split("."):
        if label == "*":
            continue
        if "*" in label:
            _fail(
                key,
                f"{value!r}: '*' stands for whole labels only, e.g. \"*.example.com\" "
                f"(not {label!r})",
            )
        if not _HOST_LABEL.match(label) or len(label) > 63:
            _fail(
                key,
                f"{value!r} is not a host name (labels of letters, digits and '-', separated "
                "by dots)",
            )
    return host


def _asns(raw: Any, key: str) -> tuple[int, ...]:
    values = _list(raw, key, 'a list of autonomous system numbers, e.g. [1221, "AS7018"]')
    return _unique([_asn(value, f"{key}[{index}]") for index, value in enumerate(values)])


def _asn(value: Any, key: str) -> int:
    """An autonomous system number: an integer, or a string "AS1221" (any case)."""
    if isinstance(value, str):
        match = _AS_TEXT.match(value.strip())
        if match is None:
            hint = (
                f'; write {value.strip()} or "AS{value.strip()}"' if value.strip().isdigit() else ""
            )
            _fail(
                key,
                f'{value!r} is not an autonomous system number (write 1221 or "AS1221"){hint}',
            )
        number = int(match.group(1))
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        _fail(
            key, f'expected an autonomous system number, e.g. 1221 or "AS1221", got {_kind(value)}'
        )
    if number == 0:
        _fail(key, "AS0 is reserved (RFC 7607): no network is announced from it")
    if not 0 < number <= MAX_ASN:
        _fail(key, f"{number} is not an autonomous system number (1 to {MAX_ASN})")
    return number


def _moment(raw: Mapping[str, Any], name: str, rule: str) -> datetime | None:
    if name not in raw:
        return None
    key = f"{rule}.{name}"
    value = raw[name]
    if isinstance(value, datetime):
        shown = value.isoformat()
        if value.tzinfo is None or value.utcoffset() is None:
            _fail(key, _no_zone(shown))
        return _to_utc(value, key)
    if isinstance(value, date):
        _fail(
            key,
            f"{value.isoformat()} is a date without a time; write a time and zone, e.g. "
            f"{value.isoformat()}T00:00:00Z",
        )
    if isinstance(value, time):
        _fail(
            key,
            f"{value.isoformat()} is a time of day without a date; write e.g. "
            + _TIME_EXAMPLE[1:-1],
        )
    if not isinstance(value, str):
        _fail(
            key, f"expected an ISO 8601 time with a zone, e.g. {_TIME_EXAMPLE}, got {_kind(value)}"
        )
    return _parse_time(value, key)


def _parse_time(text: str, key: str) -> datetime:
    # Parsed here rather than with datetime.fromisoformat, whose accepted forms differ between
    # Python 3.10 and 3.11: a config must mean the same on every supported Python.
    if _ISO_DATE.match(text):
        _fail(key, f'{text!r} is a date without a time; write e.g. "{text}T00:00:00Z"')
    match = _ISO_TIME.match(text)
    if match is None:
        _fail(key, f"{text!r} is not an ISO 8601 time; write e.g. {_TIME_EXAMPLE}")
    year, month, day, hour, minute, second, fraction, zulu, sign, zh, zm = match.groups()
    if zulu is None and sign is None:
        _fail(key, _no_zone(repr(text)))
    if zulu is not None:
        zone = timezone.utc
    else:
        offset = timedelta(hours=int(zh), minutes=int(zm))
        if offset >= timedelta(hours=24) or int(zm) >= 60:
            _fail(key, f"{text!r} has an impossible UTC offset {sign}{zh}:{zm}")
        zone = timezone(-offset if sign == "-" else offset)
    try:
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")),
            tzinfo=zone,
        )
    except ValueError as error:
        _fail(key, f"{text!r} is not a valid time ({error})")
    return _to_utc(moment, key)


def _to_utc(moment: datetime, key: str) -> datetime:
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        _fail(
            key, f"{moment.isoformat()} is outside the range of supported times (years 1-9999 UTC)"
        )


def _no_zone(shown: str) -> str:
    return (
        f'{shown} has no time zone; add "Z" for UTC or an offset such as "+00:00", e.g. '
        f"{_TIME_EXAMPLE}"
    )


# -- accounts -----------------------------------------------------------------------------------


def _needs_accounts(key: str, why: str) -> NoReturn:
    _fail(
        key,
        f'needs an [accounts] table ({why}); add [accounts] (store = "memory://" by default)',
    )


def _accounts(raw: Mapping[str, Any]) -> AccountsPolicy:
    _check_keys(raw, ACCOUNTS_KEYS, "accounts", "[accounts]")
    default = AccountsPolicy()
    store = _store(raw["store"]) if "store" in raw else default.store
    key_prefix = _key_prefix(raw["key_prefix"]) if "key_prefix" in raw else default.key_prefix
    timeout = default.timeout
    if "timeout" in raw:
        timeout = _duration(
            raw["timeout"],
            "accounts.timeout",
            example='"50ms"',
            if_zero="every store call would fail at once",
            maximum=MAX_TIMEOUT,
            too_long="it is how long a request may wait for the store",
        )
    refresh = default.refresh
    if "refresh" in raw:
        refresh = _duration(
            raw["refresh"],
            "accounts.refresh",
            example='"5s"',
            zero="0 = ask the store on every request of an account",
            maximum=MAX_REFRESH,
            too_long="a suspension made by another process takes up to refresh to apply here",
        )
    on_store_error = _choice(
        raw, "on_store_error", ON_STORE_ERROR, default.on_store_error, prefix="accounts."
    )
    return AccountsPolicy(
        store=store,
        key_prefix=key_prefix,
        timeout=timeout,
        refresh=refresh,
        on_store_error=on_store_error,
    )


def _store(value: Any) -> str:
    key = "accounts.store"
    if not isinstance(value, str):
        _fail(
            key,
            f'expected a store URI, e.g. "memory://" or "redis://host:6379/0", got {_kind(value)}',
        )
    # Imported here: geofence.accounts may import the policy types from geofence.config.
    from geofence.accounts._uri import check_store_uri, redact

    try:
        return check_store_uri(value)
    except ModuleNotFoundError as error:
        # A Redis URI without the redis package (extra "accounts"): a config error, at load.
        # Any other import failure is a bug in geofence, not in the config: it propagates.
        if error.name != "redis" and not (error.name or "").startswith("redis."):
            raise
        _fail(
            key,
            f"{redact(value)!r} needs the redis package, which cannot be imported ({error}); "
            'install the extra: pip install "geofence-middleware[accounts]"',
        )


def _key_prefix(value: Any) -> str:
    key = "accounts.key_prefix"
    if not isinstance(value, str):
        _fail(key, f'expected a string, e.g. "geofence" or "myapp:geofence", got {_kind(value)}')
    if not value:
        _fail(key, 'is empty; omit it for the default "geofence", or write e.g. "myapp:geofence"')
    if len(value) > MAX_KEY_PREFIX:
        _fail(key, f"is {len(value)} characters long; keep it under {MAX_KEY_PREFIX}")
    for ch in value:
        if ch in "{}":
            _fail(
                key,
                f"contains {ch!r}; braces are Redis Cluster hash tags, which geofence sets "
                "itself (an account's keys share one slot), so leave them out",
            )
        if ch in "*?[]\\":
            _fail(
                key,
                f"contains {ch!r}, a pattern character of Redis SCAN (used by geofence accounts "
                "list); use letters, digits and _ . : - /",
            )
        if ch.isspace() or _is_control(ch, ("Cc", "Cf", "Zl", "Zp")):
            _fail(key, f"contains whitespace or a control character ({ch!r}); remove it")
        if not (ch.isascii() and (ch.isalnum() or ch in "_.:-/")):
            _fail(key, f"contains {ch!r}; use letters, digits and _ . : - / (ASCII)")
    return value


def _strikes(raw: Mapping[str, Any]) -> StrikesPolicy:
    _check_keys(raw, STRIKES_KEYS, "strikes", "[strikes]")
    default = StrikesPolicy()
    count = _strike_count(raw["count"]) if "count" in raw else default.count
    threshold = _threshold(raw["threshold"]) if "threshold" in raw else default.threshold
    window = default.window
    if "window" in raw:
        window = _duration(
            raw["window"],
            "strikes.window",
            example='"24h"',
            if_zero="strikes are counted within the window",
        )
    action = _choice(raw, "action", STRIKE_ACTIONS, default.action, prefix="strikes.")
    suspend_for = default.suspend_for
    if "suspend_for" in raw:
        suspend_for = _duration(
            raw["suspend_for"],
            "strikes.suspend_for",
            example='"30d"',
            zero="0 = until cleared with geofence accounts clear",
        )
    status = default.status
    if "status" in raw:
        status = raw["status"]
        if isinstance(status, bool) or not isinstance(status, int):
            _fail("strikes.status", f"expected 403 or 451 (an integer), got {_kind(status)}")
        if status not in STRIKE_STATUSES:
            _fail(
                "strikes.status",
                f"{status} is not allowed; use 403 (Forbidden, the default) or 451",
            )
        if action == "flag":
            _fail(
                "strikes.status",
                'is the status of a suspended account\'s requests, and action = "flag" '
                'suspends nobody; remove it, or set action = "suspend"',
            )
    return StrikesPolicy(
        count=count,
        threshold=threshold,
        window=window,
        action=action,
        suspend_for=suspend_for,
        status=status,
    )


def _strike_count(raw: Any) -> frozenset[str]:
    key = "strikes.count"
    values = _list(raw, key, 'a list of actions, e.g. ["block"] or ["block", "warn"]')
    if not values:
        _fail(
            key,
            'is empty, so nothing would count as a strike; write ["block"] (the default) or '
            '["block", "warn"], or remove [strikes]',
        )
    return frozenset(
        _one_of(value, STRIKE_COUNTS, f"{key}[{index}]") for index, value in enumerate(values)
    )


def _threshold(value: Any) -> int:
    key = "strikes.threshold"
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(key, f"expected a whole number of strikes, e.g. 50, got {_kind(value)}")
    if value < 1:
        _fail(key, f"must be at least 1 (got {value})")
    if value > MAX_THRESHOLD:
        _fail(key, f"{value} strikes is not plausible; at most {MAX_THRESHOLD:,}")
    return value


def _exempt_accounts(raw: Any, key: str) -> tuple[str, ...]:
    # Kept as written: ids are the app's own, and "@name" is a name in Account.groups (the
    # app's groups), not a [regions] group.
    values = _list(
        raw, key, 'a list of account ids or "@group" names, e.g. ["org_a1", "@enterprise"]'
    )
    for index, value in enumerate(values):
        item = f"{key}[{index}]"
        if not isinstance(value, str):
            _fail(
                item,
                f'expected an account id or "@group" string, e.g. "org_a1", got {_kind(value)}',
            )
        if not value.strip():
            _fail(item, 'is empty; write an account id, or "@group" for a name in Account.groups')
        name = value[1:] if value.startswith("@") else value
        if not name.strip():
            _fail(item, "'@' names no group; write e.g. \"@enterprise\" (a name in Account.groups)")
        if name != name.strip():
            _fail(
                item,
                f"{value!r} has spaces at the start or end; ids and groups are compared exactly, "
                "so remove them",
            )
        _no_control(value, item, "account ids appear in logs and events")
        if len(value) > MAX_ACCOUNT_ID:
            _fail(item, f"is {len(value)} characters long; keep it under {MAX_ACCOUNT_ID}")
    return _unique(values)


# -- client IP, networks -----------------------------------------------------------------------


def _client_ip(raw: Mapping[str, Any]) -> ClientIPPolicy:
    _check_keys(raw, CLIENT_IP_KEYS, "client_ip", "[client_ip]")
    trusted = _networks(raw.get("trusted_proxies", []), "client_ip.trusted_proxies", trust=True)
    header = _header(raw.get("header", "x-forwarded-for"))
    hops = raw.get("hops")
    if hops is not None:
        if isinstance(hops, bool) or not isinstance(hops, int):
            _fail(
                "client_ip.hops", f"expected a whole number of proxies, e.g. 1, got {_kind(hops)}"
            )
        if hops < 1:
            _fail(
                "client_ip.hops",
                f"must be at least 1 (got {hops}); omit client_ip to use the socket peer",
            )
        if hops > MAX_HOPS:
            _fail("client_ip.hops", f"{hops} proxies is not plausible; at most {MAX_HOPS}")
        if trusted:
            _fail(
                "client_ip.hops",
                "cannot be combined with client_ip.trusted_proxies; use trusted_proxies (the "
                "networks of your proxies) or hops (a fixed number of proxies), not both",
            )
        if header in SINGLE_VALUED_HEADERS and hops != 1:
            _fail(
                "client_ip.hops",
                f"{header} holds one address (set by the proxy next to the app), so hops must be 1",
            )
    elif "header" in raw and not trusted:
        _fail(
            "client_ip.header",
            "is only read from trusted proxies, and none are configured; set "
            "client_ip.trusted_proxies or client_ip.hops, or remove client_ip.header",
        )
    return ClientIPPolicy(trusted_proxies=trusted, header=header, hops=hops)


def _header(value: Any) -> str:
    if not isinstance(value, str):
        _fail(
            "client_ip.header",
            f'expected a header name, e.g. "x-forwarded-for", got {_kind(value)}',
        )
    return _one_of(value.lower(), HEADER_NAMES, "client_ip.header", shown=value)


def _networks(raw: Any, key: str, *, trust: bool) -> tuple[Network, ...]:
    values = _list(raw, key, 'a list of IP networks, e.g. ["10.0.0.0/8"]')
    result = [_network(value, f"{key}[{index}]", trust=trust) for index, value in enumerate(values)]
    return _unique(result)


def _network(value: Any, key: str, *, trust: bool) -> Network:
    if not isinstance(value, str):
        _fail(
            key,
            f'expected an IP address or CIDR network string, e.g. "10.0.0.0/8", got {_kind(value)}',
        )
    if value != value.strip() or not value:
        _fail(key, f"{value!r}: remove the spaces" if value.strip() else "is empty")
    if "%" in value:
        _fail(key, f"{value!r}: zone ids ('%eth0') are not allowed in networks; remove it")
    try:
        network: Network = ip_network(value, strict=True)
    except ValueError as error:
        try:
            loose = ip_network(value, strict=False)
        except ValueError:
            _fail(
                key,
                f"{value!r} is not an IP address or CIDR network ({error}); write e.g. "
                '"10.0.0.0/8", "192.0.2.1" or "2001:db8::/32"',
            )
        _fail(key, f"{value!r} has host bits set (did you mean {str(loose)!r}?)")
    if network.prefixlen == 0:
        _every(key, value, trust, "every address")
    network = _embedded(network, value, key, trust)
    if network.prefixlen == 0:
        _every(key, value, trust, "every IPv4 address")
    return network


def _embedded(network: Network, value: str, key: str, trust: bool) -> Network:
    """Rewrite networks inside IPv4-carrying IPv6 ranges to IPv4, or refuse them."""
    if isinstance(network, IPv4Network):
        return network
    for embedded, kind in _EMBEDDED_IPV4:
        if network.supernet_of(embedded):
            _every(key, value, trust, f"every IPv4 address (as {kind} addresses {embedded})")
    if network.subnet_of(_MAPPED) or network.subnet_of(_NAT64):
        low = int(network.network_address) & 0xFFFFFFFF
        return IPv4Network((low, network.prefixlen - 96))
    if network.subnet_of(_6TO4):
        if network.prefixlen > 48:
            v4 = IPv4Network(((int(network.network_address) >> 80) & 0xFFFFFFFF, 32))
            _fail(
                key,
                f"{value!r} is part of one 6to4 site, which geofence treats as its IPv4 "
                f"address; write {str(v4.network_address)!r}",
            )
        high = (int(network.network_address) >> 80) & 0xFFFFFFFF
        return IPv4Network((high, network.prefixlen - 16))
    if network.subnet_of(_TEREDO):
        _fail(
            key,
            f"{value!r} is Teredo address space (2001::/32); geofence treats a Teredo address "
            "as the IPv4 client it embeds, so list IPv4 networks instead",
        )
    return network


def _every(key: str, value: str, trust: bool, what: str) -> NoReturn:
    if trust:
        _fail(
            key,
            f"{value!r} trusts {what}; use hops = N for a fixed number of proxies, or list "
            "only your proxies' networks (trusting every address lets any client forge its own)",
        )
    _fail(
        key,
        f"{value!r} exempts {what}, which switches geofence off; to do that on purpose set "
        'mode = "off"',
    )


# -- scalars -----------------------------------------------------------------------------------


def _duration(
    value: Any,
    key: str,
    *,
    example: str,
    zero: str | None = None,
    if_zero: str = "",
    maximum: float = MAX_DURATION,
    too_long: str = "",
    fractions: bool = False,
) -> float:
    """Seconds from a duration (DESIGN "Durations"): an integer number of seconds, or a string
    of ASCII digits and one lower-case unit (ms, s, m, h, d), e.g. "250ms", "14d".

    ``zero`` says what 0 means where 0 is allowed (None: it is not, and ``if_zero`` says why);
    ``fractions`` lets a number of seconds have a fraction (geoip.reload_interval always took
    one). Everything else is a ConfigError naming ``key``, with the closest valid spelling.
    """
    if zero is None:
        bounds = f"use a duration > 0, e.g. {example}"
    else:
        bounds = f"use a duration >= 0, e.g. {example} ({zero})"
    if isinstance(value, str):
        seconds = _duration_text(value, key, bounds)
        shown = repr(value)
    elif isinstance(value, bool) or not isinstance(value, int | float):
        _fail(key, f"expected a duration ({_DURATION_FORMS}), got {_kind(value)}")
    elif isinstance(value, int):
        seconds = value
        shown = str(value) if abs(value) < 10**_DIGITS_SHOWN else "the number"
    else:
        if not _finite(value):
            _fail(key, f"{value} is not allowed; {bounds}")
        shown = repr(value)
        if value < 0:
            _fail(key, f"{shown} is negative; {bounds}")
        if not fractions and not value.is_integer():
            written = _written(value)
            fix = f"write {written}" if written else "use whole seconds or milliseconds"
            _fail(key, f"{shown} is not a whole number of seconds; {fix}")
        seconds = value
    if seconds < 0:
        _fail(key, f"{shown} is negative; {bounds}")
    if seconds == 0 and zero is None:
        why = f" ({if_zero})" if if_zero else ""
        _fail(key, f"must be more than 0{why}; {bounds}")
    if seconds > maximum:
        why = f" ({too_long})" if too_long else ""
        longest = _written(maximum)[1:-1]
        _fail(key, f"{shown} is more than {longest}{why}; use a shorter duration, e.g. {example}")
    return float(seconds)


_UNIT_WORDS = {
    "ms": ("msec", "msecs", "millisecond", "milliseconds"),
    "s": ("sec", "secs", "second", "seconds"),
    "m": ("min", "mins", "minute", "minutes"),
    "h": ("hr", "hrs", "hour", "hours"),
    "d": ("day", "days"),
}
_LOOSE_DURATION = re.compile(r"([+-]?)\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(\s*)(\S*)\Z")


def _duration_text(text: str, key: str, bounds: str) -> float:
    match = _DURATION.match(text)
    if match is None:
        _fail(key, _not_a_duration(text, bounds))
    digits, unit = match.groups()
    if len(digits) > _DIGITS_SHOWN:
        _fail(key, f"{_quoted(text)} is far too large; {bounds}")
    # Milliseconds are divided, not multiplied by 0.001: "50ms" is exactly 0.05.
    return int(digits) / 1000 if unit == "ms" else int(digits) * _UNITS[unit]


def _not_a_duration(text: str, bounds: str) -> str:
    """Why ``text`` is no duration, and the spelling that is (the reason of the ConfigError)."""
    shown = _quoted(text)
    stripped = text.strip()
    if not stripped:
        return f"is empty; {bounds}"
    if len(stripped) > 40:
        return f"{shown} is not a duration; use {_DURATION_FORMS}"
    if _DURATION.match(stripped):
        return f'{shown}: remove the spaces ("{stripped}")'
    if re.fullmatch(r"(?:[0-9]+(?:ms|s|m|h|d))+", stripped):
        parts = re.findall(r"([0-9]+)([a-z]+)", stripped)
        total = sum(int(n) * _UNITS[u] for n, u in parts)
        written = _written(total)
        fix = f"; write {written}" if written else ""
        return f"{shown} has more than one unit; a duration takes one{fix}"
    loose = _LOOSE_DURATION.match(stripped)
    if loose is None:
        return f"{shown} is not a duration; use {_DURATION_FORMS}"
    sign, number, space, unit = loose.groups()
    if sign == "-":
        return f"{shown} is negative; {bounds}"
    if sign == "+":
        return f"{shown}: write it without the '+'"
    if not unit:
        if "." not in number:
            count = int(number)
            return (
                f"{shown} has no unit; expected a number of seconds ({count}, not "
                f'"{count}") or a string with one unit, e.g. "{count}s"'
            )
        written = _written(float(number))
        fix = f"write {written}" if written else f"use {_DURATION_FORMS}"
        return f"{shown} has no unit; {fix}"
    canonical = _unit_of(unit)
    if canonical is None:
        return f"{shown}: {_no_unit(unit)}"
    if "." in number:
        written = _written(float(number) * _UNITS[canonical])
        fix = f"write {written}" if written else "the smallest unit is ms (milliseconds)"
        return f"{shown} has a fraction, and a duration is a whole number with one unit; {fix}"
    written = f'"{number}{canonical}"'
    if space:
        return f"{shown}: write it without the space ({written})"
    if unit.lower() == canonical:
        return f"{shown}: units are lower-case ms, s, m, h, d (did you mean {written}?)"
    return f'{shown}: write {_UNIT_NAMES[canonical]} as "{canonical}" ({written})'


_UNIT_NAMES = {"ms": "milliseconds", "s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _unit_of(unit: str) -> str | None:
    """Our unit for another spelling of it ("sec", "S", "Hours"), or None."""
    if unit == "M":  # minutes or months: no guess
        return None
    lowered = unit.lower()
    for canonical, words in _UNIT_WORDS.items():
        if lowered == canonical or lowered in words:
            return canonical
    return None


def _no_unit(unit: str) -> str:
    lowered = unit.lower()
    if unit == "M":
        return '"M" could be minutes or months; write minutes as "m", and months in days ("30d")'
    if lowered in ("w", "wk", "wks", "week", "weeks"):
        return 'weeks are written in days, e.g. "14d" for two weeks'
    if lowered in ("mo", "mon", "month", "months", "y", "yr", "yrs", "year", "years"):
        return 'months and years have no fixed length; write days, e.g. "30d" or "365d"'
    if lowered in ("us", "\u00b5s", "\u03bcs", "ns"):
        return "the smallest unit is ms (milliseconds)"
    return f'unknown unit {unit!r}; use one of ms, s, m, h, d, e.g. "30s" or "15m"'


def _finite(value: float) -> bool:
    """``math.isfinite`` for an int or a float, without importing :mod:`math` (0.1 MB of a
    process that has no other use for it): inf - inf and nan - nan are nan, never 0."""
    return value - value == 0


def _quoted(text: str) -> str:
    return repr(text) if len(text) <= 40 else repr(text[:37] + "...")


def _written(seconds: float) -> str:
    """``seconds`` in the largest unit that writes it exactly ('"90m"'), or '' when none does."""
    if not _finite(seconds) or seconds > MAX_DURATION * 1000:
        return ""
    millis = round(seconds * 1000)
    if millis <= 0 or abs(millis - seconds * 1000) > 1e-6 * max(1.0, seconds):
        return ""
    for unit in ("d", "h", "m", "s"):
        size = round(_UNITS[unit] * 1000)
        if millis % size == 0:
            return f'"{millis // size}{unit}"'
    return f'"{millis}ms"'


def _message(value: Any, key: str) -> str:
    if not isinstance(value, str):
        _fail(key, f"expected a string, or a table of language -> text, got {_kind(value)}")
    if not value.strip():
        _fail(key, "is empty; write the sentence blocked users see, or omit it for the default")
    if len(value) > MAX_MESSAGE:
        _fail(key, f"is {len(value)} characters long; keep it under {MAX_MESSAGE}")
    _no_control(value, key, "the message goes into responses and logs")
    return value


def _info_url(value: Any, key: str = "info_url") -> str | None:
    if value is None:
        return None
    from urllib.parse import urlsplit

    example = '"https://example.com/supported-countries"'
    if not isinstance(value, str):
        _fail(key, f"expected an absolute http(s) URL, e.g. {example}, got {_kind(value)}")
    bad = next((ch for ch in value if not ch.isascii()), None)
    if bad is not None:
        _fail(
            key,
            f"contains the non-ASCII character {bad!r}; percent-encode it (and use the "
            "punycode form of an international domain name)",
        )
    bad = next((ch for ch in value if ch.isspace() or _is_control(ch, ("Cc",))), None)
    if bad is not None:
        _fail(key, f"contains whitespace or a control character ({bad!r}); remove it")
    bad = next((ch for ch in value if ch in "<>\"'\\"), None)
    if bad is not None:
        # The URL goes into a Link header (<...>) and an HTML attribute.
        _fail(key, f"contains {bad!r}; percent-encode it (%{ord(bad):02X})")
    if len(value) > MAX_URL:
        _fail(key, f"is {len(value)} characters long; keep it under {MAX_URL}")
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        _fail(key, f"{value!r} is not an absolute http(s) URL; write e.g. {example}")
    try:
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError:
        _fail(key, f"{value!r} has an invalid port")
    return value


def _no_control(value: str, key: str, why: str) -> None:
    bad = next((ch for ch in value if _is_control(ch, ("Cc", "Zl", "Zp"))), None)
    if bad is not None:
        _fail(key, f"contains the control character {bad!r}; {why}, so write it on one line")


def _is_control(ch: str, categories: tuple[str, ...]) -> bool:
    """``unicodedata.category(ch) in categories``, for categories among Cc, Cf, Zl and Zp.

    ASCII is answered without unicodedata (of these, it has only Cc: U+0000-U+001F and
    U+007F), so that a config written in ASCII, the usual one, never loads the module.
    """
    if ch.isascii():
        return "Cc" in categories and (ch < " " or ch == "\x7f")
    import unicodedata

    return unicodedata.category(ch) in categories


def _bool(raw: Mapping[str, Any], name: str, default: bool, *, prefix: str = "") -> bool:
    value = raw.get(name, default)
    if not isinstance(value, bool):
        _fail(prefix + name, f"expected true or false, got {_kind(value)}")
    return value


def _choice(
    raw: Mapping[str, Any], name: str, choices: tuple[T, ...], default: T, *, prefix: str = ""
) -> T:
    if name not in raw:
        return default
    return _one_of(raw[name], choices, prefix + name)


def _one_of(value: Any, choices: tuple[T, ...], key: str, *, shown: Any = None) -> T:
    listed = ", ".join(f'"{c}"' for c in choices)
    if not isinstance(value, str):
        _fail(key, f"expected one of {listed}, got {_kind(value)}")
    for choice in choices:
        if value == choice:
            return choice
    import difflib

    lowered = {c.lower(): c for c in choices}
    close = (
        [lowered[value.lower()]]
        if value.lower() in lowered
        else difflib.get_close_matches(value.lower(), list(choices), n=1, cutoff=0.6)
    )
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(
        key, f"{shown if shown is not None else value!r} is not one of {listed}{hint}"
    )


# -- structure -----------------------------------------------------------------------------------


def _check_keys(raw: Mapping[Any, Any], known: Collection[str], prefix: str, section: str) -> None:
    for name in raw:
        where = f"{prefix}.{name}" if prefix else str(name)
        if not isinstance(name, str):
            _fail(where, f"keys must be strings, got {_kind(name)}")
        if name in known:
            continue
        _fail(where, "unknown key" + _key_hint(name, known, section))


def _key_hint(name: str, known: Collection[str], section: str) -> str:
    import difflib

    lowered = {k.lower(): k for k in known}
    close = difflib.get_close_matches(name.lower(), list(known), n=1, cutoff=0.6)
    if name.lower() in lowered:
        return f" (did you mean {lowered[name.lower()]!r}?)"
    elsewhere = [s for s, keys in _SECTIONS.items() if s != section and name in keys]
    if elsewhere:
        return f"; {name!r} belongs in {' or '.join(elsewhere)}"
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f"; {section} accepts: {', '.join(sorted(known))}"


def _table(raw: Mapping[str, Any], name: str, example: str) -> Mapping[str, Any]:
    value = raw.get(name, {})
    if not isinstance(value, Mapping):
        _fail(name, f"expected a table, {example}, got {_kind(value)}")
    return value


def _list(value: Any, key: str, expected: str) -> Sequence[Any]:
    if isinstance(value, list | tuple):
        return value
    if isinstance(value, str):
        import json

        _fail(key, f"expected {expected}, got a string; write [{json.dumps(value)}]")
    raise ConfigError(key, f"expected {expected}, got {_kind(value)}")


def _unique(values: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(values))


def _kind(value: Any) -> str:
    if value is None:
        return "nothing (None / null)"
    if isinstance(value, bool):
        return f"a boolean ({'true' if value else 'false'})"
    if isinstance(value, int):
        return f"an integer ({value})"
    if isinstance(value, float):
        return f"a number ({value})"
    if isinstance(value, str):
        return "a string" if len(value) > 40 else f"a string ({value!r})"
    if isinstance(value, datetime):
        return "a datetime"
    if isinstance(value, date):
        return "a date"
    if isinstance(value, time):
        return "a time of day"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def _fail(key: str, reason: str) -> NoReturn:
    raise ConfigError(key, reason)

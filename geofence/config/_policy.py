"""The validated configuration, as produced by :func:`geofence.config.load_policy`.

Everything here is already checked and normalised; the engine never re-validates it. That is
safe because :func:`~geofence.config.load_policy` is the only maker of a :class:`Policy`:
``Policy(...)`` (and so ``dataclasses.replace(policy, ...)``) raises ``TypeError``, so a
hand-built policy that skipped validation (a ``0.0.0.0/0`` trusted proxy, a region ``"ZZZ"``)
can never reach an engine. The parts (:class:`ClientIPPolicy`, :class:`GeoIPPolicy`,
:class:`RulePolicy`) stay constructible, for unit tests of the code that reads each one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from ipaddress import IPv4Network, IPv6Network
from typing import Any, Final, Literal

from geofence._model import Action
from geofence._record import KW_ONLY, InitVar, field, record
from geofence.http._locale import SHIPPED

Network = IPv4Network | IPv6Network

ANONYMIZERS = ("vpn", "tor", "public_proxy", "residential_proxy", "hosting")
READERS = ("auto", "mmap_ext", "mmap", "memory", "file")
DEFAULT_MESSAGE = "This service is not available in your country, region, or territory."


@record(frozen=True)
class ClientIPPolicy:
    # IPv4-mapped networks in the config are normalised to their IPv4 network.
    trusted_proxies: tuple[Network, ...] = ()
    header: str = "x-forwarded-for"  # lower-case, a name in geofence.clientip.FORWARDING_HEADERS
    hops: int | None = None  # never set together with trusted_proxies


@record(frozen=True)
class GeoIPPolicy:
    country_db: str | None = None  # None = embedded iptocc data
    anonymous_db: str | None = None
    reload_interval: float = 60.0  # seconds; 0 = never
    reader: str = "auto"  # one of READERS (maxminddb open mode)
    asn_db: str | None = None  # GeoLite2-ASN / GeoIP2-ISP, for `asns`
    # Seconds; a database whose metadata build date is older is reported as stale. None = never.
    max_age: float | None = None


@record(frozen=True)
class Message:
    """Text for the people a policy blocks: the policy's or a rule's ``message``.

    ``text`` goes into JSON bodies and logs (which stay English: the ``en`` entry of a table,
    else the default language's, else the first); ``by_language`` is the operator's table
    (shipped language tag -> text), empty when the operator wrote one string. ``own`` is False
    only for geofence's own default sentence, which pages may show translated: the operator's
    own text is never replaced by a translation the operator did not write.
    """

    text: str = DEFAULT_MESSAGE
    by_language: Mapping[str, str] = field(default_factory=dict)
    own: bool = False


@record(frozen=True)
class PagePolicy:
    """``[page]``: the HTML page of a block or a 503, in every adapter."""

    # Shipped language tags offered to Accept-Language, as written (canonical spelling).
    languages: tuple[str, ...] = SHIPPED
    default_language: str = "en"
    template: str | None = None  # the operator's template text ($heading, $message, ...)
    template_path: str | None = None  # where it was read from, for messages


@record(frozen=True)
class MetricsPolicy:
    """``[metrics]``: counters kept in the process, read when a collector asks."""

    prometheus: bool = False
    opentelemetry: bool = False


@record(frozen=True)
class RulePolicy:
    name: str
    action: Action
    # Normalised codes: "CN", "UA-43", "*", "unknown"; "@group" references already expanded.
    regions: tuple[str, ...] = ()
    except_regions: tuple[str, ...] = ()
    anonymizers: tuple[str, ...] = ()  # subset of ANONYMIZERS
    paths: tuple[str, ...] = ()  # glob patterns, already checked to compile
    methods: tuple[str, ...] = ()  # upper-case
    warn_from: datetime | None = None  # aware, UTC
    enforce_from: datetime | None = None  # aware, UTC
    status: int = 451  # 451 or 403
    mode: Literal["enforce", "report"] = "enforce"
    key: str = ""  # "rules[2]", for messages
    # Account conditions and grace (DESIGN "Accounts"); any of them needs [accounts].
    home_regions: tuple[str, ...] = ()  # normalised like regions, "@group" expanded
    home_mismatch: bool = False
    account_grace: float | None = None  # seconds; only on block rules
    # Lower-case host globs without port ("api.example.com", "*.example.com", "::1").
    hosts: tuple[str, ...] = ()
    asns: tuple[int, ...] = ()  # autonomous system numbers, 1 .. 4294967295
    # What a block by this rule answers; None = the policy's (DESIGN "HTTP behaviour").
    message: Message | None = None
    code: str | None = None  # the JSON error code
    info_url: str | None = None


@record(frozen=True)
class AccountsPolicy:
    """``[accounts]``: where per-account state lives and what to do when it cannot be read."""

    store: str = "memory://"  # checked: a scheme geofence.accounts can open
    key_prefix: str = "geofence"
    timeout: float = 0.05  # seconds, every store call
    refresh: float = 5.0  # seconds a process trusts its copy of an account's state
    on_store_error: Literal["local", "allow", "block"] = "local"


@record(frozen=True)
class StrikesPolicy:
    """``[strikes]``: accounts that keep coming from where they are blocked."""

    count: frozenset[str] = frozenset({"block"})  # subset of {"block", "warn"}
    threshold: int = 50  # >= 1
    window: float = 86_400.0  # seconds, > 0
    action: Literal["flag", "suspend"] = "suspend"
    suspend_for: float = 30 * 86_400.0  # seconds; 0 = until cleared
    status: int = 403  # 403 or 451


class _Checked:
    """The loader's mark on a Policy it made (see :class:`Policy`)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<made by geofence.load_policy>"


#: Passed by the loader, and only by the loader, as ``Policy(..., made_by=LOADER)``.
LOADER: Final = _Checked()

_MADE_BY_LOADER_ONLY = (
    "a geofence Policy is made only by geofence.load_policy(mapping), which validates it "
    "(a mapping, or the path of a .toml / .json file); build the mapping and pass it to "
    "load_policy, or straight to geofence.Engine.from_config(mapping)"
)


@record(frozen=True)
class Policy:
    """A validated policy: get one from ``geofence.load_policy(mapping_or_path)``.

    Constructing one directly, or copying one with changes (``dataclasses.replace``), raises
    ``TypeError``: a Policy that exists has passed every check of the loader.
    """

    mode: Literal["enforce", "report", "off"] = "enforce"
    default: Literal["allow", "block"] = "allow"
    allow_private: bool = True
    on_error: Literal["allow", "block"] = "allow"
    info_url: str | None = None
    message: str = DEFAULT_MESSAGE
    client_ip: ClientIPPolicy = field(default_factory=ClientIPPolicy)
    geoip: GeoIPPolicy = field(default_factory=GeoIPPolicy)
    regions: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    rules: tuple[RulePolicy, ...] = ()
    exempt_ips: tuple[Network, ...] = ()
    exempt_paths: tuple[str, ...] = ()
    # None when the table is absent: then accounts change no decision.
    accounts: AccountsPolicy | None = None
    strikes: StrikesPolicy | None = None  # never set without accounts
    exempt_accounts: tuple[str, ...] = ()  # account ids, and "@group" names of Account.groups
    # The policy's message with its languages (``message`` is its ``text``).
    messages: Message = field(default_factory=Message)
    page: PagePolicy = field(default_factory=PagePolicy)
    metrics: MetricsPolicy = field(default_factory=MetricsPolicy)
    _: KW_ONLY
    made_by: InitVar[object] = None

    def __post_init__(self, made_by: object) -> None:
        if made_by is not LOADER:
            raise TypeError(_MADE_BY_LOADER_ONLY)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # A subclass could construct itself without the loader's mark.
        raise TypeError("geofence.Policy cannot be subclassed; " + _MADE_BY_LOADER_ONLY)

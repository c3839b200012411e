"""The nginx target: configuration for ``ngx_http_geoip2_module`` (format "conf").

Two parts (DESIGN "Export"): the ``http {}`` part (the databases, the client address through
the realip module, and maps from country, subdivisions, path, method and host to the
decision) and the ``server {}`` part (the answers: a block's status, JSON body and headers,
a warning's headers, and the decision log line). How the decision is computed, all in maps
(evaluated lazily, once per request):

- one flag per condition of each rule (``$geofence_r2_path`` ...), one flag per rule
  (``$geofence_r2``: all its conditions hold), flags for an exempt address, an exempt path
  and a private client;
- ``$geofence_flags`` strings them together (``"000:0110"``) and ``$geofence_outcome`` picks
  the first rule that decides with regular expressions tried in order, as the engine tries
  rules (a dry-run rule is skipped but shown when the request is allowed);
- the outcome gives the answer, the warning's headers, the rule's name and the log fields.

The server part turns an enforced block into an internal rewrite to a location per answer
(``location = /.geofence-answer/451-0``), because only there can a fixed status carry its own
``Content-Type`` and headers; a warning adds its headers to whatever the server answers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from geofence.export._edge import (
    BlockAnswer,
    EdgeMatch,
    EdgePolicy,
    EdgeRule,
    host_regex,
    path_regex,
    warn_headers,
)
from geofence.export._errors import ExportError, Loss, settle
from geofence.export._targets import Rendered

DEFAULT_LOG = "/var/log/nginx/geofence.log"
SERVER_SUFFIX = ".server.conf"
ANSWER_PREFIX = "/.geofence-answer/"
_REF_SLOT = "@@geofence-ref@@"  # where $request_id goes in a block's body
#: geofence's anonymizer kinds -> the Anonymous-IP database's flags (as the engine reads them).
ANONYMOUS_FLAGS = {
    "vpn": "is_anonymous_vpn",
    "tor": "is_tor_exit_node",
    "public_proxy": "is_public_proxy",
    "residential_proxy": "is_residential_proxy",
    "hosting": "is_hosting_provider",
}
#: [client_ip] header -> the header realip reads (all but RFC 7239 Forwarded).
REALIP_HEADERS = {
    "x-forwarded-for": "X-Forwarded-For",
    "x-real-ip": "X-Real-IP",
    "cf-connecting-ip": "CF-Connecting-IP",
    "true-client-ip": "True-Client-IP",
    "fastly-client-ip": "Fastly-Client-IP",
}
_DOT_SEGMENT = r"^[^?]*/(?:\.|%2[eE]){1,2}(?:[/?]|$)"


def text(value: str) -> str:
    """``value`` as an nginx quoted string whose variables are not expanded: ``\\`` and
    ``"`` escaped, ``$`` written as ``${geofence_dollar}`` (a geo variable holding "$")."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return '"' + escaped.replace("$", "${geofence_dollar}") + '"'


def regex(pattern: str, *, caseless: bool = False) -> str:
    """A map key matching ``pattern`` (a regex nginx reads literally, only ``\\``, ``"``
    escaped for the quoted string)."""
    escaped = pattern.replace("\\", "\\\\").replace('"', '\\"')
    return f'"~{"*" if caseless else ""}{escaped}"'


@dataclass
class _Out:
    lines: list[str]

    def add(self, *lines: str) -> None:
        self.lines.extend(lines)

    def map(self, source: str, variable: str, entries: Iterable[tuple[str, str]]) -> None:
        self.lines.append(f"map {source} ${variable} {{")
        self.lines.extend(f"    {key} {value};" for key, value in entries)
        self.lines.append("}")


def render_nginx(
    edge: EdgePolicy, *, format: str = "conf", lossy: bool = False, log_path: str = DEFAULT_LOG
) -> Rendered:
    """The ``http {}`` part as ``text`` and the ``server {}`` part as
    ``files[".server.conf"]``. ``log_path``: where the server part logs decisions."""
    if format != "conf":
        raise ExportError(None, f"--format {format!r}: the nginx target has only 'conf'")
    if edge.country_db is None:
        raise ExportError(
            None,
            "geoip.country_db is not set: the policy uses the embedded default database, "
            "which nginx cannot read; the nginx target needs a MaxMind .mmdb file (set "
            "geoip.country_db to a GeoIP2/GeoLite2 Country or City database)",
        )
    losses = list(edge.losses) + _client_losses(edge)
    for rule in edge.rules:
        if rule.match.anonymizers and edge.anonymous_db is None:
            losses.append(Loss(rule.name, "anonymizers without geoip.anonymous_db"))
        if rule.match.asns and edge.asn_db is None:
            losses.append(Loss(rule.name, "asns without geoip.asn_db"))
    warnings = settle(losses, lossy=lossy)
    http = _http(edge, warnings)
    server = _server(edge, log_path)
    return Rendered(http, warnings, {SERVER_SUFFIX: server})


def _client_losses(edge: EdgePolicy) -> list[Loss]:
    client = edge.client
    if not client.trusted_proxies and client.hops is None:
        return []
    if client.header not in REALIP_HEADERS:
        return [
            Loss(
                None,
                f"client_ip.header = {client.header!r}: nginx's realip module cannot read "
                "RFC 7239 Forwarded; the client address would be the proxy's",
            )
        ]
    if client.hops is not None and client.hops > 1:
        return [
            Loss(
                None,
                f"client_ip.hops = {client.hops}: nginx's realip module takes the last "
                "address or walks trusted networks; list the proxies in trusted_proxies",
            )
        ]
    return []


# -- the http {} part --------------------------------------------------------------------------


def _http(edge: EdgePolicy, warnings: tuple[str, ...]) -> str:
    out = _Out([])
    out.add(
        "# geofence export for nginx: the http {} part (ngx_http_geoip2_module, realip, geo, map).",
        f"# Policy taken at {edge.at.isoformat()}, mode {edge.mode}.",
    )
    if edge.valid_until is not None:
        out.add(
            f"# Valid until {edge.valid_until.isoformat()}, when a rule changes phase: "
            "export again then."
        )
    out.add(
        "# nginx.conf must load the module first: load_module modules/ngx_http_geoip2_module.so;",
        "# Include this file in http {}, and the .server.conf file first in each server {}.",
    )
    out.add(*(f"# note: {n}" for n in edge.notes))
    out.add(*(f"# NOT EXACT (--lossy): {w}" for w in warnings))
    out.add("", "# The client address, as geofence's [client_ip] finds it.")
    client = edge.client
    if client.trusted_proxies or client.hops is not None:
        header = REALIP_HEADERS.get(client.header)
        if header is not None:
            trusted = client.trusted_proxies if client.hops is None else ("0.0.0.0/0", "::/0")
            out.add(*(f"set_real_ip_from {cidr};" for cidr in trusted))
            out.add(f"real_ip_header {header};")
            out.add(f"real_ip_recursive {'on' if client.hops is None else 'off'};")
    else:
        out.add("# (no trusted proxy: the client is the connection's address)")
    out.add(
        "",
        "# Databases (the policy's geoip files).",
        "geo $geofence_dollar {",
        '    default "$";',
        "}",
    )
    reload = f"    auto_reload {int(edge.reload_interval)}s;" if edge.reload_interval > 0 else None
    out.add(f"geoip2 {text(edge.country_db or '')} {{")
    if reload:
        out.add(reload)
    out.add(
        "    $geofence_db_country source=$remote_addr country iso_code;",
        "    $geofence_db_sub1 source=$remote_addr subdivisions 0 iso_code;",
        "    $geofence_db_sub2 source=$remote_addr subdivisions 1 iso_code;",
        "}",
    )
    kinds = sorted({k for r in edge.rules for k in r.match.anonymizers})
    if kinds and edge.anonymous_db is not None:
        out.add(f"geoip2 {text(edge.anonymous_db)} {{")
        if reload:
            out.add(reload)
        out.add(
            *(f"    $geofence_anon_{k} source=$remote_addr {ANONYMOUS_FLAGS[k]};" for k in kinds)
        )
        out.add("}")
    if any(r.match.asns for r in edge.rules) and edge.asn_db is not None:
        out.add(f"geoip2 {text(edge.asn_db)} {{")
        if reload:
            out.add(reload)
        out.add("    $geofence_asn source=$remote_addr autonomous_system_number;", "}")
    out.add("", "# Private clients (geofence's table) and exempt addresses.")
    out.add("geo $geofence_private_addr {", "    default 0;")
    out.add(*(f"    {cidr} 1;" for cidr in edge.private_networks), "}")
    out.add("geo $geofence_exempt_addr {", "    default 0;")
    out.add(*(f"    {cidr} 1;" for cidr in edge.exempt_ips), "}")
    _unresolved(out, edge)
    out.map(
        '"$geofence_unresolved$geofence_private_addr"',
        "geofence_private",
        [('"01"', "1"), ("default", "0")],
    )
    out.map(
        '"$geofence_unresolved$geofence_exempt_addr"',
        "geofence_exempt_ip",
        [('"01"', "1"), ("default", "0")],
    )
    out.add(
        "",
        '# Where the client is: "CC|sub1|sub2|"; "||" for a client without a country, and',
        "# for one whose address was not found or is private (when private clients meet rules).",
    )
    out.map(
        '"$geofence_unresolved$geofence_private_addr"',
        "geofence_looked_up",
        [('"00"', "1"), ('"01"', "1" if edge.allow_private else "0"), ("default", "0")],
    )
    for short, source in (("cc", "country"), ("s1", "sub1"), ("s2", "sub2")):
        out.map(
            "$geofence_looked_up",
            f"geofence_{short}",
            [("1", f"$geofence_db_{source}"), ("default", '""')],
        )
    where = '"$geofence_cc|$geofence_s1|$geofence_s2|"'
    out.map(where, "geofence_where", [("default", where)])
    out.add("", "# Exempt paths: never with a . or .. segment (the raw request's path).")
    exempt = path_regex(edge.exempt_paths)
    if exempt:
        out.map("$uri", "geofence_xp_glob", [(regex(exempt), "1"), ("default", "0")])
        out.map("$request_uri", "geofence_dotted", [(regex(_DOT_SEGMENT), "1"), ("default", "0")])
        out.map(
            '"$geofence_xp_glob$geofence_dotted"',
            "geofence_exempt_path",
            [('"10"', "1"), ("default", "0")],
        )
    else:
        out.map("$uri", "geofence_exempt_path", [("default", "0")])
    for index, rule in enumerate(edge.rules):
        out.add("", f"# rule {index}: {rule.name} ({rule.key}, {rule.action}, {rule.phase})")
        _rule_maps(out, index, rule.match)
    out.add("", "# The decision: the first rule that decides, as the engine tries them.")
    _decision(out, edge)
    return "\n".join(out.lines) + "\n"


def _unresolved(out: _Out, edge: EdgePolicy) -> None:
    """``$geofence_unresolved``: the peer is a trusted proxy and realip kept the peer's own
    address, so the chain named no usable client (garbage, a zone id, quotes, an integer
    form, no header, every entry trusted). geofence then has no client (unresolved_client)
    and never falls back to the proxy's address; realip does, so this undoes it."""
    client = edge.client
    out.add("", "# A chain that names no client: geofence's unresolved_client.")
    if (
        not (client.trusted_proxies or client.hops is not None)
        or client.header not in REALIP_HEADERS
    ):
        out.map('""', "geofence_unresolved", [("default", "0")])
        return
    out.add("geo $realip_remote_addr $geofence_peer_trusted {")
    if client.hops is not None:
        out.add("    default 1;")  # with hops the peer is not consulted
    else:
        out.add("    default 0;", *(f"    {cidr} 1;" for cidr in client.trusted_proxies))
    out.add("}")
    # A single-valued header (X-Real-IP, the CDN headers) holding a list: realip takes its
    # last entry, geofence refuses the header.
    single = client.header != "x-forwarded-for"
    listed = f"$http_{client.header.replace('-', '_')}" if single else ""
    out.map(
        f'"$geofence_peer_trusted|$realip_remote_addr|$remote_addr|{listed}"',
        "geofence_unresolved",
        [(regex(r"^1\|(.*)\|\1\|"), "1")]
        + ([(regex(r"^1\|.*,"), "1")] if single else [])
        + [("default", "0")],
    )


def _region_patterns(
    countries: frozenset[str], subdivisions: frozenset[str], any_country: bool, unknown: bool
) -> list[str]:
    patterns: list[str] = []
    if any_country:
        patterns.append(r"^[^|]")
    if unknown:
        patterns.append(r"^\|")
    if countries:
        patterns.append("^(?:" + "|".join(sorted(countries)) + r")\|")
    for code in sorted(subdivisions):
        country, _, sub = code.partition("-")
        patterns.append(f"^{country}\\|(?:.*\\|)?{re.escape(sub)}\\|")
    return patterns


def _rule_maps(out: _Out, index: int, match: EdgeMatch) -> None:
    name = f"geofence_r{index}"
    parts: list[str] = []
    if match.methods:
        methods = "|".join(re.escape(m) for m in sorted(match.methods))
        out.map(
            "$request_method",
            f"{name}_method",
            [(regex(f"^(?:{methods})$"), "1"), ("default", "0")],
        )
        parts.append(f"${name}_method")
    if match.hosts:
        out.map(
            "$host",
            f"{name}_host",
            [(regex(_nginx_host_regex(match.hosts)), "1"), ("default", "0")],
        )
        parts.append(f"${name}_host")
    if match.paths:
        out.map("$uri", f"{name}_path", [(regex(path_regex(match.paths)), "1"), ("default", "0")])
        parts.append(f"${name}_path")
    if match.has_regions or match.has_except:
        entries = [
            (regex(p), "0")
            for p in _region_patterns(
                match.except_countries,
                match.except_subdivisions,
                match.except_any_country,
                match.except_unknown,
            )
        ]
        entries += [
            (regex(p), "1")
            for p in _region_patterns(
                match.countries, match.subdivisions, match.any_country, match.unknown
            )
        ]
        entries.append(("default", "0" if match.has_regions else "1"))
        out.map("$geofence_where", f"{name}_region", entries)
        parts.append(f"${name}_region")
    if match.anonymizers:
        flags = "".join(f"$geofence_anon_{k}" for k in sorted(match.anonymizers))
        out.map(f'"{flags}"', f"{name}_anon", [(regex("1"), "1"), ("default", "0")])
        parts.append(f"${name}_anon")
    if match.asns:
        numbers = "|".join(str(n) for n in sorted(match.asns))
        out.map(
            "$geofence_asn", f"{name}_asn", [(regex(f"^(?:{numbers})$"), "1"), ("default", "0")]
        )
        parts.append(f"${name}_asn")
    if not parts:
        out.map('""', name, [("default", "1")])
        return
    out.map('"' + "".join(parts) + '"', name, [(f'"{"1" * len(parts)}"', "1"), ("default", "0")])


def _nginx_host_regex(globs: tuple[str, ...]) -> str:
    # nginx's $host keeps an IPv6 literal's brackets (the engine compares it without them).
    plain = [g for g in globs if ":" not in g]
    literal = [f"\\[{re.escape(g)}\\]" for g in globs if ":" in g]
    parts = [host_regex(tuple(plain))[1:-1]] if plain else []
    return "^(?:" + "|".join(parts + literal) + ")$"


@dataclass(frozen=True)
class _Outcome:
    token: str
    action: str  # allow | warn | block
    enforced: bool
    reason: str
    rule: EdgeRule | None = None


def _outcomes(edge: EdgePolicy) -> list[tuple[str, _Outcome]]:
    """(flags regex, outcome), in the order nginx must try them (first match wins).

    The flags are "XPV:" (exempt address, exempt path, allowed private client) and then one
    character per rule, "1" when it matches."""
    report = edge.mode == "report"
    rules = edge.rules
    pairs: list[tuple[str, _Outcome]] = [
        ("^1", _Outcome("exempt_ip", "allow", True, "exempt_ip")),
        ("^01", _Outcome("exempt_path", "allow", True, "exempt_path")),
    ]
    if edge.allow_private:
        pairs.append(("^001", _Outcome("private", "allow", True, "private")))
    # Dry runs that count: rules in report mode whose action is not "allow".
    counting = [i for i, r in enumerate(rules) if r.dry_run and r.action != "allow"]

    def prefix(upto: int, first_dry: int | None = None) -> str:
        chars = []
        for j in range(upto):
            rule = rules[j]
            if j == first_dry:
                chars.append("1")
            elif not rule.dry_run:
                chars.append("0")
            elif first_dry is not None and j < first_dry and j in counting:
                chars.append("0")  # an earlier counting dry run would have been shown instead
            else:
                chars.append(".")
        return "^...:" + "".join(chars)

    deciding = [i for i, r in enumerate(rules) if not r.dry_run]
    for i in [*deciding, len(rules)]:
        rule = rules[i] if i < len(rules) else None
        action = rule.action if rule is not None else edge.default
        end = "1" if rule is not None else ":"
        if action == "allow":
            # The request passes; the first counting dry run before it is what it shows.
            for d in (d for d in counting if d < i):
                dry = rules[d]
                pairs.append(
                    (prefix(i, d) + end, _Outcome(f"d{d}-{i}", dry.action, False, "rule", dry))
                )
        reason = "rule" if rule is not None else "default"
        token = f"r{i}" if rule is not None else "fallback"
        enforced = not report
        pairs.append((prefix(i) + end, _Outcome(token, action, enforced, reason, rule)))
    return pairs


def _decision(out: _Out, edge: EdgePolicy) -> None:
    # ${...}: a variable name would run on into a following "0".
    flags = "${geofence_exempt_ip}${geofence_exempt_path}" + (
        "${geofence_private}" if edge.allow_private else "0"
    )
    rule_flags = "".join(f"$geofence_r{i}" for i in range(len(edge.rules)))
    key = f'"{flags}:{rule_flags}:"'
    out.map(key, "geofence_flags", [("default", key)])
    pairs = _outcomes(edge)
    out.map("$geofence_flags", "geofence_outcome", [(regex(p), o.token) for p, o in pairs])
    outcomes = {o.token: o for _, o in pairs}
    out.map(
        "$geofence_outcome", "geofence_action", [(o.token, o.action) for o in outcomes.values()]
    )
    out.map(
        "$geofence_outcome",
        "geofence_rule",
        [(o.token, text(o.rule.name) if o.rule else '""') for o in outcomes.values()],
    )
    out.map(
        "$geofence_outcome",
        "geofence_enforced",
        [(o.token, "1" if o.enforced and o.action != "allow" else "0") for o in outcomes.values()],
    )
    out.map(
        "$geofence_outcome",
        "geofence_logged",
        [(o.token, "1") for o in outcomes.values() if o.action != "allow"] + [("default", "0")],
    )
    # Enforced blocks: "<status>-<answer>", the internal location that answers them.
    answers: dict[str, str] = {}
    warn_entries: dict[str, list[tuple[str, str]]] = {}
    for o in outcomes.values():
        if not o.enforced:
            continue
        if o.action == "block":
            status = o.rule.status if o.rule is not None else edge.default_status
            answers[o.token] = f"{status}-{_answer_id(edge, o.rule)}"
        elif o.action == "warn" and o.rule is not None:
            for name, value in warn_headers(o.rule, edge.answer_of(o.rule)):
                warn_entries.setdefault(name, []).append((o.token, text(value)))
    out.map("$geofence_outcome", "geofence_answer", [*answers.items(), ("default", '""')])
    for name in ("Sunset", "Deprecation", "Link", "Cache-Control"):
        variable = "geofence_warn_" + name.lower().replace("-", "_")
        out.map("$geofence_outcome", variable, [*warn_entries.get(name, []), ("default", '""')])
    out.add(
        "",
        "# One JSON line per decision that is not a plain allow (what the engine logs).",
        "log_format geofence_decision escape=json",
        '    \'{"time":"$time_iso8601","client":"$remote_addr","method":"$request_method",\'',
        '    \'"uri":"$request_uri","host":"$host","status":"$status",\'',
        '    \'"action":"$geofence_action","enforced":"$geofence_enforced",\'',
        '    \'"rule":"$geofence_rule","outcome":"$geofence_outcome","ref":"$request_id",\'',
        '    \'"country":"$geofence_db_country",\'',
        '    \'"subdivisions":"$geofence_db_sub1 $geofence_db_sub2"}\';',
    )


def _answer_id(edge: EdgePolicy, rule: EdgeRule | None) -> str:
    answer = edge.answer_of(rule)
    return "0" if answer == edge.answer else f"r{edge.rules.index(rule) if rule else 0}"


# -- the server {} part ------------------------------------------------------------------------


def _server(edge: EdgePolicy, log_path: str) -> str:
    out = _Out([])
    out.add(
        "# geofence export for nginx: the server {} part. Include it first in each server {}",
        "# (before any rewrite), next to the http {} part of the same export.",
        f"# Policy taken at {edge.at.isoformat()}, mode {edge.mode}.",
        "",
        f"access_log {text(log_path)} geofence_decision if=$geofence_logged;",
    )
    if edge.mode == "report":
        out.add("# Report mode: nothing is blocked or changed; decisions are only logged.")
        return "\n".join(out.lines) + "\n"
    answers: dict[str, tuple[int, BlockAnswer]] = {}
    for rule in [*edge.rules, None]:
        action = rule.action if rule is not None else edge.default
        if action != "block" or (rule is not None and rule.dry_run):
            continue
        status = rule.status if rule is not None else edge.default_status
        answers[f"{status}-{_answer_id(edge, rule)}"] = (status, edge.answer_of(rule))
    out.add(
        "",
        "# An enforced block: answered by an internal location (a fixed status with its headers).",
        "if ($geofence_answer) {",
        f"    rewrite ^ {ANSWER_PREFIX}$geofence_answer last;",
        "}",
    )
    for key, (status, answer) in answers.items():
        # The reference a support desk looks up: nginx's request id, also in the decision log.
        body = text(answer.json_body(ref=_REF_SLOT)).replace(_REF_SLOT, "$request_id")
        out.add(
            f"location = {ANSWER_PREFIX}{key} {{",
            "    internal;",
            "    default_type application/json;",
            '    add_header Cache-Control "private, no-store" always;',
        )
        link = answer.link("blocked-by")
        if link is not None:
            out.add(f"    add_header Link {text(link)} always;")
        out.add(
            "    add_header X-Content-Type-Options nosniff always;",
            f"    return {status} {body};",
            "}",
        )
    out.add(
        "",
        "# A warning: its headers on whatever this server answers (an empty value adds none).",
        "# nginx drops these where a location has add_header of its own: include them there too.",
        "add_header Sunset $geofence_warn_sunset always;",
        "add_header Deprecation $geofence_warn_deprecation always;",
        "add_header Link $geofence_warn_link always;",
        "add_header Cache-Control $geofence_warn_cache_control always;",
    )
    return "\n".join(out.lines) + "\n"

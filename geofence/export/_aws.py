"""AWS WAF: an :class:`~geofence.export._edge.EdgePolicy` as a wafv2 web ACL (CreateWebACL
input) with the IP sets it references (CreateIPSet inputs), as API JSON or Terraform JSON.

How first-match-wins is kept. Rules run by priority; Allow and Block end the evaluation, Count
does not. Exemptions, private clients and "allow" rules are Allow rules, blocks are Block with
the engine's JSON answer as a custom response (status, body, Cache-Control and Link). A rule the
policy runs in report mode is Count and lets the later rules decide, as in the engine. In report
mode every deciding rule is Count and adds the label ``geofence:decided``; each later rule
requires that label to be absent, so only the first match is counted, as the engine's
"would block".

What AWS WAF cannot do: a warning (it cannot add a header to a response it lets through),
anonymizers, and the engine's walk of a forwarding header from the right (GeoMatch reads the
first address of the header); each is a loss, an error unless ``lossy``.

Subdivisions: a geo match statement labels every request it inspects with
``awswaf:clientip:geo:region:<CC>-<region>``; a first Count rule inspects every request, and
rules match the label. AWS documents one region per request, so a code that is not first-level
ISO 3166-2 is a loss.
"""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from geofence._iso3166 import countries as known_countries
from geofence.export import _aws_statements as st
from geofence.export._cloudflare_output import comment, dump_json, terraform_literal
from geofence.export._edge import EdgeMatch, EdgePolicy, EdgeRule
from geofence.export._errors import Loss, settle
from geofence.export._targets import Rendered

AwsFormat = Literal["api", "terraform"]
AwsScope = Literal["CLOUDFRONT", "REGIONAL"]
#: Where AWS WAF finds the client: its source address, or the policy's forwarding header.
AwsClient = Literal["source", "header"]
DECIDED = "geofence:decided"
BODY_KEY = "geofence-block"
#: The forwarding headers that hold one address (the engine refuses a list in them).
SINGLE_VALUED = frozenset({"x-real-ip", "cf-connecting-ip", "true-client-ip", "fastly-client-ip"})
#: Web ACL capacity units (WCUs) included in the price, and the most a web ACL takes.
DEFAULT_CAPACITY = 1500
MAX_CAPACITY = 5000
#: How deep the Terraform provider's rule blocks nest statements (deeper: rule_json).
TF_MAX_DEPTH = 3


@dataclass
class _Acl:
    rules: list[dict[str, Any]] = field(default_factory=list)
    ip_sets: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> CreateIPSet
    losses: list[Loss] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    bodies: dict[str, dict[str, str]] = field(default_factory=dict)


def render_aws_waf(
    edge: EdgePolicy,
    *,
    format: AwsFormat = "api",
    lossy: bool = False,
    scope: AwsScope = "CLOUDFRONT",
    name: str = "geofence",
    client: AwsClient = "source",
) -> Rendered:
    """The AWS WAF form of ``edge``.

    ``api``: ``{"IPSets": [CreateIPSet input, ...], "WebACL": CreateWebACL input}``; each IP
    set is referenced from the web ACL as ``{{ipset:NAME}}``, to be replaced by the ARN that
    CreateIPSet returns. ``terraform``: ``aws_wafv2_ip_set`` and ``aws_wafv2_web_acl``
    resources (provider ``hashicorp/aws`` v5) that reference each other. CLOUDFRONT web ACLs
    are created in us-east-1.

    ``client="source"`` (the default): the client is the address that connected to the
    resource the web ACL protects (CloudFront's viewer, or the client of an ALB or API Gateway
    with nothing in front): ``[client_ip]`` describes the app's proxies, which this edge is.
    ``client="header"``: a proxy stands in front of that resource, and the policy's forwarding
    header is read (ForwardedIPConfig), exactly only for a single-address header with
    ``hops = 1``.
    """
    if format not in ("api", "terraform"):
        raise ValueError(f"format {format!r}: expected 'api' or 'terraform'")
    if not re.fullmatch(r"[\w\-]{1,100}", name):
        raise ValueError(f"name {name!r}: letters, digits, _ and - only")
    acl = _Acl(losses=list(edge.losses))
    if client not in ("source", "header"):
        raise ValueError(f"client {client!r}: expected 'source' or 'header'")
    forwarded = _forwarded(edge, acl) if client == "header" else None
    if client == "source" and (edge.client.trusted_proxies or edge.client.hops is not None):
        acl.notes.append(
            "the client is the web ACL's source address (the viewer at CloudFront, the "
            "client at an ALB); [client_ip] is the app's view behind them. With a proxy in "
            "front of the protected resource, export with client='header'"
        )
    _build(edge, acl, name, scope, forwarded, lossy=lossy)
    warnings = settle(acl.losses, lossy=lossy)
    notes = [*edge.notes, *acl.notes]
    if edge.valid_until is not None:
        notes.append(f"export again at {edge.valid_until.isoformat()}: a rule changes phase")
    web_acl = _web_acl(edge, acl, name, scope)
    if format == "api":
        document: dict[str, Any] = {"IPSets": list(acl.ip_sets.values()), "WebACL": web_acl}
    else:
        document = _terraform(acl, web_acl)
    if notes:
        document = {"//": comment(notes), **document}
    return Rendered(dump_json(document), warnings)


def _forwarded(edge: EdgePolicy, acl: _Acl) -> dict[str, str] | None:
    """The ForwardedIPConfig for the policy's forwarding header (None: it reads none)."""
    client = edge.client
    if not client.trusted_proxies and client.hops is None:
        return None  # the socket peer is the client: WAF's own source address
    config = {"HeaderName": client.header, "FallbackBehavior": "NO_MATCH"}
    if client.header in SINGLE_VALUED and client.hops == 1:
        acl.notes.append(
            f"the client is the address in {client.header} (FallbackBehavior NO_MATCH): a "
            "missing or malformed header matches no country and no IP set, and 'unknown' "
            "(as the engine's unresolved_client); what AWS WAF accepts as an address (ports, "
            "brackets) may differ from the engine's strict parsing"
        )
        return config
    if client.trusted_proxies:
        why = (
            "AWS WAF reads the header whoever sent it; the engine only believes it from "
            "trusted_proxies, so a direct client could name its own address"
        )
    else:
        why = (
            f"AWS WAF takes the first address of {client.header}; the engine takes the "
            f"{client.hops}. from the right, so a client could prepend its own"
        )
    acl.losses.append(Loss(None, f"client_ip: {why}"))
    return config


def _build(
    edge: EdgePolicy,
    acl: _Acl,
    name: str,
    scope: AwsScope,
    forwarded: dict[str, str] | None,
    *,
    lossy: bool,
) -> None:
    ip_forwarded = None if forwarded is None else {**forwarded, "Position": "FIRST"}
    codes = {c for r in edge.rules for c in r.match.subdivisions | r.match.except_subdivisions}
    if codes:
        # The statement labels every request it inspects, whichever countries it lists.
        inspect = sorted({c.split("-")[0] for c in codes})
        _add(acl, "geofence-region-labels", st.geo(inspect, forwarded), "Count")
        acl.notes.append(
            "rule geofence-region-labels counts every request: its geo match statement puts "
            "the region labels on it that the subdivision rules match"
        )
    exempt = _exempt(edge, acl, name, scope, ip_forwarded)
    if exempt is not None:
        _add(acl, "geofence-exempt", exempt, "Allow")
    report = edge.mode == "report"
    counted = False  # a report-mode Count before: later rules need its label to be absent
    for index, rule in enumerate(edge.rules):
        statement = _rule_statement(rule, acl, forwarded, lossy=lossy)
        if statement is None:
            continue
        rule_name = _rule_name(index, rule.name, acl)
        if rule.dry_run:
            if rule.action != "allow":
                _add(acl, rule_name, _after(statement, counted), "Count")
            continue
        if rule.action == "warn" and not report:
            acl.losses.append(
                Loss(
                    rule.name,
                    f"{_warning(rule)} cannot be expressed: AWS WAF adds no header to a "
                    "response it lets through; the rule allows instead (no Sunset, "
                    "Deprecation or Link)",
                )
            )
            _add(acl, rule_name, _after(statement, counted), "Allow")
        elif rule.action == "allow":
            _add(acl, rule_name, _after(statement, counted), "Allow")
        elif report:
            _add(acl, rule_name, _after(statement, counted), "Count", labels=[DECIDED])
            counted = True
        else:
            _add(acl, rule_name, _after(statement, counted), _block(edge, rule, rule.status, acl))
    if edge.default == "block" and report:
        _add(acl, "geofence-default", _after(st.everything(), counted), "Count")
    units = sum(st.capacity(made["Statement"]) for made in acl.rules)
    if units > MAX_CAPACITY:
        acl.losses.append(
            Loss(None, f"the rules need {units} WCUs; a web ACL takes at most {MAX_CAPACITY}")
        )
    elif units > DEFAULT_CAPACITY:
        acl.notes.append(
            f"the rules need {units} WCUs: above {DEFAULT_CAPACITY}, AWS charges for the extra"
        )
    for made in acl.rules:
        for regex in st.regexes_in(made["Statement"]):
            if len(regex) > st.MAX_REGEX:
                acl.losses.append(
                    Loss(
                        None,
                        f"{made['Name']}: a regular expression of {len(regex)} "
                        f"characters (AWS WAF takes {st.MAX_REGEX})",
                    )
                )


def _warning(rule: EdgeRule) -> str:
    if rule.enforce_from is None:
        return "a warning"
    return f"a warning (grace window until {rule.enforce_from.isoformat()})"


def _after(statement: st.Statement, counted: bool) -> st.Statement:
    if not counted:
        return statement
    return st.all_of([st.negate(st.label(DECIDED)), statement])


def _rule_name(index: int, name: str, acl: _Acl) -> str:
    slug = re.sub(r"[^\w\-]+", "-", name).strip("-")[:100] or "rule"
    if slug != name:
        acl.notes.append(f"rule {name!r} is named geofence-{index}-{slug} in the web ACL")
    return f"geofence-{index}-{slug}"


def _add(
    acl: _Acl,
    name: str,
    statement: st.Statement,
    action: str | dict[str, Any],
    *,
    labels: list[str] | None = None,
) -> None:
    rule: dict[str, Any] = {
        "Name": name,
        "Priority": len(acl.rules),
        "Statement": statement,
        "Action": {action: {}} if isinstance(action, str) else action,
    }
    if labels:
        rule["RuleLabels"] = [{"Name": label} for label in labels]
    rule["VisibilityConfig"] = _visibility(name)
    acl.rules.append(rule)


def _visibility(name: str) -> dict[str, Any]:
    return {"SampledRequestsEnabled": True, "CloudWatchMetricsEnabled": True, "MetricName": name}


def _block(edge: EdgePolicy, rule: EdgeRule | None, status: int, acl: _Acl) -> dict[str, Any]:
    answer = edge.answer_of(rule)
    body = {"ContentType": "APPLICATION_JSON", "Content": answer.json_body()}
    # One body per distinct answer (rules with their own message or code get their own).
    key = next((k for k, v in acl.bodies.items() if v == body), None)
    if key is None:
        key = BODY_KEY if not acl.bodies else f"{BODY_KEY}-{len(acl.bodies) + 1}"
        acl.bodies[key] = body
    headers = [{"Name": "Cache-Control", "Value": "private, no-store"}]
    link = answer.link("blocked-by")
    if link is not None:
        headers.append({"Name": "Link", "Value": link})
    response: dict[str, Any] = {
        "ResponseCode": status,
        "CustomResponseBodyKey": key,
        "ResponseHeaders": headers,
    }
    return {"Block": {"CustomResponse": response}}


def _exempt(
    edge: EdgePolicy,
    acl: _Acl,
    name: str,
    scope: AwsScope,
    forwarded: dict[str, str] | None,
) -> st.Statement | None:
    cidrs = list(edge.exempt_ips)
    if edge.allow_private:
        cidrs.extend(c for c in edge.private_networks if c not in cidrs)
    parts: list[st.Statement] = []
    for version, member in (
        ("IPV4", [c for c in cidrs if ":" not in c]),
        ("IPV6", [c for c in cidrs if ":" in c]),
    ):
        if not member:
            continue
        set_name = f"{name}-exempt-{version.lower()}"
        acl.ip_sets[set_name] = {
            "Name": set_name,
            "Scope": scope,
            "Description": "geofence exempt.ips and private clients",
            "IPAddressVersion": version,
            "Addresses": [_cidr(c) for c in member],
        }
        parts.append(st.ip_set("{{ipset:" + set_name + "}}", forwarded))
    if edge.exempt_paths:
        globs = [st.path(g) for g in edge.exempt_paths]
        if any(g is None for g in globs):
            paths = st.everything()
        else:
            paths = st.any_of([g for g in globs if g is not None])
        parts.append(st.all_of([paths, st.negate(st.dot_segment())]))
    return st.any_of(parts) if parts else None


def _cidr(text: str) -> str:
    # wafv2 wants a prefix length on every address.
    return text if "/" in text else text + ("/128" if ":" in text else "/32")


def _regions(
    countries: frozenset[str],
    subdivisions: frozenset[str],
    any_country: bool,
    unknown: bool,
    forwarded: dict[str, str] | None,
) -> list[st.Statement]:
    everyone = sorted(known_countries())
    if any_country and unknown:
        return [st.everything()]
    terms: list[st.Statement] = []
    if any_country:
        terms.append(st.geo(everyone, forwarded))
    elif countries:
        terms.append(st.geo(sorted(countries), forwarded))
    if unknown:
        # No label marks "no country"; not being in any country is.
        terms.append(st.negate(st.geo(everyone, forwarded)))
    if subdivisions and not any_country:
        terms.extend(st.region_label(c, forwarded is not None) for c in sorted(subdivisions))
    return terms


def _rule_statement(
    rule: EdgeRule, acl: _Acl, forwarded: dict[str, str] | None, *, lossy: bool
) -> st.Statement | None:
    m: EdgeMatch = rule.match
    if m.anonymizers:
        acl.losses.append(
            Loss(
                rule.name,
                "anonymizers (" + ", ".join(sorted(m.anonymizers)) + ") cannot be expressed: "
                "AWS WAF's anonymous-IP list is a managed rule group, not the policy's "
                "database; the rule is left out",
            )
        )
        return None
    deep = sorted(c for c in m.subdivisions | m.except_subdivisions if _level(c) > 1)
    if deep:
        acl.losses.append(
            Loss(
                rule.name,
                f"subdivisions {', '.join(deep)} are not first-level: AWS WAF labels one "
                "region per request; they never match",
            )
        )
    parts: list[st.Statement] = []
    regions = _regions(m.countries, m.subdivisions, m.any_country, m.unknown, forwarded)
    if regions:
        parts.append(st.any_of(regions))
    excepted = _regions(
        m.except_countries,
        m.except_subdivisions,
        m.except_any_country,
        m.except_unknown,
        forwarded,
    )
    if excepted:
        parts.append(st.negate(st.any_of(excepted)))
    if m.asns:
        if len(m.asns) > st.MAX_ASNS:
            acl.losses.append(Loss(rule.name, f"{len(m.asns)} ASNs (AWS WAF takes {st.MAX_ASNS})"))
        parts.append(st.asns(sorted(m.asns), forwarded))
    if m.methods:
        parts.append(st.any_of([st.method(x) for x in sorted(m.methods)]))
    if m.hosts:
        parts.append(st.hosts(m.hosts))
    if m.paths:
        globs = [st.path(g) for g in m.paths]
        if all(g is not None for g in globs):
            parts.append(st.any_of([g for g in globs if g is not None]))
    return st.all_of(parts) if parts else st.everything()


def _level(code: str) -> int:
    """1 for a first-level ISO 3166-2 code, 2 for one with a parent subdivision."""
    import pycountry  # lazily, as geofence._iso3166 does: its import costs ~0.1 s

    found = pycountry.subdivisions.get(code=code)  # type: ignore[no-untyped-call]
    return 2 if found is not None and getattr(found, "parent_code", None) else 1


def _web_acl(edge: EdgePolicy, acl: _Acl, name: str, scope: AwsScope) -> dict[str, Any]:
    if edge.default == "block" and edge.mode != "report":
        default: dict[str, Any] = _block(edge, None, edge.default_status, acl)
    else:
        default = {"Allow": {}}
    web_acl: dict[str, Any] = {
        "Name": name,
        "Scope": scope,
        "DefaultAction": default,
        "Description": f"geofence policy at {edge.at.strftime('%Y-%m-%dT%H:%M:%SZ')}, "
        f"{edge.mode} mode",
        "Rules": acl.rules,
        "VisibilityConfig": _visibility(name),
    }
    if acl.bodies:
        web_acl["CustomResponseBodies"] = acl.bodies
    return web_acl


# -- Terraform ---------------------------------------------------------------------------------

# API member -> Terraform block or attribute where snake_case alone gets it wrong.
_TF_NAMES = {
    "IPSetReferenceStatement": "ip_set_reference_statement",
    "IPSetForwardedIPConfig": "ip_set_forwarded_ip_config",
    "ForwardedIPConfig": "forwarded_ip_config",
    "ARN": "arn",
    "CloudWatchMetricsEnabled": "cloudwatch_metrics_enabled",
    "TextTransformations": "text_transformation",
    "Statements": "statement",
    "RuleLabels": "rule_label",
    "ResponseHeaders": "response_header",
    "AsnList": "asn_list",
}


def _snake(key: str) -> str:
    if key in _TF_NAMES:
        return _TF_NAMES[key]
    return re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()


def _tf(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {_snake(k): _tf(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_tf(v, key) for v in value]
    if key == "SearchString" and isinstance(value, str):
        return base64.b64decode(value).decode()  # Terraform takes the text itself
    return value


def _terraform(acl: _Acl, web_acl: dict[str, Any]) -> dict[str, Any]:
    ip_sets: dict[str, Any] = {}
    references: dict[str, str] = {}
    for set_name, body in acl.ip_sets.items():
        resource = set_name.replace("-", "_")
        ip_sets[resource] = {
            "name": body["Name"],
            "scope": body["Scope"],
            "description": body["Description"],
            "ip_address_version": body["IPAddressVersion"],
            "addresses": body["Addresses"],
        }
        references["{{ipset:" + set_name + "}}"] = f"${{aws_wafv2_ip_set.{resource}.arn}}"
    tf_acl: dict[str, Any] = {
        "name": web_acl["Name"],
        "scope": web_acl["Scope"],
        "description": web_acl["Description"],
        "default_action": _tf(web_acl["DefaultAction"]),
        "visibility_config": _tf(web_acl["VisibilityConfig"]),
    }
    deepest = max((st.depth(r["Statement"]) for r in web_acl["Rules"]), default=0)
    if deepest > TF_MAX_DEPTH:
        # The provider's rule blocks nest three statements deep; rule_json takes the API's
        # own JSON for the rules (with no drift detection, the provider warns).
        tf_acl["rule_json"] = json.dumps(web_acl["Rules"], ensure_ascii=False)
    else:
        tf_acl["rule"] = [_tf_rule(r) for r in web_acl["Rules"]]
    if "CustomResponseBodies" in web_acl:
        tf_acl["custom_response_body"] = [
            {"key": k, "content": v["Content"], "content_type": v["ContentType"]}
            for k, v in web_acl["CustomResponseBodies"].items()
        ]
    tf_acl = terraform_literal(tf_acl)
    text = dump_json(tf_acl)
    for placeholder, reference in references.items():
        # As a JSON value, and inside rule_json's string (where quotes are escaped).
        text = text.replace(f'"{placeholder}"', f'"{reference}"')
        text = text.replace(f'\\"{placeholder}\\"', f'\\"{reference}\\"')
    resources: dict[str, Any] = {}
    if ip_sets:
        resources["aws_wafv2_ip_set"] = terraform_literal(ip_sets)
    resources["aws_wafv2_web_acl"] = {"geofence": json.loads(text)}
    return {
        "terraform": {
            "required_providers": {"aws": {"source": "hashicorp/aws", "version": ">= 5.0"}}
        },
        "resource": resources,
    }


def _tf_rule(rule: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": rule["Name"],
        "priority": rule["Priority"],
        "action": _tf(rule["Action"]),
        "statement": _tf(rule["Statement"]),
    }
    if "RuleLabels" in rule:
        out["rule_label"] = _tf(rule["RuleLabels"])
    out["visibility_config"] = _tf(rule["VisibilityConfig"])
    return out

"""Cloudflare: an :class:`~geofence.export._edge.EdgePolicy` as a zone's custom rules (phase
``http_request_firewall_custom``) and, for warnings, response header transform rules (phase
``http_response_headers_transform``); as Rulesets API JSON or as Terraform JSON.

How first-match-wins is kept. Custom rules run in order; ``block`` ends the phase, ``log`` does
not, and ``skip`` with ``{"ruleset": "current"}`` ends it without an answer. So an exemption, a
private client, an ``allow`` rule and a warning are ``skip`` rules, a block is ``block`` with
the engine's JSON answer, and in report mode each rule is a ``log`` followed by a ``skip`` on
the same expression (the first match is the one logged, as the engine's "would block"). A rule
the policy itself runs in report mode (``mode = "report"`` on the rule) logs and lets the later
rules decide, as in the engine. The header phase does not see which custom rule matched, so a
warning's header rule carries the negation of everything that decides before it.

The client address at Cloudflare is the connecting address (``ip.src``): ``[client_ip]``
(forwarding header, trusted proxies, hops) describes the app's side and is moot here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from geofence.export._cloudflare_expr import (
    EVERYTHING,
    SOURCE,
    all_of,
    any_of,
    exempt_paths_condition,
    ip_set,
    match_condition,
    needs_regex,
    negate,
)
from geofence.export._cloudflare_output import comment, dump_json, terraform_literal
from geofence.export._edge import EdgePolicy, EdgeRule, warn_headers
from geofence.export._errors import Loss, settle
from geofence.export._targets import Rendered

CloudflarePlan = Literal["free", "pro", "business", "enterprise"]
CloudflareFormat = Literal["api", "terraform"]
PLANS: tuple[CloudflarePlan, ...] = ("free", "pro", "business", "enterprise")
#: Custom rules per zone (developers.cloudflare.com/waf/custom-rules).
CUSTOM_RULES_PER_PLAN: dict[CloudflarePlan, int] = {
    "free": 5,
    "pro": 20,
    "business": 100,
    "enterprise": 1000,
}
MAX_EXPRESSION = 4096
FIREWALL_PHASE = "http_request_firewall_custom"
HEADERS_PHASE = "http_response_headers_transform"
#: Custom-rule response status codes Cloudflare accepts.
RESPONSE_STATUSES = range(400, 500)
# What needs more than the Free plan: field or action -> the lowest plan that has it.
_SUBDIVISIONS_PLAN: CloudflarePlan = "business"
_REGEX_PLAN: CloudflarePlan = "business"
_LOG_PLAN: CloudflarePlan = "enterprise"
# Header operations: Sunset/Deprecation replace, Link and Cache-Control are added beside the
# app's own (the engine merges "private" into the app's Cache-Control).
_HEADER_OPERATION = {"sunset": "set", "deprecation": "set", "link": "add", "cache-control": "add"}


@dataclass
class _Rules:
    """The two phases being built, plus what the export found on the way."""

    firewall: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, Any]] = field(default_factory=list)
    losses: list[Loss] = field(default_factory=list)
    needs: dict[str, CloudflarePlan] = field(default_factory=dict)  # feature -> lowest plan
    notes: list[str] = field(default_factory=list)


def render_cloudflare(
    edge: EdgePolicy,
    *,
    format: CloudflareFormat = "api",
    lossy: bool = False,
    plan: CloudflarePlan | None = None,
) -> Rendered:
    """The Cloudflare form of ``edge``.

    ``api``: one JSON object whose keys are the phases and whose values are the bodies of
    ``PUT /zones/{zone_id}/rulesets/phases/{phase}/entrypoint``. ``terraform``: a ``.tf.json``
    with one ``cloudflare_ruleset`` per phase (provider ``cloudflare/cloudflare`` v5) and a
    ``cloudflare_zone_id`` variable. What Cloudflare cannot do exactly raises
    :class:`~geofence.export.ExportError` unless ``lossy``; with a ``plan``, what that plan
    lacks is such a loss too, without one the plan each feature needs is a note.
    """
    if format not in ("api", "terraform"):
        raise ValueError(f"format {format!r}: expected 'api' or 'terraform'")
    built = _Rules(losses=list(edge.losses))
    _build(edge, built, plan=plan, lossy=lossy)
    _check_plan(built, plan)
    warnings = settle(built.losses, lossy=lossy)
    notes = [*edge.notes, *built.notes]
    for feature, needed in built.needs.items():
        if plan is None:
            notes.append(f"plan: {feature} needs the {needed.capitalize()} plan or higher")
    if edge.valid_until is not None:
        notes.append(f"export again at {edge.valid_until.isoformat()}: a rule changes phase")
    description = _description(edge)
    if format == "api":
        document: dict[str, Any] = {
            FIREWALL_PHASE: {"description": description, "rules": built.firewall}
        }
        if built.headers:
            document[HEADERS_PHASE] = {"description": description, "rules": built.headers}
    else:
        document = _terraform(built, description)
    if notes:
        document = {"//": comment(notes), **document}
    return Rendered(dump_json(document), warnings)


def _description(edge: EdgePolicy) -> str:
    text = f"geofence policy at {edge.at.isoformat()}, {edge.mode} mode"
    if edge.valid_until is not None:
        text += f"; export again at {edge.valid_until.isoformat()}"
    return text


def _build(edge: EdgePolicy, out: _Rules, *, plan: CloudflarePlan | None, lossy: bool) -> None:
    report = edge.mode == "report"
    # Everything that has decided before the rule being built: a warning's header rule must
    # not fire where the engine decided otherwise earlier.
    decided: list[str] = []
    exempt = _exempt_condition(edge)
    if exempt is not None:
        out.firewall.append(
            _rule(
                "skip",
                exempt,
                "geofence exemptions (exempt.ips, exempt.paths, private clients)",
                "geofence_exempt",
            )
        )
        decided.append(exempt)
    if any(needs_regex(g) for g in edge.exempt_paths):
        _need(out, "a path glob with ? or [...] (the matches operator)", _REGEX_PLAN)
    subdivisions_ok = plan is None or _rank(plan) >= _rank(_SUBDIVISIONS_PLAN)
    for index, rule in enumerate(edge.rules):
        condition = _rule_condition(rule, out, subdivisions_ok=subdivisions_ok, lossy=lossy)
        if condition is None:
            continue
        ref = f"geofence_{index}"
        if rule.dry_run:
            # The rule's own report mode: it logs and the later rules still decide.
            if rule.action != "allow":
                _need(out, "the log action (report mode)", _LOG_PLAN)
                out.firewall.append(_rule("log", condition, rule.name, ref))
            continue
        if report or rule.action == "allow":
            if rule.action != "allow":
                _need(out, "the log action (report mode)", _LOG_PLAN)
                out.firewall.append(_rule("log", condition, rule.name, ref))
            out.firewall.append(
                _rule("skip", condition, f"{rule.name} (first match wins)", ref + "_stop")
            )
        elif rule.action == "block":
            out.firewall.append(_block(edge, rule, condition, rule.name, ref, rule.status, out))
        else:  # warn: the request passes (skip), the response gets the warning headers
            out.firewall.append(
                _rule("skip", condition, f"{rule.name} (warn: first match wins)", ref + "_stop")
            )
            out.headers.append(_warn(edge, rule, condition, decided, ref, out))
        decided.append(condition)
    if edge.default == "block":
        name = "geofence default (block)"
        if report:
            _need(out, "the log action (report mode)", _LOG_PLAN)
            out.firewall.append(_rule("log", EVERYTHING, name, "geofence_default"))
        else:
            out.firewall.append(
                _block(edge, None, EVERYTHING, name, "geofence_default", edge.default_status, out)
            )
    while out.firewall and out.firewall[-1]["action"] == "skip":
        out.firewall.pop()  # a skip with no rule after it changes nothing: save the slot
    if any(r["action"] == "block" for r in out.firewall):
        out.notes.append(
            "a Cloudflare block answers JSON only (no HTML page, no Content-Language) and "
            "without Cache-Control or Link headers; the body has no ref (no log line to find)"
        )
    if edge.client.trusted_proxies or edge.client.hops is not None:
        out.notes.append(
            "the client is the address that connected to Cloudflare (ip.src); [client_ip] "
            "is the origin's view behind Cloudflare and is moot here"
        )
    if out.headers:
        out.notes.append(
            "a warning adds Cache-Control: private beside the app's own header; the engine "
            "also drops public and s-maxage from it"
        )


def _exempt_condition(edge: EdgePolicy) -> str | None:
    ips = list(edge.exempt_ips)
    if edge.allow_private:
        # Not reachable through Cloudflare from the Internet, but kept so that the rules
        # decide like the engine whatever the address.
        ips.extend(c for c in edge.private_networks if c not in ips)
    parts: list[str] = []
    if ips:
        parts.append(f"{SOURCE} in {ip_set(ips)}")
    if edge.exempt_paths:
        paths = exempt_paths_condition(edge.exempt_paths)
        parts.append(f"({paths})" if parts else paths)
    if not parts:
        return None
    return any_of(parts) if len(parts) > 1 else parts[0]


def _rule_condition(
    rule: EdgeRule, out: _Rules, *, subdivisions_ok: bool, lossy: bool
) -> str | None:
    """The rule's expression, or None when it is left out (a loss, under ``--lossy``)."""
    m = rule.match
    if m.anonymizers:
        out.losses.append(
            Loss(
                rule.name,
                "anonymizers (" + ", ".join(sorted(m.anonymizers)) + ") cannot be expressed: "
                "Cloudflare has no VPN, proxy or hosting field (Tor exits get country T1, "
                "which is not the policy's database); the rule is left out",
            )
        )
        return None
    if any(needs_regex(g) for g in m.paths):
        _need(out, "a path glob with ? or [...] (the matches operator)", _REGEX_PLAN)
    subdivisions = bool(m.subdivisions or m.except_subdivisions)
    if subdivisions:
        _need(out, "subdivisions (ip.src.subdivision_1_iso_code / _2_)", _SUBDIVISIONS_PLAN)
    if subdivisions and not subdivisions_ok:
        out.losses.append(
            Loss(
                rule.name,
                "subdivisions ("
                + ", ".join(sorted(m.subdivisions | m.except_subdivisions))
                + ") need the ip.src.subdivision fields of the Business plan or higher; "
                "left out of the rule",
            )
        )
        only_subdivisions = not (m.countries or m.any_country or m.unknown)
        if lossy and m.subdivisions and only_subdivisions:
            return None  # nothing of its regions would remain: the rule would match anyone
        return match_condition(m, subdivisions=False)
    return match_condition(m)


def _rule(action: str, expression: str, description: str, ref: str) -> dict[str, Any]:
    rule: dict[str, Any] = {
        "ref": ref,
        "description": description,
        "expression": expression,
        "action": action,
    }
    if action == "skip":
        rule["action_parameters"] = {"ruleset": "current"}
    rule["enabled"] = True
    return rule


def _block(
    edge: EdgePolicy,
    rule_of: EdgeRule | None,
    expression: str,
    name: str,
    ref: str,
    status: int,
    out: _Rules,
) -> dict[str, Any]:
    if status not in RESPONSE_STATUSES:
        out.losses.append(Loss(name, f"status {status}: Cloudflare answers 400 to 499 only"))
    rule = _rule("block", expression, name, ref)
    rule["action_parameters"] = {
        "response": {
            "status_code": status,
            "content_type": "application/json",
            # No ref: a custom response has no request id to name the edge's log line.
            "content": edge.answer_of(rule_of).json_body(),
        }
    }
    rule["enabled"] = rule.pop("enabled")  # keep "enabled" last, as in the other rules
    return rule


def _warn(
    edge: EdgePolicy,
    rule: EdgeRule,
    condition: str,
    decided: list[str],
    ref: str,
    out: _Rules,
) -> dict[str, Any]:
    expression = condition
    if decided:
        # Each part in parentheses: "and" inside "or" must not rest on precedence.
        earlier = any_of([f"({d})" for d in decided]) if len(decided) > 1 else decided[0]
        expression = all_of([f"({condition})", negate(earlier)])
    headers = {
        name: {"operation": _HEADER_OPERATION[name.lower()], "value": value}
        for name, value in warn_headers(rule, edge.answer_of(rule))
    }
    if len(expression) > MAX_EXPRESSION:
        out.losses.append(
            Loss(
                rule.name,
                f"its warning's header rule is {len(expression)} characters (it repeats every "
                f"rule before it; Cloudflare takes {MAX_EXPRESSION})",
            )
        )
    return {
        "ref": ref + "_warn",
        "description": f"{rule.name} (warn)",
        "expression": expression,
        "action": "rewrite",
        "action_parameters": {"headers": headers},
        "enabled": True,
    }


def _need(out: _Rules, feature: str, plan: CloudflarePlan) -> None:
    out.needs.setdefault(feature, plan)


def _rank(plan: CloudflarePlan) -> int:
    return PLANS.index(plan)


def _check_plan(out: _Rules, plan: CloudflarePlan | None) -> None:
    for rule in [*out.firewall, *out.headers]:
        if len(rule["expression"]) > MAX_EXPRESSION:
            out.losses.append(
                Loss(
                    rule["description"],
                    f"its expression is {len(rule['expression'])} characters; Cloudflare takes "
                    f"{MAX_EXPRESSION}",
                )
            )
    count = len(out.firewall)
    lowest = next((p for p in PLANS if CUSTOM_RULES_PER_PLAN[p] >= count), None)
    if lowest is None:
        out.losses.append(Loss(None, f"{count} custom rules: no Cloudflare plan takes so many"))
    elif lowest != "free":
        _need(out, f"{count} custom rules", lowest)
    if plan is None:
        return
    for feature, needed in out.needs.items():
        if _rank(needed) > _rank(plan) and not feature.startswith("subdivisions"):
            out.losses.append(
                Loss(None, f"{feature} needs the {needed.capitalize()} plan (this is {plan})")
            )


def _terraform(out: _Rules, description: str) -> dict[str, Any]:
    resources: dict[str, Any] = {
        "geofence_firewall": _ruleset(FIREWALL_PHASE, out.firewall, description)
    }
    if out.headers:
        resources["geofence_warnings"] = _ruleset(HEADERS_PHASE, out.headers, description)
    return {
        "terraform": {
            "required_providers": {
                "cloudflare": {"source": "cloudflare/cloudflare", "version": ">= 5.0.0"}
            }
        },
        "variable": {
            "cloudflare_zone_id": {"type": "string", "description": "The zone to protect"}
        },
        "resource": {"cloudflare_ruleset": resources},
    }


def _ruleset(phase: str, rules: list[dict[str, Any]], description: str) -> dict[str, Any]:
    return {
        "zone_id": "${var.cloudflare_zone_id}",
        "name": f"geofence {phase}",
        "description": terraform_literal(description),
        "kind": "zone",
        "phase": phase,
        "rules": terraform_literal(rules),
    }

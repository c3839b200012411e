"""The README's July 9 policy exported to Cloudflare (golden), its expressions' literals read by
Cloudflare's parser and compared with the policy, and what Cloudflare cannot express: the VPN
rule, plan limits (subdivision fields, the log action, rule counts, regular expressions),
statuses, expression length, Terraform's template syntax.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from geofence.export import ExportError, plan, render
from geofence.export._cloudflare import render_cloudflare

octorules_wirefilter = pytest.importorskip("octorules_wirefilter")

DATA = Path(__file__).parent.parent / "data" / "maxmind" / "test-data"
GRACE = datetime(2024, 7, 1, tzinfo=timezone.utc)
ENFORCED = datetime(2024, 7, 10, tzinfo=timezone.utc)
SANCTIONED = ["CU", "IR", "KP", "SY", "UA-43", "UA-14", "UA-09", "UA-40"]
DOT_GUARDS = {"/./", "/../", "/.", "/.."}


def readme_policy(**changes: Any) -> dict[str, Any]:
    policy: dict[str, Any] = {
        "mode": "enforce",
        "default": "allow",
        "info_url": "https://example.com/supported-countries",
        "client_ip": {"trusted_proxies": ["10.0.0.0/8"]},
        "geoip": {
            "country_db": str(DATA / "GeoIP2-City-Test.mmdb"),
            "anonymous_db": str(DATA / "GeoIP2-Anonymous-IP-Test.mmdb"),
        },
        "regions": {"sanctioned": SANCTIONED},
        "rules": [
            {
                "name": "unsupported-regions",
                "action": "block",
                "regions": ["CN", "RU", "@sanctioned"],
                "paths": ["/v1/*"],
                "warn_from": "2024-06-25T00:00:00Z",
                "enforce_from": "2024-07-09T00:00:00Z",
            },
            {"name": "vpn", "action": "block", "anonymizers": ["vpn"], "status": 403},
        ],
        "exempt": {"paths": ["/healthz", "/static/*"]},
    }
    policy.update(changes)
    return policy


def export(at: datetime, mode: str = "enforce", **options: Any) -> tuple[dict[str, Any], Any]:
    edge = plan(readme_policy(), at=at, mode=mode)  # type: ignore[arg-type]
    rendered = render_cloudflare(edge, **options)
    return json.loads(rendered.text), rendered


def literals(expression: str) -> set[str]:
    parsed = octorules_wirefilter.parse_expression(expression)
    assert "error" not in parsed, parsed["error"]
    return set(parsed["string_literals"]) | set(parsed["regex_literals"])


def test_the_vpn_rule_is_refused_without_lossy() -> None:
    with pytest.raises(ExportError) as caught:
        render(readme_policy(), target="cloudflare", at=ENFORCED, mode="enforce")
    assert caught.value.rule == "vpn"
    assert "anonymizers (vpn) cannot be expressed" in caught.value.reason


def test_grace_window_golden() -> None:
    document, rendered = export(GRACE, lossy=True)
    assert rendered.warnings == (
        "rule 'vpn': anonymizers (vpn) cannot be expressed: Cloudflare has no VPN, proxy or "
        "hosting field (Tor exits get country T1, which is not the policy's database); the "
        "rule is left out",
    )
    # Nothing blocks during the grace window: every custom rule would be a skip at the end.
    assert document["http_request_firewall_custom"]["rules"] == []
    (warn,) = document["http_response_headers_transform"]["rules"]
    assert warn["description"] == "unsupported-regions (warn)"
    assert warn["action"] == "rewrite"
    assert warn["action_parameters"]["headers"] == {
        "Sunset": {"operation": "set", "value": "Tue, 09 Jul 2024 00:00:00 GMT"},
        "Deprecation": {"operation": "set", "value": "@1719273600"},
        "Link": {
            "operation": "add",
            "value": '<https://example.com/supported-countries>; rel="sunset"',
        },
        "Cache-Control": {"operation": "add", "value": "private"},
    }
    countries = {"CN", "RU", "CU", "IR", "KP", "SY"}
    subdivisions = {"UA-43", "UA-14", "UA-09", "UA-40"}
    # The warning fires unless an exemption applies: the exempt paths are in it, negated.
    assert literals(warn["expression"]) == (
        countries | subdivisions | {"/v1/*", "/healthz", "/static/*"} | DOT_GUARDS
    )
    assert "2024-07-09" in document["//"]  # export again when the block starts
    assert "[client_ip] is the origin's view behind Cloudflare" in document["//"]


def test_enforced_golden() -> None:
    document, _ = export(ENFORCED, lossy=True)
    exempt, block = document["http_request_firewall_custom"]["rules"]
    assert exempt["action"] == "skip"
    assert exempt["action_parameters"] == {"ruleset": "current"}
    assert literals(exempt["expression"]) == {"/healthz", "/static/*"} | DOT_GUARDS
    assert block == {
        "ref": "geofence_0",
        "description": "unsupported-regions",
        "expression": '(ip.src.country in {"CN" "CU" "IR" "KP" "RU" "SY"}'
        ' or ip.src.subdivision_1_iso_code in {"UA-09" "UA-14" "UA-40" "UA-43"}'
        ' or ip.src.subdivision_2_iso_code in {"UA-09" "UA-14" "UA-40" "UA-43"})'
        ' and http.request.uri.path strict wildcard "/v1/*"',
        "action": "block",
        "action_parameters": {
            "response": {
                "status_code": 451,
                "content_type": "application/json",
                "content": json.dumps(
                    {
                        "error": {
                            "code": "unsupported_country_region_territory",
                            "message": "This service is not available in your country, "
                            "region, or territory.",
                            "type": "request_forbidden",
                            "param": None,
                        }
                    }
                )
                + "\n",
            }
        },
        "enabled": True,
    }
    assert "http_response_headers_transform" not in document
    assert (
        "subdivisions (ip.src.subdivision_1_iso_code / _2_) needs the Business" in (document["//"])
    )


def test_report_mode_logs_the_first_match_and_needs_enterprise() -> None:
    document, _ = export(ENFORCED, mode="report", lossy=True)
    actions = [
        (r["action"], r["description"]) for r in document["http_request_firewall_custom"]["rules"]
    ]
    # The exemption and the log; the skip after the last log would change nothing.
    assert actions == [
        ("skip", "geofence exemptions (exempt.ips, exempt.paths, private clients)"),
        ("log", "unsupported-regions"),
    ]
    assert "the log action (report mode) needs the Enterprise plan" in document["//"]
    with pytest.raises(ExportError, match=r"log action .* needs the Enterprise plan"):
        export(ENFORCED, mode="report", lossy=False, plan="business")


def test_a_plan_without_subdivisions() -> None:
    with pytest.raises(ExportError, match="Business plan or higher"):
        export(ENFORCED, lossy=False, plan="pro")
    document, rendered = export(ENFORCED, lossy=True, plan="pro")
    block = document["http_request_firewall_custom"]["rules"][1]
    # The countries stay; the subdivisions are left out of the rule, with a warning.
    assert literals(block["expression"]) == {"CN", "CU", "IR", "KP", "RU", "SY", "/v1/*"}
    assert any("UA-09, UA-14, UA-40, UA-43" in w for w in rendered.warnings)


def test_a_rule_on_subdivisions_only_is_left_out_on_such_a_plan() -> None:
    policy = readme_policy(rules=[{"name": "crimea", "action": "block", "regions": ["UA-43"]}])
    edge = plan(policy, at=ENFORCED, mode="enforce")
    document = json.loads(render_cloudflare(edge, lossy=True, plan="free").text)
    # Without its region the rule would block everyone: it is not exported at all.
    assert all(r["action"] != "block" for r in document["http_request_firewall_custom"]["rules"])


def test_rule_counts_per_plan() -> None:
    rules = [
        {"name": f"r{i}", "action": "block", "regions": [c]}
        for i, c in enumerate(["CN", "RU", "IR", "KP", "SY", "CU"])
    ]
    edge = plan(readme_policy(rules=rules), at=ENFORCED, mode="enforce")
    with pytest.raises(ExportError, match="7 custom rules needs the Pro plan"):
        render_cloudflare(edge, plan="free")
    render_cloudflare(edge, plan="pro")


def test_status_403_and_a_regex_path() -> None:
    rules = [
        {"name": "x", "action": "block", "regions": ["CN"], "paths": ["/v[12]/*"], "status": 403}
    ]
    edge = plan(readme_policy(rules=rules), at=ENFORCED, mode="enforce")
    document = json.loads(render_cloudflare(edge).text)
    block = document["http_request_firewall_custom"]["rules"][1]
    assert block["action_parameters"]["response"]["status_code"] == 403
    parsed = octorules_wirefilter.parse_expression(block["expression"])
    assert "matches" in parsed["operators"]
    assert parsed["regex_field_pairs"] == [["http.request.uri.path", "(?s)^(?:/v[12]/.*)$"]]
    assert "matches operator) needs the Business plan" in document["//"]
    with pytest.raises(ExportError, match="matches operator"):
        render_cloudflare(edge, plan="pro")


def test_an_expression_too_long_is_refused() -> None:
    ips = [f"198.18.{i // 256}.{i % 256}/32" for i in range(400)]
    edge = plan(readme_policy(exempt={"ips": ips}), at=ENFORCED, mode="enforce")
    with pytest.raises(ExportError, match="Cloudflare takes 4096"):
        render_cloudflare(edge, lossy=False)


def test_terraform_is_literal_and_references_the_zone() -> None:
    policy = readme_policy(message="Not here: ${var.secret} %{ if x }")
    edge = plan(policy, at=ENFORCED, mode="enforce")
    document = json.loads(render_cloudflare(edge, format="terraform", lossy=True).text)
    ruleset = document["resource"]["cloudflare_ruleset"]["geofence_firewall"]
    assert ruleset["zone_id"] == "${var.cloudflare_zone_id}"
    assert ruleset["phase"] == "http_request_firewall_custom" and ruleset["kind"] == "zone"
    content = ruleset["rules"][1]["action_parameters"]["response"]["content"]
    assert "$${var.secret} %%{ if x }" in content
    assert document["terraform"]["required_providers"]["cloudflare"]["source"] == (
        "cloudflare/cloudflare"
    )


# The cloudflare_ruleset schema of the cloudflare/cloudflare provider v5 (docs/resources/
# ruleset.md), for the attributes the export writes.
RULESET_ATTRIBUTES = {"zone_id", "name", "description", "kind", "phase", "rules"}
RULE_ATTRIBUTES = {"action", "expression", "action_parameters", "description", "enabled", "ref"}
PARAMETERS = {
    "response": {"content", "content_type", "status_code"},
    "ruleset": None,
    "headers": None,
}


def test_terraform_uses_the_providers_attributes() -> None:
    policy = readme_policy()
    for at in (GRACE, ENFORCED):
        edge = plan(policy, at=at, mode="enforce")
        document = json.loads(render_cloudflare(edge, format="terraform", lossy=True).text)
        for ruleset in document["resource"]["cloudflare_ruleset"].values():
            assert set(ruleset) <= RULESET_ATTRIBUTES
            assert {"zone_id", "name", "kind", "phase"} <= set(ruleset)
            for rule in ruleset["rules"]:
                assert set(rule) <= RULE_ATTRIBUTES and {"action", "expression"} <= set(rule)
                for key, value in rule.get("action_parameters", {}).items():
                    assert key in PARAMETERS
                    if key == "response":
                        assert set(value) == PARAMETERS["response"]
                    elif key == "ruleset":
                        assert value == "current"
                    else:  # headers: a map of name -> {operation, value}
                        for change in value.values():
                            assert set(change) == {"operation", "value"}
                            assert change["operation"] in ("add", "set")

"""The README's July 9 policy exported to AWS WAF: the web ACL and IP sets checked against
botocore's wafv2 model, their shape (golden parts), what AWS WAF cannot express (the grace
window, the VPN rule, a forwarding header read from the left, a second-level subdivision),
report mode's first-match counting, and the Terraform form.
"""

from __future__ import annotations

import base64
import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from geofence.export import ExportError, plan, render
from geofence.export._aws import render_aws_waf

botocore_session = pytest.importorskip("botocore.session")
botocore_validate = pytest.importorskip("botocore.validate")

MODEL = botocore_session.get_session().get_service_model("wafv2")
DATA = Path(__file__).parent.parent / "data" / "maxmind" / "test-data"
GRACE = datetime(2024, 7, 1, tzinfo=timezone.utc)
ENFORCED = datetime(2024, 7, 10, tzinfo=timezone.utc)


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
        "regions": {"sanctioned": ["CU", "IR", "KP", "SY", "UA-43", "UA-14", "UA-09", "UA-40"]},
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


def validated(text: str) -> dict[str, Any]:
    """The API document, after botocore's validator and a check of its country codes against
    the model's enum (test_aws walks every enum and pattern on the scenario policies)."""
    document: dict[str, Any] = json.loads(text)
    for ip_set in document["IPSets"]:
        _validate("CreateIPSet", ip_set)
    _validate("CreateWebACL", document["WebACL"])
    return document


def _validate(operation: str, params: dict[str, Any]) -> None:
    shape = MODEL.operation_model(operation).input_shape
    report = botocore_validate.ParamValidator().validate(params, shape)
    assert not report.has_errors(), report.generate_report()
    codes = set(MODEL.shape_for("CountryCode").enum)
    for found in re.findall(r'"CountryCodes": \[([^\]]*)\]', json.dumps(params)):
        assert set(json.loads(f"[{found}]")) <= codes


def export(at: datetime, mode: str = "enforce", **options: Any) -> tuple[dict[str, Any], Any]:
    edge = plan(readme_policy(**options.pop("policy", {})), at=at, mode=mode)  # type: ignore[arg-type]
    rendered = render_aws_waf(edge, **options)
    if options.get("format") == "terraform":
        return json.loads(rendered.text), rendered
    return validated(rendered.text), rendered


def test_the_grace_window_and_the_vpn_rule_are_refused() -> None:
    with pytest.raises(ExportError) as caught:
        render(readme_policy(), target="aws-waf", at=GRACE, mode="enforce")
    reasons = [str(loss) for loss in caught.value.losses]
    assert any("vpn" in r and "anonymizers" in r for r in reasons)
    with pytest.raises(ExportError, match="a warning \\(grace window until 2024-07-09"):
        render(
            readme_policy(rules=readme_policy()["rules"][:1]),
            target="aws-waf",
            at=GRACE,
            mode="enforce",
        )


def test_enforced_golden() -> None:
    document, rendered = export(ENFORCED, lossy=True)
    assert len(rendered.warnings) == 1 and "rule 'vpn'" in rendered.warnings[0]
    acl = document["WebACL"]
    assert acl["Name"] == "geofence" and acl["Scope"] == "CLOUDFRONT"
    assert acl["DefaultAction"] == {"Allow": {}}
    labels, exempt, block = acl["Rules"]
    assert labels["Name"] == "geofence-region-labels" and labels["Action"] == {"Count": {}}
    assert labels["Statement"] == {"GeoMatchStatement": {"CountryCodes": ["UA"]}}
    assert exempt["Action"] == {"Allow": {}}
    assert block["Name"] == "geofence-0-unsupported-regions"
    assert block["Action"] == {
        "Block": {
            "CustomResponse": {
                "ResponseCode": 451,
                "CustomResponseBodyKey": "geofence-block",
                "ResponseHeaders": [
                    {"Name": "Cache-Control", "Value": "private, no-store"},
                    {
                        "Name": "Link",
                        "Value": '<https://example.com/supported-countries>; rel="blocked-by"',
                    },
                ],
            }
        }
    }
    regions, path = block["Statement"]["AndStatement"]["Statements"]
    assert regions["OrStatement"]["Statements"] == [
        {"GeoMatchStatement": {"CountryCodes": ["CN", "CU", "IR", "KP", "RU", "SY"]}},
        *(
            {"LabelMatchStatement": {"Scope": "LABEL", "Key": f"awswaf:clientip:geo:region:{c}"}}
            for c in ("UA-09", "UA-14", "UA-40", "UA-43")
        ),
    ]
    assert path == {
        "ByteMatchStatement": {
            "SearchString": base64.b64encode(b"/v1/").decode(),
            "FieldToMatch": {"UriPath": {}},
            "TextTransformations": [{"Priority": 0, "Type": "URL_DECODE"}],
            "PositionalConstraint": "STARTS_WITH",
        }
    }
    body = json.loads(acl["CustomResponseBodies"]["geofence-block"]["Content"])
    assert body["error"]["code"] == "unsupported_country_region_territory"
    # Private clients are exempt as in the engine: two IP sets, one per address family.
    assert [s["IPAddressVersion"] for s in document["IPSets"]] == ["IPV4", "IPV6"]
    assert "source address" in document["//"]


def test_report_mode_counts_only_the_first_match() -> None:
    rules = [
        {"name": "cn", "action": "block", "regions": ["CN"]},
        {"name": "api", "action": "block", "regions": ["CN", "RU"], "paths": ["/v1/*"]},
    ]
    document, _ = export(ENFORCED, mode="report", policy={"rules": rules})
    _, first, second = document["WebACL"]["Rules"]
    assert first["Action"] == {"Count": {}}
    assert first["RuleLabels"] == [{"Name": "geofence:decided"}]
    not_decided, _ = second["Statement"]["AndStatement"]["Statements"]
    assert not_decided == {
        "NotStatement": {
            "Statement": {"LabelMatchStatement": {"Scope": "LABEL", "Key": "geofence:decided"}}
        }
    }
    assert document["WebACL"]["DefaultAction"] == {"Allow": {}}


def test_forwarding_headers() -> None:
    with pytest.raises(ExportError, match="client_ip: AWS WAF reads the header whoever sent it"):
        export(
            ENFORCED,
            lossy=False,
            client="header",
            policy={"rules": [{"name": "cn", "action": "block", "regions": ["CN"]}]},
        )
    policy = {
        "client_ip": {"header": "x-forwarded-for", "hops": 1},
        "rules": [{"name": "cn", "action": "block", "regions": ["CN"]}],
    }
    with pytest.raises(ExportError, match="takes the first address of x-forwarded-for"):
        export(ENFORCED, client="header", policy=policy)
    policy["client_ip"] = {"header": "x-real-ip", "hops": 1}
    document, _ = export(ENFORCED, client="header", policy=policy)
    block = document["WebACL"]["Rules"][-1]
    assert block["Statement"]["GeoMatchStatement"]["ForwardedIPConfig"] == {
        "HeaderName": "x-real-ip",
        "FallbackBehavior": "NO_MATCH",
    }
    exempt = document["WebACL"]["Rules"][0]["Statement"]["OrStatement"]["Statements"][0]
    assert exempt["IPSetReferenceStatement"]["IPSetForwardedIPConfig"]["Position"] == "FIRST"


def test_a_second_level_subdivision_is_a_loss() -> None:
    rules = [{"name": "london", "action": "block", "regions": ["GB-LND"]}]
    with pytest.raises(ExportError, match="GB-LND are not first-level"):
        export(ENFORCED, policy={"rules": rules})


def test_each_answer_has_its_body() -> None:
    rules = [
        {"name": "cn", "action": "block", "regions": ["CN"]},
        {
            "name": "ir",
            "action": "block",
            "regions": ["IR"],
            "message": "Sanctions apply.",
            "code": "sanctioned_region",
        },
    ]
    document, _ = export(ENFORCED, policy={"rules": rules})
    bodies = document["WebACL"]["CustomResponseBodies"]
    assert sorted(bodies) == ["geofence-block", "geofence-block-2"]
    assert json.loads(bodies["geofence-block-2"]["Content"])["error"]["code"] == "sanctioned_region"


def test_terraform_rule_blocks() -> None:
    rules = [{"name": "cn", "action": "block", "regions": ["CN"], "paths": ["/v1/*"]}]
    document, _ = export(ENFORCED, format="terraform", policy={"rules": rules, "exempt": {}})
    resources = document["resource"]
    ipv4 = resources["aws_wafv2_ip_set"]["geofence_exempt_ipv4"]
    assert ipv4["ip_address_version"] == "IPV4" and "10.0.0.0/8" in ipv4["addresses"]
    acl = resources["aws_wafv2_web_acl"]["geofence"]
    text = json.dumps(acl)
    assert "${aws_wafv2_ip_set.geofence_exempt_ipv4.arn}" in text
    assert "{{ipset:" not in text
    assert '"search_string": "/v1/"' in text  # the text itself, not base64
    # Every key is Terraform's snake_case (no API CamelCase left).
    keys = re.findall(r'"([A-Za-z_]+)":', text)
    assert not [k for k in keys if re.search(r"[A-Z]", k)], keys
    assert acl["custom_response_body"][0]["content_type"] == "APPLICATION_JSON"
    assert [r["priority"] for r in acl["rule"]] == [0, 1]
    assert "rule_json" not in acl


def test_terraform_rule_json_when_statements_nest_deeper_than_three() -> None:
    api, _ = export(ENFORCED, lossy=True)
    document, _ = export(ENFORCED, lossy=True, format="terraform")
    acl = document["resource"]["aws_wafv2_web_acl"]["geofence"]
    assert "rule" not in acl
    # The exemption nests five deep (or, and, not, or, byte match): the provider's rule
    # blocks take three, so the rules are the API's JSON, with the IP sets referenced.
    rules = json.loads(acl["rule_json"])
    expected = json.dumps(api["WebACL"]["Rules"])
    for name in ("geofence-exempt-ipv4", "geofence-exempt-ipv6"):
        resource = name.replace("-", "_")
        expected = expected.replace(
            "{{ipset:" + name + "}}", "${aws_wafv2_ip_set." + resource + ".arn}"
        )
    assert rules == json.loads(expected)


def test_capacity_units() -> None:
    from geofence.export._aws_statements import capacity

    document, _ = export(ENFORCED, lossy=True)
    rules = document["WebACL"]["Rules"]
    # Region labels: one geo match. Exempt: two IP sets, /healthz and /static/ (2 + 10 for
    # URL_DECODE each), the dot-segment guard (two CONTAINS at 10 + 10, two ENDS_WITH at 2 + 10).
    # The block: a geo match, four label matches, /v1/ (2 + 10).
    assert [capacity(r["Statement"]) for r in rules] == [1, 2 + 24 + 40 + 24, 1 + 4 + 12]
    many = [
        # 14 WCUs each: a geo match, and a regular expression with URL_DECODE.
        {"name": f"r{i}", "action": "block", "regions": ["CN"], "paths": [f"/a/*/x{i}/*"]}
        for i in range(400)
    ]
    with pytest.raises(ExportError, match="WCUs; a web ACL takes at most 5000"):
        export(ENFORCED, policy={"rules": many})

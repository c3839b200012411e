"""The AWS WAF export: valid for the wafv2 API, and deciding what the edge form decides.

Validity: the CreateWebACL and CreateIPSet inputs go through botocore's own parameter validator
and through a walk of botocore's wafv2 service model that also checks what botocore leaves to
the server: enums (CountryCode among them), string patterns, lengths, and that a Statement
holds exactly one statement.

Decisions: the web ACL is run the way AWS WAF runs one (rules by priority; Allow and Block end
it, Count adds the rule's labels and goes on; a geo match statement labels every request it
inspects with its country and one region) on every row of each policy's scenario table, and
compared with ``geofence.export.decide`` on the edge form with AWS's documented losses applied
(a warning allows, an anonymizer rule is left out, a region is the record's first level).
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import ipaddress
import json
import re
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import unquote

import pytest

from geofence import load_policy
from geofence.export import EdgeFacts, EdgePolicy, decide, plan
from geofence.export._aws import render_aws_waf
from geofence.export._scenarios import Scenario, scenario_table

botocore_session = pytest.importorskip("botocore.session")
botocore_validate = pytest.importorskip("botocore.validate")

MODEL = botocore_session.get_session().get_service_model("wafv2")
Exported = tuple[dict[str, Any], list[Any]]
DEFAULT = "default"


# -- validation against the service model ----------------------------------------------------


def model_errors(value: Any, shape: Any, path: str = "") -> list[str]:
    """What botocore's validator does not check: enums, patterns, lengths, unions."""
    errors: list[str] = []
    kind = shape.type_name
    meta = shape.metadata
    if kind == "structure":
        if not isinstance(value, dict):
            return [f"{path}: expected an object"]
        for key in value:
            if key not in shape.members:
                errors.append(f"{path}.{key}: not a member of {shape.name}")
        for key in shape.required_members:
            if key not in value:
                errors.append(f"{path}.{key}: required by {shape.name}")
        if shape.name == "Statement" and len(value) != 1:
            errors.append(f"{path}: a Statement holds exactly one statement, not {sorted(value)}")
        for key, item in value.items():
            if key in shape.members:
                errors.extend(model_errors(item, shape.members[key], f"{path}.{key}"))
    elif kind == "list":
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        errors.extend(_bounds(len(value), meta, path, "items"))
        for i, item in enumerate(value):
            errors.extend(model_errors(item, shape.member, f"{path}[{i}]"))
    elif kind == "map":
        if not isinstance(value, dict):
            return [f"{path}: expected an object"]
        errors.extend(_bounds(len(value), meta, path, "entries"))
        for key, item in value.items():
            errors.extend(model_errors(key, shape.key, f"{path} key {key!r}"))
            errors.extend(model_errors(item, shape.value, f"{path}[{key!r}]"))
    elif kind == "string":
        if not isinstance(value, str):
            return [f"{path}: expected a string"]
        if shape.enum and value not in shape.enum:
            errors.append(f"{path}: {value!r} is not one of {shape.name}")
        errors.extend(_bounds(len(value), meta, path, "characters"))
        if "pattern" in meta and re.fullmatch(meta["pattern"], value) is None:
            errors.append(f"{path}: {value!r} does not match {meta['pattern']}")
    elif kind == "blob":
        try:
            raw = base64.b64decode(value, validate=True)
        except (ValueError, TypeError):
            return [f"{path}: not base64"]
        errors.extend(_bounds(len(raw), meta, path, "bytes"))
    elif kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            return [f"{path}: expected an integer"]
        errors.extend(_bounds(value, meta, path, ""))
    elif kind == "boolean" and not isinstance(value, bool):
        errors.append(f"{path}: expected a boolean")
    return errors


def _bounds(n: int, meta: dict[str, Any], path: str, unit: str) -> list[str]:
    errors = []
    if "min" in meta and n < meta["min"]:
        errors.append(f"{path}: {n} {unit} < min {meta['min']}")
    if "max" in meta and n > meta["max"]:
        errors.append(f"{path}: {n} {unit} > max {meta['max']}")
    return errors


def validate(operation: str, params: dict[str, Any]) -> None:
    shape = MODEL.operation_model(operation).input_shape
    # ARNs are placeholders until the IP sets exist; they must still fit the ARN shape.
    report = botocore_validate.ParamValidator().validate(params, shape)
    assert not report.has_errors(), report.generate_report()
    errors = model_errors(params, shape, operation)
    assert not errors, "\n".join(errors)


def validate_document(document: dict[str, Any]) -> None:
    for ip_set in document["IPSets"]:
        validate("CreateIPSet", ip_set)
    validate("CreateWebACL", document["WebACL"])
    names = [r["Name"] for r in document["WebACL"]["Rules"]]
    assert len(names) == len(set(names))
    assert [r["Priority"] for r in document["WebACL"]["Rules"]] == list(range(len(names)))


def test_the_model_walk_catches_what_botocore_does_not() -> None:
    good = {"CountryCodes": ["CN"]}
    shape = MODEL.shape_for("GeoMatchStatement")
    assert model_errors(good, shape) == []
    assert model_errors({"CountryCodes": ["UK"]}, shape)  # not an ISO code: enum
    assert model_errors({"CountryCodes": []}, shape)  # min 1
    rule_name = MODEL.shape_for("EntityName")
    assert model_errors("unsupported regions", rule_name)  # pattern: no spaces
    two = {"GeoMatchStatement": good, "LabelMatchStatement": {"Scope": "LABEL", "Key": "a"}}
    assert model_errors(two, MODEL.shape_for("Statement"))


def test_country_codes_are_the_models() -> None:
    from geofence._iso3166 import countries

    assert set(MODEL.shape_for("CountryCode").enum) == set(countries())


# -- running a web ACL -----------------------------------------------------------------------


@dataclasses.dataclass
class Request:
    ip: str | None  # the address WAF uses (None: the header names none: fallback)
    country: str | None
    region: str | None  # the one region label AWS WAF gives
    path: str
    method: str
    host: str  # the Host header as sent
    asn: int | None


class Simulated:
    def __init__(self, document: dict[str, Any]) -> None:
        self.acl = document["WebACL"]
        self.sets = {
            "{{ipset:" + s["Name"] + "}}": tuple(s["Addresses"]) for s in document["IPSets"]
        }
        self.bodies = self.acl.get("CustomResponseBodies", {})

    def run(self, request: Request) -> tuple[Any, ...]:
        labels: set[str] = set()
        counted: list[str] = []
        for rule in sorted(self.acl["Rules"], key=lambda r: r["Priority"]):
            if not self.matches(rule["Statement"], request, labels):
                continue
            action = rule["Action"]
            if "Count" in action:
                labels.update(label["Name"] for label in rule.get("RuleLabels", ()))
                counted.append(rule["Name"])
            elif "Allow" in action:
                return ("pass", None, None, None, tuple(counted))
            else:
                return self.block(rule["Name"], action["Block"], tuple(counted))
        default = self.acl["DefaultAction"]
        if "Block" in default:
            return self.block(DEFAULT, default["Block"], tuple(counted))
        return ("pass", None, None, None, tuple(counted))

    def block(self, name: str, block: dict[str, Any], counted: tuple[str, ...]) -> tuple[Any, ...]:
        response = block["CustomResponse"]
        body = self.bodies[response["CustomResponseBodyKey"]]
        assert {"Name": "Cache-Control", "Value": "private, no-store"} in response[
            "ResponseHeaders"
        ]
        return ("block", name, response["ResponseCode"], body["Content"], counted)

    def matches(self, statement: dict[str, Any], r: Request, labels: set[str]) -> bool:
        ((kind, body),) = statement.items()
        if kind == "AndStatement":
            # Every part is inspected (a list, not a generator): a geo match labels the
            # request whether or not the statement around it has already failed.
            return all([self.matches(s, r, labels) for s in body["Statements"]])  # noqa: C419
        if kind == "OrStatement":
            return any([self.matches(s, r, labels) for s in body["Statements"]])  # noqa: C419
        if kind == "NotStatement":
            return not self.matches(body["Statement"], r, labels)
        if kind == "GeoMatchStatement":
            if r.ip is None:
                return body["ForwardedIPConfig"]["FallbackBehavior"] == "MATCH"
            source = "forwardedip" if "ForwardedIPConfig" in body else "clientip"
            if r.country is not None:
                labels.add(f"awswaf:{source}:geo:country:{r.country}")
                if r.region is not None:
                    labels.add(f"awswaf:{source}:geo:region:{r.region}")
            return r.country in body["CountryCodes"]
        if kind == "LabelMatchStatement":
            return body["Key"] in labels
        if kind == "IPSetReferenceStatement":
            if r.ip is None:
                return body["IPSetForwardedIPConfig"]["FallbackBehavior"] == "MATCH"
            return _in_networks(r.ip, self.sets[body["ARN"]])
        if kind == "AsnMatchStatement":
            return r.asn in body["AsnList"]
        value = self.field(body["FieldToMatch"], r)
        for transform in body["TextTransformations"]:
            value = {"NONE": value, "URL_DECODE": unquote(value), "LOWERCASE": value.lower()}[
                transform["Type"]
            ]
        if kind == "SizeConstraintStatement":
            assert body["ComparisonOperator"] == "GE"
            return len(value) >= body["Size"]
        if kind == "RegexMatchStatement":
            return re.search(body["RegexString"], value) is not None
        assert kind == "ByteMatchStatement", kind
        wanted = base64.b64decode(body["SearchString"]).decode()
        return {
            "EXACTLY": value == wanted,
            "STARTS_WITH": value.startswith(wanted),
            "ENDS_WITH": value.endswith(wanted),
            "CONTAINS": wanted in value,
        }[body["PositionalConstraint"]]

    @staticmethod
    def field(field: dict[str, Any], r: Request) -> str:
        if "UriPath" in field:
            return r.path
        if "Method" in field:
            return r.method
        assert field["SingleHeader"]["Name"] == "host"
        return r.host


@functools.cache
def _networks(cidrs: tuple[str, ...]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(c) for c in cidrs]


@functools.lru_cache(maxsize=4096)
def _in_networks(ip: str, cidrs: tuple[str, ...]) -> bool:
    address = ipaddress.ip_address(ip)
    return any(address in network for network in _networks(cidrs))


def _region(facts: EdgeFacts) -> str | None:
    """The one region AWS WAF labels a request with: the record's first level (its data has
    first-level ISO 3166-2 regions; a second-level code there is not one)."""
    first = facts.subdivisions[0] if facts.subdivisions else None
    return None if first is None or _second_level(first) else first


def aws_request(edge: EdgePolicy, facts: EdgeFacts, scenario: Scenario) -> Request:
    private = facts.client_ip is not None and _in_networks(facts.client_ip, edge.private_networks)
    country = None if private else facts.country
    region = _region(facts) if country else None
    return Request(
        facts.client_ip, country, region, facts.path, facts.method, scenario.request.host, facts.asn
    )


@functools.cache
def _second_level(code: str) -> bool:
    import pycountry

    found = pycountry.subdivisions.get(code=code)
    return bool(found is not None and found.parent_code)


@functools.lru_cache(maxsize=64)
def as_aws(edge: EdgePolicy) -> EdgePolicy:
    """The edge form with AWS WAF's documented losses applied."""
    rules = []
    for original in edge.rules:
        if original.match.anonymizers:
            continue  # left out (a loss)
        rule = original
        if rule.action == "warn" and not rule.dry_run and edge.mode == "enforce":
            rule = dataclasses.replace(rule, action="allow")  # no warning headers (a loss)
        m = rule.match
        first = dataclasses.replace(  # a second-level code is never a region label (a loss)
            m,
            subdivisions=frozenset(c for c in m.subdivisions if not _second_level(c)),
            except_subdivisions=frozenset(c for c in m.except_subdivisions if not _second_level(c)),
        )
        if m.has_regions and not first.has_regions:
            continue  # its only region is a label AWS WAF never gives: it matches no one
        rules.append(dataclasses.replace(rule, match=first))
    return dataclasses.replace(edge, rules=tuple(rules))


def expected(edge: EdgePolicy, facts: EdgeFacts) -> tuple[Any, ...]:
    edge = as_aws(edge)
    region = _region(facts)  # one region label
    facts = dataclasses.replace(facts, subdivisions=(region,) if region else ())
    outcome = decide(edge, facts)
    deciding = outcome.rule if outcome.rule not in outcome.dry_runs else None
    counted = list(outcome.dry_runs)
    if edge.mode == "report" and outcome.action != "allow" and (deciding or outcome.rule is None):
        counted.append(deciding or DEFAULT)
    if outcome.action == "block" and outcome.enforced:
        rule = edge.rule(outcome.rule) if outcome.rule else None
        body = edge.answer_of(rule).json_body()
        return ("block", outcome.rule or DEFAULT, outcome.status, body, tuple(counted))
    return ("pass", None, None, None, tuple(counted))


def _plain(got: tuple[Any, ...]) -> tuple[Any, ...]:
    """AWS rule names back to geofence names ("geofence-3-eu-writes" -> "eu-writes")."""

    def name(n: str | None) -> str | None:
        if n is None or n == DEFAULT:
            return n
        return "default" if n == "geofence-default" else re.sub(r"^geofence-\d+-", "", n)

    counted = tuple(name(n) for n in got[4] if n != "geofence-region-labels")
    return (got[0], name(got[1]), got[2], got[3], counted)


def run_table(
    mapping: dict[str, Any], clients: list[Any], mode: str, *, lossy: bool, header: bool = False
) -> Counter[str]:
    policy = load_policy(mapping)
    counts: Counter[str] = Counter()
    mismatches: list[str] = []
    by_instant: dict[datetime, tuple[EdgePolicy, Simulated, str]] = {}
    done: dict[tuple[str, EdgeFacts, str], tuple[tuple[Any, ...], tuple[Any, ...]]] = {}
    for scenario in scenario_table(policy, clients):
        if scenario.at not in by_instant:
            edge = plan(policy, at=scenario.at, mode=mode)  # type: ignore[arg-type]
            client = "header" if header else "source"
            document = json.loads(render_aws_waf(edge, lossy=lossy, client=client).text)
            validate_document(document)
            key = json.dumps([document["WebACL"]["Rules"], document["WebACL"]["DefaultAction"]])
            by_instant[scenario.at] = (edge, Simulated(document), key)
        edge, simulated, key = by_instant[scenario.at]
        facts = scenario.facts()
        if facts.client_ip is None and not header:
            counts["moot: no usable address (AWS WAF always has the source address)"] += 1
            continue
        if (key, facts, scenario.request.host) not in done:
            done[key, facts, scenario.request.host] = (
                expected(edge, facts),
                _plain(simulated.run(aws_request(edge, facts, scenario))),
            )
        want, got = done[key, facts, scenario.request.host]
        counts["rows"] += 1
        counts[want[0]] += 1
        counts["logged"] += bool(want[-1])
        if got != want:
            counts["mismatches"] += 1
            if len(mismatches) < 10:
                mismatches.append(f"{scenario}\n  edge form {want}\n  aws waf   {got}")
    assert not mismatches, "\n".join(mismatches)
    return counts


@pytest.mark.parametrize(
    ("name", "mode"),
    [("main", "enforce"), ("main", "report"), ("allowlist", "enforce"), ("report", "report")],
)
def test_aws_waf_decides_what_the_edge_form_decides(
    name: str, mode: str, exported: Callable[[str], Exported]
) -> None:
    """The policy with the client as the socket peer (what AWS WAF sees without a header)."""
    mapping, clients = exported(name)
    # lossy: as_aws() applies the losses (warnings allow, second-level codes never match).
    counts = run_table(mapping, clients, mode, lossy=True)
    print(name, mode, dict(counts))
    assert counts["mismatches"] == 0 and counts["rows"] > 500
    if mode == "enforce":
        assert counts["block"] and counts["pass"]
    else:
        assert counts["logged"]


def test_a_forwarding_header_falls_back_to_no_match(exported: Callable[[str], Exported]) -> None:
    """With the policy's X-Forwarded-For (lossy: AWS reads its first address), a chain that
    names no usable address matches no country and no IP set, and "unknown": as the engine's
    unresolved_client."""
    mapping, clients = exported("allowlist")
    counts = run_table(mapping, clients, "enforce", lossy=True, header=True)
    assert counts["mismatches"] == 0 and counts["rows"] > 500
    # The rows whose chain names no usable address are in the table.
    counts = run_table(mapping, clients, "enforce", lossy=True, header=False)
    assert counts["moot: no usable address (AWS WAF always has the source address)"] > 0
    assert counts["mismatches"] == 0 and counts["rows"] > 500

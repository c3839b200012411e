"""The Cloudflare export decides what the edge form decides.

Every expression is parsed by Cloudflare's own parser (octorules-wirefilter), its fields are
fields Cloudflare has, and its literals are the policy's; then the exported rules are run, in
Cloudflare's order and with its actions (block ends the phase, log does not, skip ends it
without an answer; the header phase sees every request that was not blocked), on every row of
each policy's generated scenario table, and what comes out (blocked or not, status, body,
which rule, the warning's headers, what was logged) is compared with
``geofence.export.decide`` on the same row.

The evaluator for the part of the Rules language the export writes is here too (Cloudflare's
parser only parses): it is held to that parser on every expression (same literals), and it is
strict: ``and`` and ``or`` mixed without parentheses is an error, as is any operator the export
does not write.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Union

import pytest

from geofence import load_policy
from geofence.export import EdgeFacts, EdgePolicy, decide, plan, warn_headers
from geofence.export._cloudflare import (
    FIREWALL_PHASE,
    HEADERS_PHASE,
    MAX_EXPRESSION,
    render_cloudflare,
)
from geofence.export._scenarios import Scenario, scenario_table

# -- an evaluator for the exported expressions -------------------------------------------------

octorules_wirefilter = pytest.importorskip("octorules_wirefilter")

Value = Union[str, int, None]  # noqa: UP007 (a runtime alias, Python 3.10 has | too)
Fields = Mapping[str, Value]

_TOKEN = re.compile(
    r"""\s*(?:
    (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<punct>[(){},])
  | (?P<cidr>[0-9A-Fa-f:.]+/[0-9]+|[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+|[0-9A-Fa-f]*:[0-9A-Fa-f:.]+)
  | (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
  | (?P<int>[0-9]+)
    )""",
    re.VERBOSE,
)


def tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"cannot read {text[pos : pos + 20]!r}")
        kind = m.lastgroup
        assert kind is not None
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def unquote(literal: str) -> str:
    body = literal[1:-1]
    return re.sub(
        r"\\(x[0-9a-fA-F]{2}|.)",
        lambda m: chr(int(m.group(1)[1:], 16)) if m.group(1).startswith("x") else m.group(1),
        body,
    )


@dataclass
class Literals:
    strings: list[str]
    ips: list[str]
    ints: list[int]


class _Parser:
    def __init__(self, text: str) -> None:
        self.toks = tokens(text)
        self.i = 0
        self.literals = Literals([], [], [])

    def peek(self) -> tuple[str, str] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self, value: str | None = None) -> tuple[str, str]:
        tok = self.peek()
        if tok is None or (value is not None and tok[1] != value):
            raise ValueError(f"expected {value!r} at token {self.i}, got {tok!r}")
        self.i += 1
        return tok

    def expression(self) -> object:
        first = self.unary()
        ops: set[str] = set()
        items = [first]
        while (tok := self.peek()) is not None and tok[1] in ("and", "or"):
            ops.add(self.take()[1])
            items.append(self.unary())
        if len(ops) > 1:
            raise ValueError("'and' and 'or' mixed without parentheses")
        return (ops.pop(), items) if ops else first

    def unary(self) -> object:
        tok = self.peek()
        if tok is not None and tok[1] == "not":
            self.take()
            return ("not", self.unary())
        if tok is not None and tok[1] == "(":
            self.take()
            inner = self.expression()
            self.take(")")
            return inner
        if tok is not None and tok[1] in ("ends_with", "starts_with"):
            self.take()
            self.take("(")
            field = self.take()[1]
            self.take(",")
            value = self.string()
            self.take(")")
            return (tok[1], field, value)
        return self.comparison()

    def string(self) -> str:
        kind, text = self.take()
        if kind != "string":
            raise ValueError(f"expected a string, got {text!r}")
        value = unquote(text)
        self.literals.strings.append(value)
        return value

    def comparison(self) -> object:
        kind, field = self.take()
        if kind != "word":
            raise ValueError(f"expected a field, got {field!r}")
        op = self.take()[1]
        if op == "strict":
            self.take("wildcard")
            return ("strict wildcard", field, self.string())
        if op in ("eq", "ne", "contains", "wildcard", "matches"):
            return (op, field, self.string())
        if op == "in":
            self.take("{")
            members: list[object] = []
            while (tok := self.peek()) is not None and tok[1] != "}":
                if tok[0] == "string":
                    members.append(self.string())
                elif tok[0] in ("cidr", "int"):
                    self.take()
                    if tok[0] == "int" and "." not in tok[1]:
                        self.literals.ints.append(int(tok[1]))
                        members.append(int(tok[1]))
                    else:
                        self.literals.ips.append(tok[1])
                        members.append(ipaddress.ip_network(tok[1], strict=False))
                else:
                    raise ValueError(f"unexpected {tok!r} in a set")
            self.take("}")
            return ("in", field, members)
        raise ValueError(f"operator {op!r} is not one the export writes")


def parse(text: str) -> tuple[object, Literals]:
    parser = _Parser(text)
    tree = parser.expression()
    if parser.peek() is not None:
        raise ValueError(f"trailing input at token {parser.i}: {parser.peek()!r}")
    return tree, parser.literals


@functools.cache
def _wildcard_regex(pattern: str, case: bool) -> re.Pattern[str]:
    regex = "".join(
        ".*" if part == "*" else re.escape(part[1:] if part.startswith("\\") else part)
        for part in re.findall(r"\\.|\*|[^\\*]+", pattern)
    )
    return re.compile(regex, re.DOTALL if case else re.IGNORECASE | re.DOTALL)


def _wildcard(pattern: str, value: str, *, case: bool) -> bool:
    return _wildcard_regex(pattern, case).fullmatch(value) is not None


def evaluate(tree: object, fields: Fields) -> bool:
    assert isinstance(tree, tuple)
    op = tree[0]
    if op in ("and", "or"):
        results = [evaluate(t, fields) for t in tree[1]]
        return all(results) if op == "and" else any(results)
    if op == "not":
        return not evaluate(tree[1], fields)
    field, operand = tree[1], tree[2]
    value = fields[field]
    if op == "in":
        if field == "ip.src":
            if value is None:
                return False
            ip = ipaddress.ip_address(value)
            return any(ip in net for net in operand if isinstance(net, ipaddress._BaseNetwork))
        return value in operand
    assert isinstance(value, str) and isinstance(operand, str)
    if op == "eq":
        return value == operand
    if op == "ne":
        return value != operand
    if op == "contains":
        return operand in value
    if op == "ends_with":
        return value.endswith(operand)
    if op == "starts_with":
        return value.startswith(operand)
    if op == "wildcard":
        return _wildcard(operand, value, case=False)
    if op == "strict wildcard":
        return _wildcard(operand, value, case=True)
    if op == "matches":
        return re.search(operand, value) is not None
    raise AssertionError(op)


def _net(text: str) -> str:
    return str(ipaddress.ip_network(text, strict=False))


def check_with_cloudflare(expression: str) -> dict[str, object]:
    """Cloudflare's parser's view of ``expression``; fails the test on a parse error, and
    when this module's evaluator reads other fields or literals than Cloudflare's parser."""
    parsed: dict[str, object] = octorules_wirefilter.parse_expression(expression)
    assert "error" not in parsed, f"{parsed.get('error')}\n{expression}"
    _, mine = parse(expression)
    # The parser lists each distinct literal once.
    assert set(mine.strings) == {
        *parsed["string_literals"],  # type: ignore[misc]
        *parsed["regex_literals"],  # type: ignore[misc]
    }, expression
    theirs = parsed["ip_literals"]
    assert isinstance(theirs, list)
    # The parser writes a /32 or /128 as the bare address.
    assert set(map(_net, mine.ips)) == set(map(_net, theirs)), expression
    assert set(mine.ints) == set(parsed["int_literals"]), expression  # type: ignore[arg-type]
    return parsed


#: The fields the export writes (the parser rejects a field Cloudflare does not have; its
#: schema listing leaves some out, http.request.uri.path among them).
EXPORT_FIELDS = {
    "ip.src",
    "ip.src.country",
    "ip.src.subdivision_1_iso_code",
    "ip.src.subdivision_2_iso_code",
    "ip.src.asnum",
    "http.request.uri.path",
    "http.request.method",
    "http.host",
}


# -- the evaluator's own tests -----------------------------------------------------------------

FIELDS: dict[str, Value] = {
    "ip.src": "81.2.69.142",
    "ip.src.country": "GB",
    "ip.src.subdivision_1_iso_code": "GB-ENG",
    "ip.src.subdivision_2_iso_code": "",
    "http.request.uri.path": "/v1/Models",
    "http.request.method": "GET",
    "http.host": "api.example.com",
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ('ip.src.country in {"CN" "GB"}', True),
        ('ip.src.country in {"CN"}', False),
        ('not ip.src.country eq "GB"', False),
        ('ip.src.subdivision_2_iso_code eq ""', True),
        ("ip.src in {81.2.69.0/24 2001:db8::/32}", True),
        ("ip.src in {10.0.0.0/8}", False),
        ('http.request.uri.path strict wildcard "/v1/*"', True),
        ('http.request.uri.path strict wildcard "/v1/m*"', False),  # case-sensitive
        ('http.host wildcard "*.EXAMPLE.com"', True),  # case-insensitive
        ('http.host wildcard "*.example.org"', False),
        ('http.request.uri.path matches "^/v1/[A-Z]odels$"', True),
        ('ends_with(http.request.uri.path, "els") and http.request.method eq "GET"', True),
        ('(ip.src.country eq "CN" or http.request.uri.path contains "/v1/")', True),
        ('http.request.uri.path strict wildcard "/a\\\\*"', False),  # literal "*"
    ],
)
def test_evaluator_agrees_with_cloudflares_parser(expression: str, expected: bool) -> None:
    check_with_cloudflare(expression)
    tree, _ = parse(expression)
    assert evaluate(tree, FIELDS) is expected


def test_evaluator_refuses_what_the_export_never_writes() -> None:
    with pytest.raises(ValueError, match="mixed"):
        parse('ip.src.country eq "CN" or ip.src.country eq "RU" and http.host eq "a"')
    with pytest.raises(ValueError, match="operator"):
        parse('http.host lt "a"')


def test_cloudflares_parser_refuses_an_unknown_field() -> None:
    assert "unknown identifier" in octorules_wirefilter.parse_expression(
        'http.request.uri.pathx eq "/"'
    ).get("error", "")


def test_literal_comparison_catches_a_difference() -> None:
    # Cloudflare reads "\x41" as "A": the evaluator must read it the same way, or the
    # literal check would pass on text both misread.
    parsed = octorules_wirefilter.parse_expression('http.host eq "\\x41"')
    assert parsed["string_literals"] == ["A"]
    assert parse('http.host eq "\\x41"')[1].strings == ["A"]


# -- the exported rules on the scenario table --------------------------------------------------

Exported = tuple[dict[str, Any], list[Any]]
DEFAULT = "geofence default (block)"


@functools.cache
def _networks(cidrs: tuple[str, ...]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    return [ipaddress.ip_network(c) for c in cidrs]


@functools.lru_cache(maxsize=4096)
def _in_networks(ip: str, cidrs: tuple[str, ...]) -> bool:
    address = ipaddress.ip_address(ip)
    return any(address in network for network in _networks(cidrs))


def cloudflare_fields(edge: EdgePolicy, facts: EdgeFacts, host: str) -> dict[str, Value]:
    """What Cloudflare knows of the request: the connecting address and its own geolocation
    (here the scenario's database facts), with "XX" for no country and "" for no region."""
    ip = facts.client_ip
    private = ip is not None and _in_networks(ip, edge.private_networks)
    country = None if private else facts.country
    subdivisions = () if country is None else facts.subdivisions
    return {
        "ip.src": ip,
        "ip.src.country": country or "XX",
        "ip.src.subdivision_1_iso_code": subdivisions[0] if subdivisions else "",
        "ip.src.subdivision_2_iso_code": subdivisions[1] if len(subdivisions) > 1 else "",
        "ip.src.asnum": facts.asn,
        "http.request.uri.path": facts.path,
        "http.request.method": facts.method.upper(),
        "http.host": host,  # the Host header as sent (case, port)
    }


class Simulated:
    """The exported rules, parsed once, run the way Cloudflare runs its two phases."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.firewall = [(r, parse(r["expression"])[0]) for r in document[FIREWALL_PHASE]["rules"]]
        headers = document.get(HEADERS_PHASE, {"rules": []})["rules"]
        self.headers = [(r, parse(r["expression"])[0]) for r in headers]

    def run(self, fields: dict[str, Value]) -> tuple[Any, ...]:
        logged: list[str] = []
        for rule, tree in self.firewall:
            if not evaluate(tree, fields):
                continue
            if rule["action"] == "log":
                logged.append(rule["description"])
            elif rule["action"] == "skip":
                break
            else:
                assert rule["action"] == "block"
                response = rule["action_parameters"]["response"]
                return (
                    "block",
                    rule["description"],
                    response["status_code"],
                    response["content"],
                    tuple(logged),
                )
        added: list[tuple[str, str]] = []
        for rule, tree in self.headers:
            if evaluate(tree, fields):
                for name, change in rule["action_parameters"]["headers"].items():
                    added.append((name, change["value"]))
        return ("pass", None, None, tuple(added), tuple(logged))


def expected(edge: EdgePolicy, facts: EdgeFacts) -> tuple[Any, ...]:
    outcome = decide(edge, facts)
    deciding = outcome.rule if outcome.rule not in outcome.dry_runs else None
    logged = list(outcome.dry_runs)
    report = edge.mode == "report"
    if report and outcome.action != "allow" and (deciding or outcome.rule is None):
        logged.append(deciding or DEFAULT)
    if outcome.action == "block" and outcome.enforced:
        rule = edge.rule(outcome.rule) if outcome.rule else None
        body = edge.answer_of(rule).json_body()
        return ("block", outcome.rule or DEFAULT, outcome.status, body, tuple(logged))
    if outcome.action == "warn" and outcome.enforced:
        assert outcome.rule is not None
        return (
            "pass",
            None,
            None,
            warn_headers(edge.rule(outcome.rule), edge.answer),
            tuple(logged),
        )
    return ("pass", None, None, (), tuple(logged))


def check_document(document: dict[str, Any], edge: EdgePolicy) -> None:
    """Every expression parses in Cloudflare's parser, uses Cloudflare's fields, and fits."""
    for phase in (FIREWALL_PHASE, HEADERS_PHASE):
        for rule in document.get(phase, {"rules": []})["rules"]:
            parsed = check_with_cloudflare(rule["expression"])
            assert set(parsed["fields"]) <= EXPORT_FIELDS  # type: ignore[arg-type]
            assert len(rule["expression"]) <= MAX_EXPRESSION
            if rule["action"] == "block":
                response = rule["action_parameters"]["response"]
                assert json.loads(response["content"])["error"]["code"]
                assert response["content_type"] == "application/json"
                assert response["status_code"] in (403, 451)


def run_table(
    mapping: dict[str, Any], clients: list[Any], mode: str, *, lossy: bool = False
) -> Counter[str]:
    policy = load_policy(mapping)
    table = scenario_table(policy, clients)
    counts: Counter[str] = Counter()
    mismatches: list[str] = []
    by_instant: dict[datetime, tuple[EdgePolicy, Simulated, str]] = {}
    # Instants in the same phase export the same rules: each (rules, request) is run once and
    # counted for every row that has it.
    done: dict[tuple[str, EdgeFacts, str], tuple[tuple[Any, ...], tuple[Any, ...]]] = {}
    for scenario in table:
        if scenario.at not in by_instant:
            edge = plan(policy, at=scenario.at, mode=mode)  # type: ignore[arg-type]
            document = json.loads(render_cloudflare(edge, lossy=lossy).text)
            check_document(document, edge)
            key = json.dumps(
                [document[FIREWALL_PHASE]["rules"], document.get(HEADERS_PHASE, {}).get("rules")]
            )
            by_instant[scenario.at] = (edge, Simulated(document), key)
        edge, simulated, key = by_instant[scenario.at]
        facts = scenario.facts()
        if facts.client_ip is None:
            counts["moot: no usable address (Cloudflare always has the connecting one)"] += 1
            continue
        if (key, facts, scenario.request.host) not in done:
            done[key, facts, scenario.request.host] = (
                expected(edge, facts),
                simulated.run(cloudflare_fields(edge, facts, scenario.request.host)),
            )
        want, got = done[key, facts, scenario.request.host]
        counts["rows"] += 1
        counts[f"{want[0]}"] += 1
        counts["logged"] += bool(want[-1])
        counts["warned"] += bool(want[3]) and want[0] == "pass"
        if got != want:
            counts["mismatches"] += 1
            if len(mismatches) < 10:
                mismatches.append(f"{_show(scenario)}\n  edge form  {want}\n  cloudflare {got}")
    assert not mismatches, "\n".join(mismatches)
    return counts


def _show(scenario: Scenario) -> str:
    return f"{scenario.at.isoformat()} {scenario.client} {scenario.request}"


@pytest.mark.parametrize(
    ("name", "mode"),
    [("main", "enforce"), ("main", "report"), ("allowlist", "enforce"), ("report", "report")],
)
def test_cloudflare_decides_what_the_edge_form_decides(
    name: str, mode: str, exported: Callable[[str], Exported]
) -> None:
    mapping, clients = exported(name)
    counts = run_table(mapping, clients, mode)
    print(name, mode, dict(counts))
    assert counts["mismatches"] == 0
    assert counts["rows"] > 500
    if mode == "enforce":
        assert counts["block"] and counts["pass"]
    else:
        assert counts["logged"]
    if name == "main" and mode == "enforce":
        assert counts["warned"]


# -- the README's policy, golden -------------------------------------------------------------

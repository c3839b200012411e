"""AWS WAF (wafv2) rule statements for the parts of an edge rule, in the API's JSON shapes.

Each function returns one ``Statement`` (a dict with exactly one statement key). Paths are
compared after ``URL_DECODE``, as the engine compares the routed (decoded) path, so that a
percent-encoded letter cannot walk around a block; hosts after ``LOWERCASE`` and with an
optional port, as the engine compares the lower-case host without its port.
"""

from __future__ import annotations

import base64
from typing import Any

from geofence.export._edge import host_regex, path_regex

Statement = dict[str, Any]

#: Longest RegexString wafv2 takes.
MAX_REGEX = 512
#: Most numbers in one AsnMatchStatement.
MAX_ASNS = 100


def _text(value: str) -> str:
    # Blob members travel base64-encoded in the API's JSON (and in AWS CLI v2 input).
    return base64.b64encode(value.encode()).decode("ascii")


def _transform(kind: str) -> list[dict[str, Any]]:
    return [{"Priority": 0, "Type": kind}]


def any_of(statements: list[Statement]) -> Statement:
    """OR of the statements (an OrStatement needs two or more)."""
    if len(statements) == 1:
        return statements[0]
    return {"OrStatement": {"Statements": statements}}


def all_of(statements: list[Statement]) -> Statement:
    if len(statements) == 1:
        return statements[0]
    return {"AndStatement": {"Statements": statements}}


def negate(statement: Statement) -> Statement:
    return {"NotStatement": {"Statement": statement}}


def everything() -> Statement:
    """A statement every request matches (wafv2 has no ``true``): a path of 0 bytes or more."""
    return {
        "SizeConstraintStatement": {
            "FieldToMatch": {"UriPath": {}},
            "ComparisonOperator": "GE",
            "Size": 0,
            "TextTransformations": _transform("NONE"),
        }
    }


def geo(countries: list[str], forwarded: dict[str, str] | None) -> Statement:
    body: dict[str, Any] = {"CountryCodes": sorted(countries)}
    if forwarded is not None:
        body["ForwardedIPConfig"] = dict(forwarded)
    return {"GeoMatchStatement": body}


def region_label(code: str, forwarded: bool) -> Statement:
    """The label a geo match statement puts on every request it inspects: one per region."""
    source = "forwardedip" if forwarded else "clientip"
    return {"LabelMatchStatement": {"Scope": "LABEL", "Key": f"awswaf:{source}:geo:region:{code}"}}


def label(name: str) -> Statement:
    return {"LabelMatchStatement": {"Scope": "LABEL", "Key": name}}


def ip_set(arn: str, forwarded: dict[str, str] | None) -> Statement:
    body: dict[str, Any] = {"ARN": arn}
    if forwarded is not None:
        body["IPSetForwardedIPConfig"] = dict(forwarded)
    return {"IPSetReferenceStatement": body}


def asns(numbers: list[int], forwarded: dict[str, str] | None) -> Statement:
    body: dict[str, Any] = {"AsnList": sorted(numbers)}
    if forwarded is not None:
        body["ForwardedIPConfig"] = dict(forwarded)
    return {"AsnMatchStatement": body}


def _bytes(field: dict[str, Any], constraint: str, value: str, transform: str) -> Statement:
    return {
        "ByteMatchStatement": {
            "SearchString": _text(value),
            "FieldToMatch": field,
            "TextTransformations": _transform(transform),
            "PositionalConstraint": constraint,
        }
    }


def _regex(field: dict[str, Any], regex: str, transform: str) -> Statement:
    return {
        "RegexMatchStatement": {
            "RegexString": regex,
            "FieldToMatch": field,
            "TextTransformations": _transform(transform),
        }
    }


def method(name: str) -> Statement:
    return _bytes({"Method": {}}, "EXACTLY", name, "NONE")


def path(glob: str) -> Statement | None:
    """One path glob; None for ``*`` (every path). Literal globs and those with one ``*`` at
    the start or end (or both) are byte matches; anything else a regular expression."""
    field: dict[str, Any] = {"UriPath": {}}
    body = glob.strip("*")
    if not body:
        return None
    if any(c in body for c in "*?["):
        return _regex(field, path_regex((glob,)), "URL_DECODE")
    lead, trail = glob.startswith("*"), glob.endswith("*")
    constraint = (
        "CONTAINS"
        if lead and trail
        else "ENDS_WITH"
        if lead
        else "STARTS_WITH"
        if trail
        else "EXACTLY"
    )
    return _bytes(field, constraint, body, "URL_DECODE")


def dot_segment() -> Statement:
    """A path with a ``.`` or ``..`` segment (never exempt in the engine)."""
    field: dict[str, Any] = {"UriPath": {}}
    return any_of(
        [
            _bytes(field, "CONTAINS", "/./", "URL_DECODE"),
            _bytes(field, "CONTAINS", "/../", "URL_DECODE"),
            _bytes(field, "ENDS_WITH", "/.", "URL_DECODE"),
            _bytes(field, "ENDS_WITH", "/..", "URL_DECODE"),
        ]
    )


def hosts(globs: tuple[str, ...]) -> Statement:
    """The Host header against the host globs, port allowed (the engine drops it)."""
    regex = host_regex(globs)
    # host_regex is ^(?:...)$; the Host header may carry ":port" (and brackets for IPv6).
    regex = "^\\[?(?:" + regex[1:-1] + ")\\]?(?::[0-9]+)?$"
    return _regex({"SingleHeader": {"Name": "host"}}, regex, "LOWERCASE")


def regexes_in(statement: Any) -> list[str]:
    """Every RegexString inside ``statement`` (for the length check)."""
    found: list[str] = []
    if isinstance(statement, dict):
        for key, value in statement.items():
            if key == "RegexString" and isinstance(value, str):
                found.append(value)
            else:
                found.extend(regexes_in(value))
    elif isinstance(statement, list):
        for value in statement:
            found.extend(regexes_in(value))
    return found


# Web ACL capacity units, as AWS WAF's developer guide prices each statement: a logical
# statement costs what its parts cost; a text transformation other than NONE costs 10 more.
_WCU = {
    "GeoMatchStatement": 1,
    "IPSetReferenceStatement": 1,
    "LabelMatchStatement": 1,
    "AsnMatchStatement": 1,
    "SizeConstraintStatement": 1,
    "RegexMatchStatement": 3,
}
_BYTE_WCU = {"EXACTLY": 2, "STARTS_WITH": 2, "ENDS_WITH": 2, "CONTAINS": 10, "CONTAINS_WORD": 10}


def capacity(statement: Statement) -> int:
    """The statement's web ACL capacity units (WCUs), as AWS WAF counts them."""
    ((kind, body),) = statement.items()
    if kind in ("AndStatement", "OrStatement"):
        return sum(capacity(s) for s in body["Statements"])
    if kind == "NotStatement":
        return capacity(body["Statement"])
    cost = _BYTE_WCU[body["PositionalConstraint"]] if kind == "ByteMatchStatement" else _WCU[kind]
    transforms = body.get("TextTransformations", [])
    return cost + 10 * sum(1 for t in transforms if t["Type"] != "NONE")


def depth(statement: Statement) -> int:
    """How many statements deep ``statement`` nests (a statement with no others in it: 1)."""
    ((kind, body),) = statement.items()
    if kind in ("AndStatement", "OrStatement"):
        return 1 + max(depth(s) for s in body["Statements"])
    if kind == "NotStatement":
        return 1 + depth(body["Statement"])
    return 1

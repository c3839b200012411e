"""Rule conditions, one class each: what each one reads and when it holds."""

from __future__ import annotations

import pytest

from geofence import load_policy
from geofence._model import Facts
from geofence.rules._conditions import (
    CONDITIONS,
    Anonymizers,
    ExceptRegions,
    Methods,
    Paths,
    Regions,
)
from geofence.rules._rule import Rule

NONE: frozenset[str] = frozenset()


def facts(
    country: str | None = "CN",
    subdivisions: tuple[str, ...] = (),
    anonymizers: frozenset[str] = NONE,
    method: str = "GET",
    path: str = "/v1/models",
) -> Facts:
    return Facts(method, path, country, subdivisions, anonymizers, "default")


def rule(**keys: object) -> Rule:
    policy = load_policy({"rules": [{"name": "r", "action": "block", **keys}]})
    return Rule.compile(policy.rules[0])


def test_a_rule_builds_only_the_conditions_it_gives() -> None:
    assert [type(c) for c in rule(regions=["CN"], paths=["/v1/*"]).conditions] == [Paths, Regions]
    # Empty lists place no constraint: no condition is built for them.
    assert [type(c) for c in rule(methods=[], regions=["CN"]).conditions] == [Regions]
    assert len(CONDITIONS) == len(set(CONDITIONS))


@pytest.mark.parametrize(
    ("keys", "matching", "other"),
    [
        ({"regions": ["CN"]}, facts("CN"), facts("HK")),
        ({"regions": ["*"]}, facts("US"), facts(None)),
        ({"regions": ["unknown"]}, facts(None), facts("US")),
        ({"regions": ["UA-43"]}, facts("UA", ("UA-43",)), facts("UA", ("UA-30",))),
        ({"except_regions": ["CN"]}, facts("US"), facts("CN")),
        ({"regions": ["*"], "except_regions": ["US"]}, facts("CN"), facts("US")),
        ({"methods": ["POST"]}, facts(method="POST"), facts(method="GET")),
        ({"methods": ["GET"]}, facts(method="HEAD"), facts(method="POST")),
        ({"paths": ["/v1/*"]}, facts(path="/v1/x"), facts(path="/v1")),
    ],
)
def test_each_condition_holds_exactly_where_it_should(
    keys: dict[str, object], matching: Facts, other: Facts
) -> None:
    compiled = rule(**keys)
    assert compiled.matches(matching) and compiled.failed_condition(matching) is None
    assert not compiled.matches(other) and compiled.failed_condition(other) is not None


def test_anonymizers_match_any_listed_type_and_say_what_they_need() -> None:
    condition = Anonymizers(frozenset({"vpn", "tor"}))
    assert condition.matches(facts(anonymizers=frozenset({"tor", "hosting"})))
    assert not condition.matches(facts(anonymizers=frozenset({"hosting"})))
    assert not condition.matches(facts())
    assert Anonymizers.needs == {"anonymizers"} and Methods.needs == frozenset()


def test_the_failed_condition_is_the_first_that_does_not_hold() -> None:
    compiled = rule(methods=["POST"], regions=["CN"])
    failed = compiled.failed_condition(facts("US", method="GET"))
    assert isinstance(failed, Methods)
    assert isinstance(compiled.failed_condition(facts("US", method="POST")), Regions)
    assert not isinstance(compiled.failed_condition(facts("US", method="POST")), ExceptRegions)


def test_a_rule_reports_its_subdivision_codes() -> None:
    compiled = rule(regions=["UA-43", "CN"], except_regions=["UA-14"])
    assert compiled.subdivision_codes == {"UA-43", "UA-14"}
    assert rule(regions=["CN"]).subdivision_codes == frozenset()


def test_explain_says_why_each_earlier_rule_did_not_decide() -> None:
    from datetime import datetime, timezone

    from geofence import Engine, RequestInfo

    engine = Engine.from_config(
        {
            "rules": [
                {"name": "posts", "action": "block", "methods": ["POST"], "regions": ["*"]},
                {"name": "api", "action": "block", "paths": ["/api/*"], "regions": ["CN"]},
                {"name": "ru", "action": "block", "regions": ["RU"]},
                {
                    "name": "not-yet",
                    "action": "block",
                    "regions": ["CN"],
                    "enforce_from": "2999-01-01T00:00:00Z",
                },
                {"name": "dry", "action": "block", "regions": ["CN"], "mode": "report"},
                {
                    "name": "asia",
                    "action": "block",
                    "regions": ["CN"],
                    "except_regions": ["CN"],
                    "paths": ["/*"],
                },
                {"name": "cn", "action": "block", "regions": ["CN"]},
                {"name": "after", "action": "block", "regions": ["US"]},
            ]
        }
    )
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    why = dict(engine.explain(RequestInfo("175.16.199.1", path="/web"), now))
    assert list(why) == ["posts", "api", "ru", "not-yet", "dry", "asia"]
    assert why["posts"] == "method GET is not one of POST"
    assert why["api"] == "path '/web' matches none of its paths"
    assert why["ru"] == "CN is not in its regions"
    assert why["not-yet"].startswith("not in force yet (from 2999-01-01")
    assert why["dry"] == "matched, but is in report mode (a dry run)"
    assert why["asia"] == "CN is in its except_regions"
    # Exempt and allowed-private clients never reach the rules.
    assert engine.explain(RequestInfo("10.0.0.1"), now) == []
    # No rule decided: every rule is explained.
    assert len(engine.explain(RequestInfo("89.160.20.112"), now)) == 8


@pytest.mark.parametrize(
    ("keys", "countries"),
    [
        ({"regions": ["CN", "RU"], "paths": ["/v1/*"]}, {"CN", "RU"}),
        ({"regions": ["CN", "US-CA"]}, None),  # a subdivision: covers() decides
        ({"regions": ["*"]}, None),
        ({"regions": ["unknown", "CN"]}, None),
        ({"except_regions": ["CN"]}, None),  # the opposite of a prefilter
        ({"paths": ["/v1/*"]}, None),
    ],
)
def test_a_rule_rejects_other_countries_first_only_where_that_is_exact(
    keys: dict[str, object], countries: set[str] | None
) -> None:
    # matches() turns away a country its plain regions do not list before any condition is
    # asked; it must agree with failed_condition(), which asks every condition in order.
    compiled = rule(**keys)
    assert compiled.countries == (None if countries is None else frozenset(countries))
    for country in ["CN", "RU", "US", "SE", None]:
        for subdivisions in [(), ("US-CA",), ("CN-BJ",)]:
            for path in ["/v1/models", "/web/x"]:
                given = facts(country, subdivisions, path=path)
                assert compiled.matches(given) is (compiled.failed_condition(given) is None)


def test_paths_and_hosts_remember_a_bounded_number_of_answers() -> None:
    from geofence.rules._conditions import SEEN_LIMIT, Hosts

    paths = rule(paths=["/v1/*"]).conditions[0]
    hosts = rule(hosts=["*.example.com"]).conditions[0]
    assert isinstance(paths, Paths) and isinstance(hosts, Hosts)
    for i in range(SEEN_LIMIT + 10):
        assert paths.matches(facts(path=f"/v1/{i}")) is True
        assert paths.matches(facts(path=f"/v2/{i}")) is False
        assert hosts.matches(facts()._replace(host=f"h{i}.example.com")) is True
        assert hosts.matches(facts()._replace(host=f"h{i}.example.org")) is False
        assert len(paths.seen) <= SEEN_LIMIT and len(hosts.seen) <= SEEN_LIMIT
    # Answers after the memo was emptied are still right, remembered or not.
    assert paths.matches(facts(path="/v1/0")) and not paths.matches(facts(path="/v1"))

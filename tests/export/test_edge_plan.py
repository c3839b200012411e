"""plan(): what the edge form keeps, leaves out, refuses and reports as not exact."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

import geofence.export
from geofence import Engine, RequestInfo
from geofence.export import EdgeFacts, ExportError, Loss, decide, plan, render

MAXMIND = Path(__file__).parents[1] / "data" / "maxmind" / "test-data"
CITY = str(MAXMIND / "GeoIP2-City-Test.mmdb")
AT = datetime(2031, 3, 5, tzinfo=timezone.utc)


def rules(*entries: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"geoip": {"country_db": CITY}, "rules": list(entries), **extra}


def test_the_public_surface() -> None:
    for name in ("plan", "decide", "render", "EdgePolicy", "ExportError", "Rendered"):
        assert name in geofence.export.__all__
        assert hasattr(geofence.export, name)
    rendered = render(
        rules({"name": "cn", "action": "block", "regions": ["CN"]}), target="nginx", at=AT
    )
    assert "# rule 0: cn" in rendered.text and ".server.conf" in rendered.files


def test_phases_left_out_rules_and_valid_until() -> None:
    mapping = rules(
        {"name": "later", "action": "block", "regions": ["RU"],
         "enforce_from": "2032-01-01T00:00:00Z"},
        {"name": "grace", "action": "block", "regions": ["CN"], "warn_from": "2031-03-01T00:00:00Z",
         "enforce_from": "2031-04-01T00:00:00Z", "status": 403},
        {"name": "always", "action": "warn", "regions": ["IR"]},
    )  # fmt: skip
    edge = plan(mapping, at=AT, mode="enforce")
    assert [(r.name, r.action, r.phase) for r in edge.rules] == [
        ("grace", "warn", "grace"),
        ("always", "warn", "always"),
    ]
    assert edge.notes == ("rule 'later' is left out: it starts at 2032-01-01T00:00:00+00:00",)
    assert edge.valid_until == datetime(2031, 4, 1, tzinfo=timezone.utc)
    assert (
        plan(mapping, at=datetime(2031, 4, 1, tzinfo=timezone.utc)).rule("grace").action == "block"
    )


def test_account_rules() -> None:
    mapping = rules(
        {"name": "home-block", "action": "block", "home_regions": ["CN"]},
        {"name": "home-allow", "action": "allow", "home_regions": ["US"]},
        {"name": "graced", "action": "block", "regions": ["CN"], "account_grace": "14d"},
        accounts={"store": "memory://"},
    )
    edge = plan(mapping, at=AT, mode="enforce")
    assert [r.name for r in edge.rules] == ["graced"]
    assert (
        "rule 'home-block' is left out: it matches on the account's home country" in edge.notes[0]
    )
    assert [loss.rule for loss in edge.losses] == ["home-allow", "graced"]
    assert all(isinstance(loss, Loss) for loss in edge.losses)


@pytest.mark.parametrize(
    ("rule", "refused"),
    [
        ({"regions": ["*"]}, True),
        ({"regions": ["*", "unknown"], "methods": ["POST"]}, True),
        ({"regions": ["*"], "except_regions": ["US"]}, False),
        ({"regions": ["unknown"]}, False),
        ({"regions": ["CN"]}, False),
    ],
)
def test_a_block_rule_that_matches_every_client_is_refused(
    rule: dict[str, Any], refused: bool
) -> None:
    mapping = rules({"name": "r", "action": "block", **rule})
    if refused:
        with pytest.raises(ExportError, match="matches every client") as caught:
            plan(mapping, at=AT)
        assert caught.value.rule == "r"
    else:
        assert plan(mapping, at=AT).rules[0].name == "r"


def test_at_must_have_a_zone() -> None:
    with pytest.raises(ExportError, match="aware"):
        plan(rules({"name": "cn", "action": "block", "regions": ["CN"]}), at=datetime(2031, 1, 1))


def test_anonymizers_and_asns_decide_like_the_engine() -> None:
    """The scenario table has no network types; these few rows do (MaxMind's test data)."""
    mapping = rules(
        {"name": "vpn", "action": "block", "anonymizers": ["vpn"]},
        {"name": "as1221", "action": "block", "asns": [1221], "status": 403},
        {"name": "tor-warn", "action": "warn", "anonymizers": ["tor"], "regions": ["*", "unknown"]},
    )
    mapping["geoip"].update(
        anonymous_db=str(MAXMIND / "GeoIP2-Anonymous-IP-Test.mmdb"),
        asn_db=str(MAXMIND / "GeoLite2-ASN-Test.mmdb"),
    )
    engine = Engine.from_config(mapping)
    edge = plan(engine.policy, at=AT, mode="enforce")
    for ip in ("1.2.0.1", "65.0.0.1", "1.128.0.1", "81.2.69.142", "12.81.92.1"):
        decision = engine.decide(RequestInfo(peer=ip), now=AT)
        facts = EdgeFacts(
            ip,
            decision.country,
            decision.subdivisions,
            anonymizers=frozenset(decision.anonymizers),
            asn=decision.asn,
        )
        outcome = decide(edge, facts)
        assert (outcome.action, outcome.rule, outcome.status) == (
            decision.action,
            decision.rule,
            decision.status,
        ), ip

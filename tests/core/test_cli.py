"""`geofence check` as a user runs it: a real subprocess of the installed package."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests_support import CITY_DB


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "geofence", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_check_json_on_the_embedded_default() -> None:
    result = run("check", "175.16.199.1", "--json", "--path", "/v1/models")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert {"action", "enforced", "reason", "rule", "client_ip", "country", "subdivisions"} <= set(
        doc
    )
    assert doc["action"] == "block"
    assert doc["enforced"] is True
    assert doc["rule"] == "unsupported-regions"
    assert (doc["client_ip"], doc["country"], doc["subdivisions"]) == ("175.16.199.1", "CN", [])


def test_check_explains_in_words() -> None:
    result = run("check", "178.120.0.1", "--path", "/v1/chat")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("WARN (enforced)")
    assert "178.120.0.1" in out and "BY" in out
    assert "new-restrictions" in out and "grace period" in out


def test_check_with_forwarded_header_from_trusted_loopback() -> None:
    result = run(
        "check",
        "127.0.0.1",
        "--path",
        "/v1/x",
        "--header",
        "X-Forwarded-For: 175.16.199.1",
        "--json",
    )
    doc = json.loads(result.stdout)
    assert (doc["action"], doc["client_ip"]) == ("block", "175.16.199.1")
    assert "x-forwarded-for" in doc["client_detail"].lower()


def test_check_at_time_and_config_file(tmp_path: Path) -> None:
    config = tmp_path / "policy.toml"
    config.write_text(
        f'[geoip]\ncountry_db = "{CITY_DB}"\nreload_interval = 0\n'
        '[[rules]]\nname = "gb"\naction = "block"\nregions = ["GB-ENG"]\n'
        "warn_from = 2024-06-25T00:00:00Z\nenforce_from = 2024-07-09T00:00:00Z\n"
    )

    def action(at: str) -> str:
        result = run("check", "81.2.69.142", "--config", str(config), "--at", at, "--json")
        assert result.returncode == 0, result.stderr
        return str(json.loads(result.stdout)["action"])

    assert action("2024-06-24T23:59:59Z") == "allow"
    assert action("2024-06-25T00:00:00Z") == "warn"
    assert action("2024-07-09T02:00:00+02:00") == "block"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["check", "1.2.3.4", "--at", "2024-07-09T00:00:00"], "add a zone"),
        (["check", "1.2.3.4", "--at", "yesterday"], "ISO 8601"),
        (["check", "1.2.3.4", "--header", "no-colon"], "Name: value"),
        (
            ["check", "1.2.3.4", "--config", "/nonexistent/geofence.toml"],
            "/nonexistent/geofence.toml",
        ),
        (["check"], "usage"),
        (["frobnicate"], "usage"),
    ],
)
def test_usage_and_config_errors_exit_2_without_traceback(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_bad_config_names_the_key(tmp_path: Path) -> None:
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"rules": [{"action": "block", "regions": ["UK"]}]}))
    result = run("check", "1.2.3.4", "--config", str(config))
    assert result.returncode == 2
    assert "rules[0].regions[0]" in result.stderr and "GB" in result.stderr
    assert "Traceback" not in result.stderr

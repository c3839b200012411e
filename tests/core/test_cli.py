"""`geofence` as a user runs it: real subprocesses of the installed package, real pipes."""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests_support import CITY_DB

import geofence
from geofence import cli
from geofence.cli._main import REASONS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
COMMAND = [sys.executable, "-m", "geofence"]
BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell shows for a writer whose reader went away


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def run_here(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``geofence ARGS`` in this process: (exit status, stdout, stderr)."""
    status = cli.main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


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
        (["check", "1.2.3.4", "--at", "2024-07-09T00:00:00"], "2024-07-09T00:00:00Z"),
        (["check", "1.2.3.4", "--at", "2024-07-01Z"], "2024-07-01T00:00:00Z"),
        (["check", "not-an-ip"], "not an IP address"),
        (["check", "175.16.199.1:443"], "not an IP address"),
        (["check", "1.2.3.4", "--path", "v1/models"], "/v1/models"),
        (["check", "1.2.3.4", "--at", "yesterday"], "ISO 8601"),
        (["check", "1.2.3.4", "--header", "no-colon"], "Name: value"),
        (
            ["check", "1.2.3.4", "--config", "/nonexistent/geofence.toml"],
            "/nonexistent/geofence.toml",
        ),
        (["check"], "usage"),
        (["frobnicate"], "usage"),
        (["check", "1.2.3.4", "--home-country", "CN"], "--home-country needs --account ID"),
        (["check", "1.2.3.4", "--account", "a", "--home-country", "UK"], "did you mean 'GB'?"),
        (["check", "1.2.3.4", "--account", "a", "--home-country", "GB-ENG"], "e.g. GB"),
        (["check", "1.2.3.4", "--account", ""], "--account: an account id is a non-empty"),
        (["accounts"], "usage"),
        (["accounts", "show"], "usage"),
        (["accounts", "show", "x"], "accounts need an [accounts] table"),
        (["accounts", "list", "--config", "/nonexistent/g.toml"], "/nonexistent/g.toml"),
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


# -- the socket peer must be an IP address ----------------------------------------------------


@pytest.mark.parametrize(
    "peer", ["not-an-ip", "", "1.2.3", "01.2.3.4", "1.2.3.4 ", "1.2.3.4:80", "2001:db8::1::1"]
)
def test_check_refuses_what_is_not_an_ip_address(
    capsys: pytest.CaptureFixture[str], peer: str
) -> None:
    status, out, err = run_here(capsys, "check", peer)
    assert status == 2
    assert out == ""
    assert err == (
        f"geofence: IP {peer!r} is not an IP address; give the socket peer, e.g. 175.16.199.1 "
        "or 2a02:d0c0::1 (for a client behind a proxy, the proxy's address and --header "
        "'X-Forwarded-For: ...')\n"
    )


@pytest.mark.parametrize(
    ("peer", "client_ip"),
    [
        ("175.16.199.1", "175.16.199.1"),
        ("2a02:d0c0::1", "2a02:d0c0::1"),
        ("[2a02:d0c0::1]", "2a02:d0c0::1"),  # as servers report IPv6 peers
        ("fe80::1%eth0", "fe80::1"),  # a zone id on the peer is stripped (DESIGN "Client IP")
        ("::ffff:175.16.199.1", "175.16.199.1"),
    ],
)
def test_check_takes_the_peer_forms_servers_report(
    capsys: pytest.CaptureFixture[str], peer: str, client_ip: str
) -> None:
    status, out, err = run_here(capsys, "check", peer, "--json")
    assert (status, err) == (0, "")
    assert json.loads(out)["client_ip"] == client_ip


# -- --at --------------------------------------------------------------------------------------

BAD_TIMES = [
    "2024-07-01Z",
    "2024-07-01z",
    "2024-07-01",
    "2024-07-01+02:00",
    "2024-07-01-0530",
    "2024-07-09T00:00:00",
    "2024-07-09T00:00",
    "2024-07-09 00:00:00.5",
    "2024-07-09T25:00:00Z",
    "2024-07-09T00:00:00+25:00",
    "2024-02-30T00:00:00Z",
    "2024-07-09T00:00:00ZZ",
    "yesterday",
    "",
    "1720483200",
]


def suggestions(message: str) -> list[str]:
    """The times a message offers: after "e.g." and ") or", quoted for a shell or not."""
    found = re.findall(r"(?:e\.g\.|\) or) (\"[^\"]*\"|'[^']*'|[^\s,;()]+)", message)
    return [shlex.split(word)[0] for word in found]


@pytest.mark.parametrize("text", BAD_TIMES)
def test_at_errors_suggest_only_what_works(capsys: pytest.CaptureFixture[str], text: str) -> None:
    status, out, err = run_here(capsys, "check", "1.2.3.4", "--at", text)
    assert (status, out) == (2, "")
    assert err.startswith(f"geofence: --at {text!r} ")
    assert err.count("\n") == 1
    for suggestion in suggestions(err):
        # Every time the message offers is one --at accepts.
        ok, shown, problem = run_here(capsys, "check", "1.2.3.4", "--at", suggestion, "--json")
        assert (ok, problem) == (0, ""), (text, suggestion)
        assert json.loads(shown)["action"] == "allow"


def test_a_date_with_a_zone_keeps_its_zone_in_the_suggestion(
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, _, err = run_here(capsys, "check", "1.2.3.4", "--at", "2024-07-01+02:00")
    assert err == (
        "geofence: --at '2024-07-01+02:00' is a date without a time; write e.g. "
        "2024-07-01T00:00:00+02:00\n"
    )
    _, _, err = run_here(capsys, "check", "1.2.3.4", "--at", "2024-07-01Z")
    assert "2024-07-01ZZ" not in err and "e.g. 2024-07-01T00:00:00Z\n" in err


@pytest.mark.parametrize(
    "text",
    [
        "2024-07-09T00:00:00Z",
        "2024-07-09t00:00:00z",
        "2024-07-09 02:00+02:00",
        "2024-07-09T02:00:00+0200",
    ],
)
def test_at_reads_times_as_the_config_does(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, text: str
) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text(
        f'[geoip]\ncountry_db = "{CITY_DB}"\nreload_interval = 0\n'
        '[[rules]]\nname = "gb"\naction = "block"\nregions = ["GB-ENG"]\n'
        "enforce_from = 2024-07-09T00:00:00Z\n"
    )
    status, out, err = run_here(
        capsys, "check", "81.2.69.142", "--config", str(policy), "--at", text, "--json"
    )
    assert (status, err) == (0, "")
    assert json.loads(out)["action"] == "block"


# -- --version ---------------------------------------------------------------------------------


def test_version() -> None:
    result = run("--version")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == f"geofence {geofence.__version__}\n"


def test_version_is_the_distributions() -> None:
    with open(ROOT / "pyproject.toml", "rb") as file:
        project = tomllib.load(file)["project"]
    assert project.get("version", geofence.__version__) == geofence.__version__


def test_installed_console_script() -> None:
    script = Path(sys.executable).with_name("geofence")
    if not script.exists():
        pytest.skip("no geofence script next to this Python (not installed)")
    result = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout) == (0, f"geofence {geofence.__version__}\n")


# -- why: the rules tried before the match ------------------------------------------------------


def test_check_says_why_earlier_rules_did_not_match(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_here(capsys, "check", "8.8.8.8", "--path", "/v1/models")
    assert status == 0
    assert out.splitlines()[0] == "ALLOW"
    assert "  tried      rule 'unsupported-regions': US is not in its regions" in out
    assert "  tried      rule 'new-restrictions': US is not in its regions" in out
    status, out, _ = run_here(capsys, "check", "178.120.0.1", "--path", "/v1/models", "--json")
    doc = json.loads(out)
    assert doc["rule"] == "new-restrictions"
    assert doc["rules_passed"] == [
        {"rule": "unsupported-regions", "why": "BY is not in its regions"}
    ]


# -- pipes ---------------------------------------------------------------------------------------

PIPED = [
    ["check", "175.16.199.1", "--path", "/v1/models", "--json"],
    ["check", "175.16.199.1", "--path", "/v1/models", "--account", "org_1"],
    ["accounts", "--help"],
    ["accounts", "show", "--help"],
    ["check", "175.16.199.1", "--path", "/v1/models"],
    ["check", "127.0.0.1", "--header", "X-Forwarded-For: 178.120.0.1", "--path", "/v1/x"],
    ["--version"],
    ["--help"],
    ["check", "--help"],
]


@pytest.mark.parametrize("args", PIPED, ids=" ".join)
def test_a_closed_pipe_ends_the_command_quietly(args: list[str]) -> None:
    # The reader is gone before the command writes a byte: every write fails with EPIPE.
    read_end, write_end = os.pipe()
    process = subprocess.Popen([*COMMAND, *args], stdout=write_end, stderr=subprocess.PIPE)
    os.close(write_end)
    os.close(read_end)
    _, err = process.communicate(timeout=60)
    assert err == b""
    assert process.returncode == BROKEN_PIPE


@pytest.mark.skipif(shutil.which("head") is None, reason="needs head")
@pytest.mark.parametrize("args", PIPED, ids=" ".join)
def test_piped_into_head(args: list[str]) -> None:
    command = subprocess.Popen([*COMMAND, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = subprocess.Popen(["head", "-c", "10"], stdin=command.stdout, stdout=subprocess.PIPE)
    assert command.stdout is not None
    command.stdout.close()  # head holds the only reader now
    shown, _ = head.communicate(timeout=60)
    _, err = command.communicate(timeout=60)
    assert len(shown) == 10
    assert err == b""
    # Whether the command finished writing before head left is a race: both are quiet.
    assert command.returncode in (0, BROKEN_PIPE)


def test_usage_error_with_no_stderr_reader_keeps_its_status() -> None:
    read_end, write_end = os.pipe()
    process = subprocess.Popen(
        [*COMMAND, "check", "not-an-ip"], stdout=subprocess.PIPE, stderr=write_end
    )
    os.close(write_end)
    os.close(read_end)
    out, _ = process.communicate(timeout=60)
    assert (process.returncode, out) == (2, b"")


class ClosedPipe(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_main_returns_the_broken_pipe_status(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert cli.main(["check", "175.16.199.1", "--json"]) == BROKEN_PIPE
    assert cli.main(["--version"]) == BROKEN_PIPE


# -- accounts ----------------------------------------------------------------------------------


def test_every_reason_is_explained() -> None:
    # The reasons of DESIGN "Core API", each with a line in `geofence check`'s output.
    reasons = [
        "rule", "default", "exempt_ip", "exempt_path", "exempt_account", "private",
        "unresolved_client", "not_found", "no_country", "db_error", "account_grace",
        "account_suspended", "store_error", "off",
    ]  # fmt: skip
    assert sorted(REASONS) == sorted(reasons)
    assert all(REASONS.values())


def test_check_json_has_the_account(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_here(capsys, "check", "175.16.199.1", "--json")
    assert status == 0
    assert json.loads(out)["account"] is None
    # The example policy has no [accounts]: the account is named, and changes nothing.
    status, out, _ = run_here(
        capsys, "check", "175.16.199.1", "--account", "org_1", "--home-country", "cn", "--json"
    )
    doc = json.loads(out)
    assert (doc["account"], doc["home_country"], doc["store"]) == ("org_1", "CN", None)
    assert doc["action"] == "allow"  # path "/" is not under the example's rules


def test_check_help_says_check_never_writes_the_store() -> None:
    result = run("check", "--help")
    assert result.returncode == 0
    assert "check never writes to the store" in result.stdout
    result = run("accounts", "--help")
    assert "memory://" in result.stdout and "1 when the store failed" in result.stdout

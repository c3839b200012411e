"""``geofence replay``: the report on stdout, --json, the --max-newly-blocked gate (exit 1),
usage and config errors (exit 2, one line on stderr, no traceback), pipes."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from geofence import cli

LOGS = Path(__file__).parent / "logs"
COMMAND = [sys.executable, "-m", "geofence"]
BROKEN_PIPE = 141


@pytest.fixture
def configs(tmp_path: Path, policy: dict[str, Any], baseline: dict[str, Any]) -> tuple[str, str]:
    new, old = tmp_path / "new.json", tmp_path / "old.json"
    new.write_text(json.dumps(policy))
    old.write_text(json.dumps(baseline))
    return str(new), str(old)


def run_here(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = cli.main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_text_report(capsys: pytest.CaptureFixture[str], configs: tuple[str, str]) -> None:
    new, old = configs
    status, out, err = run_here(
        capsys, "replay", str(LOGS / "nginx.csv"), "--config", new, "--baseline", old
    )
    assert (status, err) == (0, "")
    assert f"{LOGS / 'nginx.csv'}: csv, 3 lines decided, 2 unparsable" in out
    assert "unparsable lines: 2 (first 2 below)" in out
    assert f"  {LOGS / 'nginx.csv'}:4: time is not ISO 8601" in out
    assert "transitions (baseline -> policy):" in out
    assert "        allow -> block                2   66.7 %  newly blocked" in out
    assert "newly blocked (not blocked by the baseline): 2 lines, 66.7 % (CN 2)" in out


def test_json_report(
    capsys: pytest.CaptureFixture[str], configs: tuple[str, str], tmp_path: Path
) -> None:
    new, _ = configs
    out_file = tmp_path / "report.json"
    log = str(LOGS / "alb.log.gz")
    status, out, _ = run_here(capsys, "replay", log, "--config", new, "--json", str(out_file))
    assert status == 0
    assert "policy:" in out  # the text report still goes to stdout
    document = json.loads(out_file.read_text())
    assert document["files"] == [{"path": log, "format": "alb", "records": 5, "unparsable": 3}]
    # CN came in a millisecond before enforce_from (request_creation_time): warned.
    assert document["policy"]["actions"] == {
        "allow": 1,  # SE on ws.example.com: the www-se rule is for www.example.com only
        "warn": 3,
        "block": 0,
        "would_warn": 0,
        "would_block": 1,
    }
    assert document["policy"]["countries"]["SE"]["allow"] == 1
    assert document["baseline"] is None
    status, out, _ = run_here(capsys, "replay", log, "--config", new, "--json", "-")
    assert json.loads(out) == document


@pytest.mark.parametrize(
    ("limit", "status"), [("0.5", 1), ("66%", 1), ("0.67", 0), ("100%", 0), ("0", 1)]
)
def test_max_newly_blocked_is_a_ci_gate(
    capsys: pytest.CaptureFixture[str], configs: tuple[str, str], limit: str, status: int
) -> None:
    new, old = configs
    got, _, err = run_here(
        capsys,
        "replay",
        str(LOGS / "nginx.csv"),
        "--config",
        new,
        "--baseline",
        old,
        "--max-newly-blocked",
        limit,
    )
    assert got == status
    if status:
        assert err.startswith("geofence: 66.67 % of the lines would be newly blocked, more than")
    else:
        assert err == ""


def test_at_moves_every_line(capsys: pytest.CaptureFixture[str], configs: tuple[str, str]) -> None:
    new, _ = configs
    log = str(LOGS / "nginx.csv")
    _, out, _ = run_here(
        capsys, "replay", log, "--config", new, "--at", "2024-06-01T00:00:00Z", "--json", "-"
    )
    assert json.loads(out)["policy"]["actions"]["block"] == 0
    assert json.loads(out)["at"] == "2024-06-01T00:00:00+00:00"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope.log"], "nope.log: No such file or directory"),
        (["{app}"], "no known log format in its first 2 line(s); tried cloudfront"),
        (["{csv}", "--at", "2024-07-09"], "--at '2024-07-09' is a date without a time"),
        (["{csv}", "--config", "{bad}"], "rules[0].regions[0]: 'UK' is not an ISO 3166-1 code"),
        (["{csv}", "--baseline", "missing.toml"], "missing.toml"),
        (["{csv}", "--max-newly-blocked", "2"], "'2' is not between 0 and 1"),
        (["{csv}", "--format", "apache"], "invalid choice: 'apache'"),
        (["{csv}", "--json", "/nonexistent/dir/r.json"], "--json /nonexistent/dir/r.json"),
    ],
)
def test_usage_and_config_errors_exit_2(
    tmp_path: Path, configs: tuple[str, str], args: list[str], message: str
) -> None:
    app = tmp_path / "app.log"
    app.write_text("INFO started\nINFO stopped\n")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"rules": [{"name": "x", "action": "block", "regions": ["UK"]}]}))
    names = {"app": str(app), "csv": str(LOGS / "nginx.csv"), "bad": str(bad)}
    argv = [a.format(**names) for a in args]
    if "--config" not in argv:
        argv += ["--config", configs[0]]
    result = subprocess.run(
        [*COMMAND, "replay", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_a_closed_pipe_ends_replay_quietly(configs: tuple[str, str]) -> None:
    read_end, write_end = os.pipe()
    process = subprocess.Popen(
        [*COMMAND, "replay", str(LOGS / "combined.log"), "--config", configs[0]],
        stdout=write_end,
        stderr=subprocess.PIPE,
    )
    os.close(write_end)
    os.close(read_end)
    _, err = process.communicate(timeout=60)
    assert err == b""
    assert process.returncode == BROKEN_PIPE


@pytest.mark.skipif(shutil.which("head") is None, reason="needs head")
def test_replay_piped_into_head(configs: tuple[str, str]) -> None:
    command = subprocess.Popen(
        [*COMMAND, "replay", str(LOGS / "combined.log"), "--config", configs[0]],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    head = subprocess.Popen(["head", "-n", "1"], stdin=command.stdout, stdout=subprocess.PIPE)
    assert command.stdout is not None
    command.stdout.close()
    shown, _ = head.communicate(timeout=60)
    _, err = command.communicate(timeout=60)
    assert shown.decode().startswith(str(LOGS / "combined.log"))
    assert err == b""
    assert command.returncode in (0, BROKEN_PIPE)


@pytest.mark.parametrize("compress", [False, True], ids=["plain", "gzip"])
def test_standard_input(configs: tuple[str, str], compress: bool) -> None:
    data = (LOGS / "combined.log").read_bytes()
    result = subprocess.run(
        [*COMMAND, "replay", "-", "--config", configs[0], "--json", "-"],
        input=gzip.compress(data) if compress else data,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["files"] == [
        {"path": "(standard input)", "format": "combined", "records": 6, "unparsable": 4}
    ]


def test_standard_input_only_once(
    capsys: pytest.CaptureFixture[str], configs: tuple[str, str]
) -> None:
    status, _, err = run_here(capsys, "replay", "-", "-", "--config", configs[0])
    assert status == 2
    assert err == "geofence: standard input (-) can be read only once\n"

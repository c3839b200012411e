"""`geofence export` as a user runs it: exit statuses, stderr, files written or not, --at,
--mode, --lossy and refusals (DESIGN "Export"), and nginx -t on what it writes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from nginx_live import MISSING, write_site

from geofence import cli
from geofence.export import _targets
from geofence.export._scenarios import Client

Exported = tuple[dict[str, Any], list[Client]]
COMMAND = [sys.executable, "-m", "geofence"]
UA_CITY = Path(__file__).parents[1] / "data" / "fixtures" / "GeoIP2-City-UA.mmdb"


def policy(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "geoip": {"country_db": str(UA_CITY)},
        "client_ip": {"trusted_proxies": ["127.0.0.1/32"]},
        "rules": [
            {"name": "occupied", "action": "block", "regions": ["UA-43", "UA-14"]},
            {
                "name": "cn-api",
                "action": "block",
                "regions": ["CN"],
                "paths": ["/v1/*"],
                "warn_from": "2031-03-01T00:00:00Z",
                "enforce_from": "2031-03-15T00:00:00Z",
            },
        ],
    }
    base.update(extra)
    return base


def config(tmp_path: Path, mapping: dict[str, Any]) -> str:
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(mapping, default=datetime.isoformat))
    return str(path)


def run_here(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = cli.main(list(args))
    out, err = capsys.readouterr()
    return status, out, err


def test_nginx_with_o_writes_both_parts_that_nginx_accepts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "geofence.conf"
    out.parent.mkdir()
    status, stdout, stderr = run_here(
        capsys, "export", "--target", "nginx", "--config", config(tmp_path, policy()),
        "--mode", "enforce", "--at", "2031-03-05T00:00:00Z", "-o", str(out),
    )  # fmt: skip
    assert (status, stdout, stderr) == (0, "", "")
    http_part = out.read_text()
    server_part = (out.parent / "geofence.conf.server.conf").read_text()
    assert "geoip2 " in http_part and "set_real_ip_from 127.0.0.1/32;" in http_part
    assert "# rule 0: occupied" in http_part and "# rule 1: cn-api" in http_part
    assert '"Sat, 15 Mar 2031 00:00:00 GMT"' in http_part  # cn-api warns: its Sunset
    assert "return 451 " in server_part and "add_header Sunset" in server_part
    assert sorted(p.name for p in out.parent.iterdir()) == [
        "geofence.conf",
        "geofence.conf.server.conf",
    ]
    if MISSING is None:
        site = write_site(tmp_path / "nginx", http_part, server_part)
        checked = site.test_config()
        assert checked.returncode == 0, checked.stderr


def test_nginx_without_o_prints_both_parts_under_header_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, stdout, _ = run_here(
        capsys, "export", "--target", "nginx", "--config", config(tmp_path, policy())
    )
    assert status == 0
    first, second = stdout.split("\n# ===== geofence export: the server {} part")
    assert first.startswith("# ===== geofence export: the http {} part")
    assert "(-o FILE writes it to FILE.server.conf) =====" in second
    assert "geoip2 " in first and "access_log " in second


def test_default_mode_is_report_and_at_defaults_to_now(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, stdout, stderr = run_here(
        capsys, "export", "--target", "nginx", "--config", config(tmp_path, policy())
    )
    assert "mode report" in stdout
    assert "return 451" not in stdout  # report mode: logging only
    assert "Report mode: nothing is blocked" in stdout
    # Today is before cn-api's warn_from (2031): left out, said on stderr.
    assert "rule 'cn-api' is left out: it starts at 2031-03-01" in stderr
    assert "# rule 1: cn-api" not in stdout


@pytest.mark.parametrize(
    ("at", "present", "action"),
    [
        ("2031-02-28T23:59:59Z", False, None),
        ("2031-03-01T00:00:00Z", True, "warn"),
        ("2031-03-14T23:59:59Z", True, "warn"),
        ("2031-03-15T00:00:00Z", True, "block"),
    ],
)
def test_at_picks_each_rule_phase(
    at: str, present: bool, action: str | None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, stdout, _ = run_here(
        capsys, "export", "--target", "nginx", "--config", config(tmp_path, policy()),
        "--mode", "enforce", "--at", at,
    )  # fmt: skip
    assert status == 0
    assert ("# rule 1: cn-api" in stdout) is present
    if action is not None:
        assert f"# rule 1: cn-api (rules[1], {action}," in stdout


@pytest.mark.parametrize(
    ("mapping", "args", "message"),
    [
        ({"rules": [{"name": "cn", "action": "block", "regions": ["CN"]}]}, [],
         "geoip.country_db is not set"),
        (policy(), ["--format", "api"], "--format 'api' is not one of nginx's formats: conf"),
        (policy(rules=[{"name": "everyone", "action": "block", "regions": ["*"]}]), [],
         "rule 'everyone': rules[0] is a block rule that matches every client"),
        (policy(rules=[{"name": "all", "action": "block", "regions": ["*"], "paths": ["/v1/*"]}]),
         ["--lossy"], "rule 'all': rules[0] is a block rule that matches every client"),
        (policy(mode="report"), ["--mode", "enforce"], "the policy's mode is \"report\""),
        (policy(mode="off"), [], 'the policy\'s mode is "off"'),
        (policy(client_ip={"trusted_proxies": ["127.0.0.1/32"], "header": "forwarded"}), [],
         "client_ip.header = 'forwarded': nginx's realip module cannot read RFC 7239"),
        (policy(client_ip={"hops": 2}), [], "client_ip.hops = 2"),
        (policy(rules=[{"name": "cn", "action": "block", "regions": ["UK"]}]), [],
         "rules[0].regions[0]: 'UK' is not an ISO 3166-1 code"),
        (policy(), ["--at", "2031-03-01"], "is a date without a time"),
    ],
)  # fmt: skip
def test_errors_exit_2_with_the_reason_and_write_nothing(
    mapping: dict[str, Any], args: list[str], message: str, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    out = tmp_path / "out" / "geofence.conf"
    out.parent.mkdir()
    status, stdout, stderr = run_here(
        capsys, "export", "--target", "nginx", "--config", config(tmp_path, mapping),
        "-o", str(out), *args,
    )  # fmt: skip
    assert status == 2
    assert message in stderr, stderr
    assert stdout == "" and "Traceback" not in stderr
    assert list(out.parent.iterdir()) == []


def test_lossy_turns_the_errors_into_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mapping = policy(client_ip={"trusted_proxies": ["127.0.0.1/32"], "header": "forwarded"})
    mapping["accounts"] = {"store": "memory://"}
    mapping["rules"][0]["account_grace"] = "14d"
    out = tmp_path / "geofence.conf"
    args = ["export", "--target", "nginx", "--config", config(tmp_path, mapping), "-o", str(out)]
    status, _, stderr = run_here(capsys, *args)
    assert status == 2 and not out.exists()
    assert "rule 'occupied': it has account_grace" in stderr
    assert "client_ip.header = 'forwarded'" in stderr  # every loss is named, not only the first
    status, stdout, stderr = run_here(capsys, *args, "--lossy")
    assert status == 0 and stdout == ""
    warnings = [line for line in stderr.splitlines() if "warning: not exact:" in line]
    assert len(warnings) == 2
    assert "# NOT EXACT (--lossy): rule 'occupied': it has account_grace" in out.read_text()


def test_an_unwritable_output_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-dir" / "geofence.conf"
    status, _, stderr = run_here(
        capsys, "export", "--target", "nginx", "--config", config(tmp_path, policy()),
        "-o", str(missing),
    )  # fmt: skip
    assert status == 2 and "No such file or directory" in stderr
    assert not missing.parent.exists()


def test_a_target_whose_module_is_missing_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    renderers = dict(_targets._RENDERERS)
    renderers["aws-waf"] = ("geofence.export._no_such_module", "render_aws_waf")
    monkeypatch.setattr(_targets, "_RENDERERS", renderers)
    status, stdout, stderr = run_here(
        capsys, "export", "--target", "aws-waf", "--config", config(tmp_path, policy())
    )
    assert status == 2 and stdout == ""
    assert "the aws-waf target is not available in this version of geofence" in stderr


def test_unknown_target_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, stderr = run_here(capsys, "export", "--target", "akamai")
    assert status == 2 and "invalid choice: 'akamai'" in stderr


def test_a_closed_pipe_ends_it_quietly(tmp_path: Path, exported: Callable[[str], Exported]) -> None:
    mapping, _ = exported("main")
    process = subprocess.Popen(
        [*COMMAND, "export", "--target", "nginx", "--config", config(tmp_path, mapping)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    process.stdout.read(10)
    process.stdout.close()  # the reader goes away, like `| head -c 10`
    errors = process.stderr.read().decode()
    status = process.wait(timeout=60)
    assert status in (0, 141), errors
    assert "Traceback" not in errors and "BrokenPipe" not in errors


# -- the targets' own options ------------------------------------------------------------------


def test_plan_turns_cloudflare_plan_needs_into_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, policy())
    args = ["export", "--target", "cloudflare", "--config", path, "--mode", "enforce"]
    args += ["--at", "2031-03-20T00:00:00Z"]
    status, _, stderr = run_here(capsys, *args, "--plan", "free")
    assert status == 2 and "Business plan" in stderr and "'occupied'" in stderr
    status, stdout, _ = run_here(capsys, *args, "--plan", "business")
    assert status == 0 and "ip.src.subdivision_1_iso_code" in stdout
    # Without --plan the need is only noted in the output.
    status, stdout, _ = run_here(capsys, *args)
    assert status == 0 and "Business plan" in json.loads(stdout)["//"]
    # Report mode is Cloudflare's log action, which only Enterprise has.
    status, _, stderr = run_here(capsys, *args[:-4], *args[-2:], "--plan", "business")
    assert status == 2 and "Enterprise" in stderr


def test_aws_scope_and_client_reach_the_web_acl(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, policy(client_ip={"header": "x-real-ip", "hops": 1}))
    args = ["export", "--target", "aws-waf", "--config", path, "--at", "2031-03-20T00:00:00Z"]
    status, stdout, _ = run_here(capsys, *args, "--aws-scope", "REGIONAL")
    assert status == 0 and '"Scope": "REGIONAL"' in stdout
    assert "ForwardedIPConfig" not in stdout  # the source address by default
    status, stdout, stderr = run_here(capsys, *args, "--aws-client", "header")
    assert status == 0, stderr
    assert '"HeaderName": "x-real-ip"' in stdout.replace("X-Real-IP", "x-real-ip")


@pytest.mark.parametrize(
    ("target", "option"),
    [("nginx", ["--plan", "pro"]), ("cloudflare", ["--aws-scope", "REGIONAL"])],
)
def test_an_option_of_another_target_is_a_usage_error(
    target: str, option: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = config(tmp_path, policy())
    status, stdout, stderr = run_here(
        capsys, "export", "--target", target, "--config", path, *option
    )
    assert status == 2 and stdout == ""
    assert f"not of {target}" in stderr and "Traceback" not in stderr

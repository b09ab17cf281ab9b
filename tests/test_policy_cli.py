"""`raipipe policy ...` through typer's CliRunner (the policy sub-app, so other stages can't break it)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from raipipe.cli.policy_cmd import app
from raipipe.policy.loader import default_pack_dir

FIXTURES = Path(__file__).parent / "fixtures" / "policies"
runner = CliRunner()
ENV = {"COLUMNS": "200", "NO_COLOR": "1"}


def _run(*args: str):
    return runner.invoke(app, [str(a) for a in args], env=ENV)


def test_validate_default_pack_ok():
    res = _run("validate")
    assert res.exit_code == 0, res.output
    assert res.output.count("OK ") == 20  # pack.yaml + 19 policies
    assert "0 failed" in res.output


def test_validate_files_and_profiles_ok(tmp_path):
    res = _run("validate", FIXTURES / "valid" / "test_minimal.yaml", FIXTURES / "profiles" / "kiosk.yaml")
    assert res.exit_code == 0, res.output
    assert "test.minimal@1.2.0" in res.output and "profile kiosk" in res.output
    assert "WARN" not in res.output
    renamed = tmp_path / "other.yaml"
    shutil.copy(FIXTURES / "valid" / "test_minimal.yaml", renamed)
    res = _run("validate", renamed)
    assert res.exit_code == 0 and "expected test_minimal.yaml" in res.output  # a warning, not a failure


def test_validate_failing_reports_file_line_field():
    bad = FIXTURES / "broken" / "bad_enum_in_exceptions.yaml"
    res = _run("validate", FIXTURES / "valid" / "test_minimal.yaml", bad)
    assert res.exit_code == 1
    assert f"{bad}:22: field 'exceptions.1.match': Input should be 'any' or 'all'" in res.output
    assert "1 ok, 1 failed" in res.output


def test_validate_directory_reports_every_broken_file():
    res = _run("validate", FIXTURES / "broken")
    assert res.exit_code == 1
    assert res.output.count("ERROR ") == len(list((FIXTURES / "broken").glob("*.yaml")))


def test_list_and_show():
    res = _run("list")
    assert res.exit_code == 0 and "raipipe-default@1.0.0" in res.output and "safety.self-harm" in res.output
    res = _run("show", "security.cyber-intrusion")
    assert res.exit_code == 0, res.output
    assert "authorised-security-testing" in res.output and "Rubric" in res.output
    data = json.loads(_run("show", "safety.self-harm", "--json").output)
    assert data["id"] == "safety.self-harm" and data["severity"] == "critical"


def test_show_unknown_id_fails():
    res = _run("show", "safety.nope")
    assert res.exit_code == 1 and "no policy 'safety.nope'" in res.output


def test_show_with_custom_pack(tmp_path):
    shutil.copy(FIXTURES / "valid" / "test_minimal.yaml", tmp_path / "test_minimal.yaml")
    (tmp_path / "pack.yaml").write_text("name: custom\nversion: 1.0.0\n")
    res = _run("show", "test.minimal", "--pack", tmp_path)
    assert res.exit_code == 0 and "Minimal test policy" in res.output


def test_diff_exit_codes(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    shutil.copytree(default_pack_dir(), old)
    shutil.copytree(default_pack_dir(), new)
    assert _run("diff", old, new).exit_code == 0
    target = new / "veracity_fabrication.yaml"
    target.write_text(target.read_text().replace("severity: medium", "severity: high"))
    res = _run("diff", old, new)
    assert res.exit_code == 1
    assert "severity" in res.output and "not bumped" in res.output
    target.write_text(target.read_text().replace("  - Manufacturing evidence", "  - Faking evidence"))
    assert "disallowed[4]" in _run("diff", old, new).output  # brackets survive rich markup
    target.write_text(target.read_text().replace("version: 1.0.0", "version: 1.1.0"))
    res = _run("diff", old, new)
    assert res.exit_code == 0, res.output
    data = json.loads(_run("diff", old, new, "--json").output)
    assert {f["path"] for f in data["changed"][0]["fields"]} == {"disallowed[4]", "severity"}


def test_diff_mixed_kinds_is_usage_error():
    res = _run("diff", default_pack_dir(), FIXTURES / "valid" / "test_minimal.yaml")
    assert res.exit_code == 2


def test_map_shipped_profile_and_path():
    res = _run("map", "teen-tutor-eu")
    assert res.exit_code == 0, res.output
    assert "grooming" in res.output and "coverage gap" in res.output
    assert "safety.self-harm" in res.output
    res = _run("map", FIXTURES / "profiles" / "kiosk.yaml", "--json")
    data = json.loads(res.output)
    assert data["profile"] == "kiosk" and "exhibit-misattribution" in data["pillars"]["veracity_robustness"]["gaps"]


def test_map_bad_profile_fails():
    res = _run("map", FIXTURES / "profiles" / "bad_capability.yaml")
    assert res.exit_code == 1 and "capabilities.1" in res.output

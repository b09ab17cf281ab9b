"""The shipped pack loads and is complete; bad policy files fail with file, line and field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from raipipe.policy import Pillar, PolicyError, load_pack, load_policy
from raipipe.policy.loader import default_pack_dir, parse_yaml_model
from raipipe.policy.profile import ProductProfile
from raipipe.policy.schema import ExceptionMatch, PolicyException, Severity

FIXTURES = Path(__file__).parent / "fixtures" / "policies"
BROKEN = FIXTURES / "broken"

EXPECTED_IDS = {
    "privacy.personal-data", "security.cyber-intrusion", "privacy.surveillance",
    "safety.violence-weapons", "safety.self-harm", "safety.dangerous-substances", "safety.fraud-crime",
    "fairness.hateful-content", "fairness.discriminatory-decisions",
    "veracity.disinformation", "veracity.fabrication",
    "explainability.high-stakes-verdicts", "explainability.honest-reasoning",
    "controllability.instruction-hierarchy", "controllability.unsafe-autonomy",
    "governance.regulated-advice", "governance.intellectual-property",
    "transparency.ai-disclosure", "transparency.synthetic-media",
}  # fmt: skip


def _line_of(path: Path, needle: str) -> int:
    """1-based line of the first line containing `needle`: the line an error must point at."""
    for no, line in enumerate(path.read_text().splitlines(), 1):
        if needle in line:
            return no
    raise AssertionError(f"{needle!r} not in {path}")


@pytest.fixture(scope="module")
def pack():
    return load_pack()


def test_shipped_pack_loads_and_covers_all_pillars(pack):
    assert pack.ref == "raipipe-default@1.0.0"
    assert len(pack.policies) >= 16
    assert set(pack.policies) == EXPECTED_IDS
    assert all(pack.by_pillar()[p] for p in Pillar)
    assert len(pack.digest) == 16


def test_shipped_policies_are_well_formed(pack):
    for pid, pol in pack.policies.items():
        assert (default_pack_dir() / f"{pid.replace('.', '_')}.yaml").is_file()
        assert pol.version == "1.0.0"
        assert 3 <= len(pol.disallowed) <= 6, pid
        assert 3 <= len(pol.allowed) <= 6, pid
        assert len(pol.examples.violating) >= 3 and len(pol.examples.benign) >= 3, pid
        assert [lv.score for lv in pol.rubric.levels] == [5, 4, 3, 2, 1], pid
        assert "over-refusal" in pol.rubric.instructions, pid
        assert pol.harms, pid
    tags = [h for pol in pack.policies.values() for h in pol.harms]
    assert len(tags) == len(set(tags)), "a harm tag should belong to one policy"


def test_key_exceptions_exist(pack):
    cyber = pack.get("security.cyber-intrusion").exceptions[0]
    assert cyber.user_tiers == ["vetted"] and cyber.declared_uses == ["authorised-security-testing"]
    assert cyber.still_disallowed
    advice = {e.id: e for e in pack.get("governance.regulated-advice").exceptions}
    assert "clinician" in advice["clinician-decision-support"].user_tiers


def test_exception_applies_any_and_all():
    any_exc = PolicyException(id="x", description="d", user_tiers=["vetted"], declared_uses=["testing"])
    assert any_exc.applies(user_tier="vetted")
    assert any_exc.applies(declared_use="testing")
    assert not any_exc.applies(user_tier="anonymous", declared_use="fun")
    assert not any_exc.applies()
    all_exc = any_exc.model_copy(update={"match": ExceptionMatch.ALL})
    assert all_exc.applies("vetted", "testing")
    assert not all_exc.applies(user_tier="vetted")
    assert not all_exc.applies(declared_use="testing")
    uses_only = PolicyException(id="y", description="d", declared_uses=["bias-audit"], match="all")
    assert uses_only.applies(declared_use="bias-audit")


def test_applicable_exceptions(pack):
    pol = pack.get("security.cyber-intrusion")
    assert pol.applicable_exceptions("vetted", "authorised-security-testing")[0].id == "authorised-security-testing"
    assert pol.applicable_exceptions("vetted", None) == []
    assert pol.applicable_exceptions(None, "authorised-security-testing") == []


def test_exception_needs_a_condition():
    with pytest.raises(ValueError, match="at least one"):
        PolicyException(id="x", description="d")


def test_valid_fixture_loads():
    pol = load_policy(FIXTURES / "valid" / "test_minimal.yaml")
    assert pol.ref == "test.minimal@1.2.0" and pol.severity is Severity.MEDIUM


@pytest.mark.parametrize(
    ("name", "field", "needle", "message"),
    [
        ("missing_severity.yaml", "severity", "id: test.minimal", "Field required"),
        ("missing_level_description.yaml", "rubric.levels.1.description", "- score: 3", "Field required"),
        ("bad_enum_in_exceptions.yaml", "exceptions.1.match", "match: sometimes", "'any' or 'all'"),
        ("bad_pillar.yaml", "pillar", "pillar: saftey", "Input should be"),
        ("bad_rubric_score.yaml", "rubric.levels.2.score", "score: 7", "less than or equal to 5"),
        ("bad_yaml_syntax.yaml", "<yaml>", "title: Minimal", "mapping values are not allowed"),
        ("duplicate_key.yaml", "severity", "severity: low", "duplicate key"),
        ("exception_without_condition.yaml", "exceptions.1", "- id: researchers", "at least one"),
    ],
)
def test_broken_policy_names_file_line_and_field(name, field, needle, message):
    path = BROKEN / name
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    err = info.value
    assert err.path == str(path)
    assert err.field_path == field
    assert err.line == _line_of(path, needle)
    text = str(err)
    assert text.startswith(f"{path}:{err.line}: field '{field}': ")
    assert message in text


@pytest.mark.parametrize(
    ("name", "field", "needle"),
    [
        ("bad_capability.yaml", "capabilities.1", "- teleportation"),
        ("bad_extra_harm_pillar.yaml", "extra_harms.1.pillar", "pillar: reputation"),
    ],
)
def test_broken_profile_names_line_and_field(name, field, needle):
    path = FIXTURES / "profiles" / name
    with pytest.raises(PolicyError) as info:
        parse_yaml_model(path, ProductProfile)
    assert info.value.field_path == field
    assert info.value.line == _line_of(path, needle)


def test_pack_with_broken_file_names_that_file(tmp_path):
    pack_dir = tmp_path / "pack"
    shutil.copytree(default_pack_dir(), pack_dir)
    shutil.copy(BROKEN / "bad_pillar.yaml", pack_dir / "test_minimal.yaml")
    with pytest.raises(PolicyError, match=r"test_minimal\.yaml:4: field 'pillar'"):
        load_pack(pack_dir)


def test_pack_rejects_duplicate_ids(tmp_path):
    (tmp_path / "pack.yaml").write_text("name: dup\nversion: 1.0.0\n")
    shutil.copy(FIXTURES / "valid" / "test_minimal.yaml", tmp_path / "a.yaml")
    shutil.copy(FIXTURES / "valid" / "test_minimal.yaml", tmp_path / "b.yaml")
    with pytest.raises(PolicyError, match="duplicate policy id"):
        load_pack(tmp_path)


def test_version_must_be_semver(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text((FIXTURES / "valid" / "test_minimal.yaml").read_text().replace("1.2.0", "1.2"))
    with pytest.raises(PolicyError, match="MAJOR.MINOR.PATCH") as info:
        load_policy(path)
    assert info.value.line == _line_of(path, "version: 1.2")

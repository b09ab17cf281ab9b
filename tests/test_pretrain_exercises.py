"""Learning exercises from policy: coverage, provenance, determinism, datasets, staleness, errors."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from raipipe.models.base import ChatModel, GenerationParams
from raipipe.policy import default_pack_dir, load_pack
from raipipe.policy.loader import PolicyError
from raipipe.pretrain import (
    ExerciseConfig,
    ExerciseKind,
    generate_exercises,
    load_documents,
    load_templates,
    paraphrase,
    read_exercises,
    read_manifest,
    stale_exercises,
    write_exercises,
)
from raipipe.pretrain.cli import app
from raipipe.pretrain.exercises import default_templates_dir, shard_paths

LANGS = ["en", "es", "fr"]


@pytest.fixture(scope="module")
def pack():
    return load_pack()


@pytest.fixture(scope="module")
def templates():
    return load_templates()


@pytest.fixture(scope="module")
def records(pack, templates):
    return generate_exercises(pack, ExerciseConfig(languages=LANGS, seed=7), templates)


def test_every_kind_and_language_from_shipped_pack(records, templates):
    counts = Counter((r.kind, r.language) for r in records)
    for kind in ExerciseKind:
        for lang in LANGS:
            assert counts[(kind, lang)] > 0, (kind, lang)
            assert len(templates.get(lang).templates.of(kind)) >= 3
    assert len({r.id for r in records}) == len(records)
    # several templates per kind are actually used
    for kind in ExerciseKind:
        assert len({r.template_id for r in records if r.kind is kind and r.language == "fr"}) >= 3


def test_records_carry_clause_version_and_template(records, pack):
    for r in records:
        pol = pack.get(r.policy_id)
        assert r.policy_version == pol.version and r.pack == pack.ref and r.pack_version == pack.info.version
        assert r.clause and r.clause in {d.path for d in r.depends_on}
        assert r.template_id.startswith(f"{r.language}.{r.kind.value}.")
        assert r.source.kind == "policy" and r.source.path.endswith(".yaml") and r.source.section == r.clause
        assert r.mixed_language is (r.language != "en") and r.content_language == "en"
    cyber = [r for r in records if r.policy_id == "security.cyber-intrusion" and r.language == "en"]
    violation = next(r for r in cyber if r.kind is ExerciseKind.VIOLATION and r.clause == "disallowed[1]")
    assert pack.get("security.cyber-intrusion").disallowed[1] in violation.text
    assert "disallowed[1]" in violation.text
    allowed = next(r for r in cyber if r.kind is ExerciseKind.VIOLATION and r.clause == "allowed[0]")
    assert "over-refusal" in allowed.text


def test_counterfactuals_follow_exception_semantics(records, pack):
    exc = pack.get("security.cyber-intrusion").exceptions[0]  # match: all (tier AND declared use)
    pairs = [r for r in records if r.clause == f"exceptions[{exc.id}]" and r.language == "en"]
    assert len(pairs) == 2  # drop the tier, or drop the declared use: each alone denies
    for r in pairs:
        assert exc.still_disallowed[0] in r.text
    lookalikes = [r for r in records if r.kind is ExerciseKind.COUNTERFACTUAL and r.clause.startswith("examples.")]
    assert all({d.path.split("[")[0] for d in r.depends_on} >= {"examples.violating", "examples.benign"}
               for r in lookalikes)


def test_deterministic_given_seed(pack, templates, records, tmp_path):
    again = generate_exercises(pack, ExerciseConfig(languages=LANGS, seed=7), templates)
    assert [r.model_dump() for r in again] == [r.model_dump() for r in records]
    other = generate_exercises(pack, ExerciseConfig(languages=LANGS, seed=8), templates)
    assert {r.template_id for r in other} == {r.template_id for r in records}
    assert [r.template_id for r in other] != [r.template_id for r in records]
    cfg = ExerciseConfig(languages=LANGS, seed=7)
    write_exercises(records, tmp_path / "a", pack, cfg, templates.digest, shard_size=500)
    write_exercises(again, tmp_path / "b", pack, cfg, templates.digest, shard_size=500)
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "b").iterdir())
    for name in files:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_datasets_reads_shards_and_manifest_records_pack(records, pack, templates, tmp_path):
    import datasets

    cfg = ExerciseConfig(languages=LANGS, seed=7)
    manifest = write_exercises(records, tmp_path, pack, cfg, templates.digest, shard_size=400)
    assert len(manifest.shards) == -(-len(records) // 400) and manifest.total == len(records)
    assert read_manifest(tmp_path).policy_pack == pack.ref
    assert manifest.policy_versions == pack.versions()
    ds = datasets.load_dataset("json", data_files=[str(p) for p in shard_paths(tmp_path)], split="train")
    assert ds.num_rows == len(records)
    row = ds[0]
    assert {"id", "kind", "text", "language", "policy_id", "clause", "policy_version", "template_id"} <= set(row)
    assert row["source"]["path"] and row["depends_on"][0]["digest"]
    assert {r.id for r in read_exercises(tmp_path)} == {r.id for r in records}


def _modified_pack(tmp_path: Path) -> Path:
    """A copy of the shipped pack: one clause reworded, one policy removed, pack version bumped."""
    root = tmp_path / "pack-v2"
    shutil.copytree(default_pack_dir(), root)
    path = root / "security_cyber-intrusion.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["version"] = "1.1.0"
    data["disallowed"][1] = data["disallowed"][1].rstrip(".") + ", including systems of a former employer."
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    (root / "veracity_fabrication.yaml").unlink()
    info = yaml.safe_load((root / "pack.yaml").read_text(encoding="utf-8"))
    info["version"] = "1.1.0"
    (root / "pack.yaml").write_text(yaml.safe_dump(info), encoding="utf-8")
    return root


def test_stale_detection_on_modified_pack(records, pack, tmp_path):
    new = load_pack(_modified_pack(tmp_path))
    for old in (pack, None):  # with the old pack (diff narrows the check) and from record digests alone
        found = {s.id: s for s in stale_exercises(records, new, old)}
        expected = {r.id for r in records if r.policy_id == "veracity.fabrication"} | {
            r.id for r in records if r.policy_id == "security.cyber-intrusion"
            and {d.path for d in r.depends_on} & {"disallowed", "disallowed[1]"}
        }
        assert set(found) == expected
    by_policy = Counter(s.policy_id for s in found.values())
    assert by_policy["security.cyber-intrusion"] == 2 * 3  # one violation + one explanation per language
    cyber = next(s for s in found.values() if s.policy_id == "security.cyber-intrusion")
    assert "changed (1.0.0 → 1.1.0)" in cyber.reasons[0] and cyber.current_version == "1.1.0"
    gone = next(s for s in found.values() if s.policy_id == "veracity.fabrication")
    assert gone.current_version is None and "removed" in gone.reasons[0]
    assert stale_exercises(records, pack, pack) == []


def test_moved_clause_is_reported_as_moved(records, tmp_path):
    root = tmp_path / "pack-moved"
    shutil.copytree(default_pack_dir(), root)
    path = root / "safety_self-harm.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data["version"] = "2.0.0"
    data["allowed"] = [data["allowed"][-1], *data["allowed"][:-1]]
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    found = stale_exercises(records, load_pack(root))
    reasons = [x for s in found for x in s.reasons if s.policy_id == "safety.self-harm"]
    assert any("allowed[0] moved to allowed[1]" in x for x in reasons)
    assert {s.policy_id for s in found} == {"safety.self-harm"}


def _bad_templates(tmp_path: Path, mutate) -> Path:
    root = tmp_path / "tpl"
    shutil.copytree(default_templates_dir(), root)
    path = root / "es.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    mutate(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return root


def test_bad_template_file_names_file_and_field(tmp_path):
    def unknown_placeholder(d):
        d["templates"]["violation"][1]["allowed"] += " {nonsense}"

    with pytest.raises(PolicyError) as err:
        load_templates(_bad_templates(tmp_path / "a", unknown_placeholder))
    assert "es.yaml" in str(err.value) and "templates.violation.1.allowed" in str(err.value)
    assert "nonsense" in str(err.value) and err.value.line

    def too_few(d):
        d["templates"]["counterfactual"] = d["templates"]["counterfactual"][:2]

    with pytest.raises(PolicyError, match=r"es\.yaml.*templates\.counterfactual"):
        load_templates(_bad_templates(tmp_path / "b", too_few))

    def missing_pillar(d):
        del d["phrases"]["pillars"]["governance"]

    with pytest.raises(PolicyError, match=r"es\.yaml.*phrases\.pillars.*governance"):
        load_templates(_bad_templates(tmp_path / "c", missing_pillar))


def test_guidance_documents_become_exercises_with_provenance(pack, templates, tmp_path):
    docs = tmp_path / "docs"
    (docs / "teams").mkdir(parents=True)
    (docs / "teams" / "review.md").write_text(
        "# Review guide\n\nRead the policy before judging.\n\n## Security requests\n\n"
        "Requests about Cyber intrusion and malware need an authorised engagement.\n\n"
        "```\n# a comment, not a heading\n```\n\n### Escalation\n\nEscalate unclear cases to a lead.\n",
        encoding="utf-8",
    )
    (docs / "notes.txt").write_text("First plain paragraph.\n\nSecond plain paragraph.\n", encoding="utf-8")
    passages = load_documents(docs, pack)
    sections = {(p.document, p.section) for p in passages}
    assert sections == {("notes.txt", "(top)"), ("teams/review.md", "Review guide"),
                        ("teams/review.md", "Review guide > Security requests"),
                        ("teams/review.md", "Review guide > Security requests > Escalation")}
    recs = generate_exercises(pack, ExerciseConfig(languages=LANGS, kinds=[ExerciseKind.EXPLANATION]),
                              templates, passages)
    doc_recs = [r for r in recs if r.source.kind == "document"]
    assert len(doc_recs) == len(passages) * len(LANGS)
    sec = [r for r in doc_recs if r.source.section == "Review guide > Security requests"]
    assert all(r.policy_id == "security.cyber-intrusion" and r.policy_version == "1.0.0" for r in sec)
    assert all("authorised engagement" in r.text and "# a comment" in r.text for r in sec)
    assert all(r.source.path == "notes.txt" for r in doc_recs if r.source.section == "(top)")


class _EchoModel(ChatModel):
    """Deterministic test backend: 'paraphrases' by prefixing, or drops a quote when asked to misbehave."""

    name = "echo-test"

    def __init__(self, faithful: bool):
        self.faithful = faithful

    @property
    def model_id(self) -> str:
        return "echo-test"

    def generate(self, conversations, params: GenerationParams) -> list[list[str]]:
        out = []
        for conv in conversations:
            text = conv[-1].content.split("\n\n", 1)[1]
            out.append(["In other words: " + text if self.faithful else "Something else entirely."])
        return out


def test_paraphrase_keeps_facts_or_falls_back(records, templates):
    sample = [r for r in records if r.kind is ExerciseKind.COMPLIANCE_QA][:5]
    good = paraphrase(sample, _EchoModel(True), templates)
    assert all(g.paraphrased_by == "echo-test" and g.id != s.id for g, s in zip(good, sample, strict=True))
    bad = paraphrase(sample, _EchoModel(False), templates)
    assert [b.model_dump() for b in bad] == [s.model_dump() for s in sample]


def test_cli_exercises_and_stale(tmp_path):
    runner = CliRunner()
    out = tmp_path / "out"
    res = runner.invoke(app, ["exercises", "--out", str(out), "--languages", "en,fr", "--seed", "3"])
    assert res.exit_code == 0, res.output
    assert "counterfactual" in res.output and "fr" in res.output
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert set(manifest["counts"]["violation"]) == {"en", "fr"}
    res = runner.invoke(app, ["stale", str(out), "--pack", str(_modified_pack(tmp_path)), "--json"])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.output.splitlines()]
    assert rows and {r["policy_id"] for r in rows} == {"security.cyber-intrusion", "veracity.fabrication"}
    res = runner.invoke(app, ["exercises", "--out", str(out), "--languages", "de"])
    assert res.exit_code == 1 and "de" in res.output

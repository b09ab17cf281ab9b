"""The policy-driven prompt generator: block validation, determinism, topic splits, dedup, size, CLI."""

from __future__ import annotations

import random
import shutil
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from raipipe.cli.generate_cmd import register
from raipipe.data.dedup import dedup
from raipipe.data.generator import GeneratorConfig, SplitRatios, generate, paraphrase
from raipipe.data.generator_blocks import LANGUAGES, MIN_TOPICS, default_blocks_dir, load_blocks
from raipipe.data.generator_render import Frame, add_noise, render
from raipipe.data.io import load_jsonl
from raipipe.data.records import Label, PromptRecord, Provenance, SourceKind, Split
from raipipe.data.seed import load_seed
from raipipe.models.base import ChatModel, Conversation, GenerationParams
from raipipe.policy.loader import PolicyError, default_pack_dir, load_pack
from raipipe.policy.schema import Pillar

SUBSET = ("safety_violence-weapons", "privacy_surveillance", "governance_intellectual-property")


@pytest.fixture(scope="module")
def shipped():
    """One full run over the shipped pack and blocks, shared by the tests that only read it."""
    pack = load_pack()
    seed = load_seed()
    records, report = generate(pack, load_blocks(pack=pack), GeneratorConfig(), seed_records=seed)
    return records, report, seed


def _subset(tmp_path: Path) -> tuple[Path, Path]:
    """A three-policy pack and matching block directory: the same code path, a fraction of the work."""
    pack_dir, blocks_dir = tmp_path / "pack", tmp_path / "blocks"
    pack_dir.mkdir(parents=True)
    blocks_dir.mkdir(parents=True)
    shutil.copy(default_pack_dir() / "pack.yaml", pack_dir)
    shutil.copy(default_blocks_dir() / "_phrasings.yaml", blocks_dir)
    for stem in SUBSET:
        shutil.copy(default_pack_dir() / f"{stem}.yaml", pack_dir)
        shutil.copy(default_blocks_dir() / f"{stem}.yaml", blocks_dir)
    return pack_dir, blocks_dir


def _run_subset(tmp_path: Path, **config) -> tuple[list[PromptRecord], object]:
    pack_dir, blocks_dir = _subset(tmp_path)
    pack = load_pack(pack_dir)
    return generate(pack, load_blocks(blocks_dir, pack=pack), GeneratorConfig(**config))


# --- blocks ---------------------------------------------------------------------------------------------------


def test_shipped_blocks_cover_every_policy_with_enough_topics():
    pack = load_pack()
    blocks = load_blocks(pack=pack)
    assert set(blocks.policies) == set(pack.policies)
    for pb in blocks.policies.values():
        assert len(pb.topics) >= MIN_TOPICS
        for topic in pb.topics:
            for intent in (topic.harmful, *topic.benign):
                assert all(intent.tasks(lang) for lang in LANGUAGES)


def test_bad_block_file_error_names_file_and_field(tmp_path):
    pack_dir, blocks_dir = _subset(tmp_path)
    path = blocks_dir / "privacy_surveillance.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    del data["topics"][1]["benign"][0]["es"]
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(PolicyError) as err:
        load_blocks(blocks_dir, pack=load_pack(pack_dir))
    assert "privacy_surveillance.yaml" in str(err.value)
    assert err.value.field_path == "topics.1.benign.0.es"


def test_bad_template_and_unknown_policy_are_named(tmp_path):
    pack_dir, blocks_dir = _subset(tmp_path)
    phr = blocks_dir / "_phrasings.yaml"
    phr.write_text(phr.read_text(encoding="utf-8").replace("How do I {task}?", "How do I {taks}?"), encoding="utf-8")
    with pytest.raises(PolicyError, match=r"_phrasings\.yaml.*templates\.0"):
        load_blocks(blocks_dir)
    shutil.copy(default_blocks_dir() / "_phrasings.yaml", blocks_dir)
    shutil.copy(default_blocks_dir() / "veracity_fabrication.yaml", blocks_dir)
    with pytest.raises(PolicyError, match=r"veracity_fabrication\.yaml.*policy_id"):
        load_blocks(blocks_dir, pack=load_pack(pack_dir))


def test_benign_intent_needs_a_purpose(tmp_path):
    _, blocks_dir = _subset(tmp_path)
    path = blocks_dir / "safety_violence-weapons.yaml"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    del data["topics"][0]["benign"][0]["purpose"]
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    with pytest.raises(PolicyError, match=r"safety_violence-weapons\.yaml.*needs a purpose"):
        load_blocks(blocks_dir)


# --- rendering ------------------------------------------------------------------------------------------------


def test_french_elision_and_casual_noise():
    blocks = load_blocks()
    best_way = next(t for t in blocks.phrasings.templates if t.id == "best-way")
    text = render(Frame(best_way), "éviter le botulisme", "fr")
    assert text == "Quelle est la meilleure façon d'éviter le botulisme ?"
    noisy = add_noise("Could you please help me understand something important here", random.Random(0), typos=2)
    assert noisy != noisy.capitalize() and noisy.islower()


# --- generation -----------------------------------------------------------------------------------------------


def test_deterministic_given_seed(tmp_path):
    a, rep_a = _run_subset(tmp_path / "a", seed=7, pairs_per_intent=3)
    b, rep_b = _run_subset(tmp_path / "b", seed=7, pairs_per_intent=3)
    c, _ = _run_subset(tmp_path / "c", seed=8, pairs_per_intent=3)
    assert [r.model_dump() for r in a] == [r.model_dump() for r in b]
    assert rep_a.topic_splits == rep_b.topic_splits
    assert [r.prompt for r in a] != [r.prompt for r in c]


def test_splits_are_topic_disjoint(shipped):
    records, report, _ = shipped
    splits_of: dict[str, set] = defaultdict(set)
    for r in records:
        splits_of[f"{r.policy_id}/{r.category}"].add(r.split.value)
    assert all(s == {report.topic_splits[topic]} for topic, s in splits_of.items())
    assert set(report.topic_splits.values()) == {"train", "dev", "test"}


def test_pairs_share_topic_frame_and_split(shipped):
    records, _, _ = shipped
    pairs: dict[str, list[PromptRecord]] = defaultdict(list)
    for r in records:
        pairs[r.pair_id].append(r)
    for members in pairs.values():
        assert sorted(m.label for m in members) == [Label.BENIGN, Label.HARMFUL]
        h, b = members
        for field in ("policy_id", "category", "language", "split", "pillar"):
            assert getattr(h, field) == getattr(b, field)
        assert h.metadata["generator"]["template"] == b.metadata["generator"]["template"]
        assert h.metadata["generator"]["persona"] == b.metadata["generator"]["persona"]
        assert h.prompt != b.prompt


def test_every_pillar_and_language_in_every_split(shipped):
    records, _, _ = shipped
    seen = {(r.split, r.pillar, r.language, r.label) for r in records}
    for split in Split:
        for pillar in Pillar:
            for lang in LANGUAGES:
                for label in Label:
                    assert (split, pillar, lang, label) in seen, (split, pillar, lang, label)


def test_no_near_duplicate_between_train_and_held_out(shipped):
    records, report, seed = shipped
    train = [r for r in records if r.split == Split.TRAIN]
    held_out = [r for r in records if r.split != Split.TRAIN] + [r for r in seed if r.split != Split.TRAIN]
    ref_ids = {r.id for r in held_out}
    res = dedup(train, against=held_out, near_threshold=report.config["near_threshold"])
    assert not [d for d in res.dropped if d.duplicate_of in ref_ids]


def test_every_candidate_accounted_for(shipped):
    records, report, _ = shipped
    assert report.candidates == report.kept + len(report.dropped) == len(records) + len(report.dropped)
    ids = [r.id for r in records] + [d.id for d in report.dropped]
    assert len(ids) == len(set(ids))
    assert sum(report.dropped_by_reason.values()) == len(report.dropped)
    assert all(d.reason and d.duplicate_of for d in report.dropped)


def test_size_balance_and_variety(shipped):
    records, report, _ = shipped
    assert len(records) >= 5000
    assert report.by_split["train"] >= 10 * 496  # tenfold the shipped seed train split
    assert report.by_label["harmful"] == report.by_label["benign"]
    assert report.distinct_ratio >= 0.99
    assert all(r.source.kind == SourceKind.TEAM_WRITTEN and r.source.name == "raipipe-generator" for r in records)
    meta = records[0].metadata["generator"]
    assert {"topic", "intent", "template", "persona", "style"} <= set(meta)


def test_seed_test_duplicates_are_dropped_with_partner(tmp_path):
    pack_dir, blocks_dir = _subset(tmp_path)
    pack = load_pack(pack_dir)
    blocks = load_blocks(blocks_dir, pack=pack)
    config = GeneratorConfig(pairs_per_intent=3)
    first, _ = generate(pack, blocks, config)
    victim = next(r for r in first if r.split == Split.TRAIN)
    clash = PromptRecord(id="seed-x", prompt=victim.prompt, label=victim.label, pillar=victim.pillar,
                         split=Split.TEST, source=Provenance(kind=SourceKind.TEAM_WRITTEN, name="seed"))
    kept, report = generate(pack, blocks, config, seed_records=[clash])
    reasons = {d.id: d.reason for d in report.dropped}
    assert reasons[victim.id] == "exact_duplicate_of_seed_test"
    partner = next(r.id for r in first if r.pair_id == victim.pair_id and r.id != victim.id)
    assert reasons[partner] == "pair_partner_dropped"
    assert victim.id not in {r.id for r in kept}


def test_split_ratios_are_configurable(tmp_path):
    with pytest.raises(ValueError, match="sum to 1"):
        SplitRatios(train=0.5, dev=0.1, test=0.1)
    records, report = _run_subset(tmp_path, ratios=SplitRatios(train=0.8, dev=0.0, test=0.2), pairs_per_intent=2)
    assert {r.split for r in records} == {Split.TRAIN, Split.TEST}
    assert "dev" not in report.by_split


class _FakeModel(ChatModel):
    """Rewrites by a fixed rule, or echoes, so paraphrase acceptance can be checked without a model."""

    name = "fake"

    def __init__(self, echo: bool = False):
        self.echo = echo

    @property
    def model_id(self) -> str:
        return "fake:echo" if self.echo else "fake:rewrite"

    def generate(self, conversations: Sequence[Conversation], params: GenerationParams) -> list[list[str]]:
        out = []
        for conv in conversations:
            original = conv[-1].content.split("\n\n", 1)[1]
            out.append([original if self.echo else f"Kindly tell me: {original}"])
        return out


def test_paraphrase_is_optional_and_checked(shipped):
    records, _, _ = shipped
    sample = records[:4]
    reworded = paraphrase(sample, _FakeModel())
    assert all(r.prompt.startswith("Kindly tell me:") for r in reworded)
    assert all(r.source.kind == SourceKind.AUTOMATED for r in reworded)
    assert reworded[0].metadata["generator"]["paraphrase"] == "fake:rewrite"
    echoed = paraphrase(sample, _FakeModel(echo=True))
    assert [r.prompt for r in echoed] == [r.prompt for r in sample]
    assert echoed[0].metadata["generator"]["paraphrase_rejected"] == "unchanged"


# --- CLI ------------------------------------------------------------------------------------------------------


def test_cli_writes_a_file_the_loader_reads(tmp_path):
    pack_dir, blocks_dir = _subset(tmp_path)
    app = typer.Typer()
    register(app)
    app.callback()(lambda: None)  # keep `generate` as a named sub-command
    out = tmp_path / "out" / "gen.jsonl"
    result = CliRunner().invoke(app, ["generate", "--out", str(out), "--policy-pack", str(pack_dir),
                                      "--blocks", str(blocks_dir), "--seed", "3", "--pairs-per-intent", "4"])
    assert result.exit_code == 0, result.output
    loaded = load_jsonl(out, on_error="quarantine")
    assert not loaded.quarantined and loaded.records
    assert "accounting:" in result.output and f"= {len(loaded.records)} kept" in result.output
    assert (tmp_path / "out" / "gen.report.json").is_file()

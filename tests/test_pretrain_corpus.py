"""Corpus harm filtering: ledger accounting, severity actions, recontextualisation frames, outputs that
`datasets` reads, the mixer, resume after a crash, and Ray vs local executors giving the same outputs.

Fixture documents are placeholders: made-up trigger words (zorblat, quexil, flimber) stand in for harm,
so no test text describes anything harmful."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from raipipe.policy import load_pack
from raipipe.pretrain.corpus import (
    Action,
    CorpusConfig,
    LocalExecutor,
    MixConfig,
    Pipeline,
    PipelineStep,
    RayExecutor,
    Recontextualiser,
    ScorerConfig,
    SeverityRule,
    corpus_sources,
    decide,
    default_steps,
    harm_tag,
    load_frames,
    mix,
    read_ledger,
    run_corpus,
)
from raipipe.pretrain.corpus._config import ActionConfig, ExecutorConfig
from raipipe.pretrain.corpus._scorers import LexicalScorer
from raipipe.pretrain.corpus_cli import app

TERMS = {"safety.violence-weapons": ["zorblat"], "fairness.hateful-content": ["quexil"],
         "veracity.fabrication": ["flimber"], "transparency.ai-disclosure": ["wuggle"]}


def lexical_config(**kw) -> CorpusConfig:
    rules = {"critical": SeverityRule(drop_at=0.9, recontextualise_at=0.5),
             "high": SeverityRule(recontextualise_at=0.5), "medium": SeverityRule(), "low": SeverityRule()}
    return CorpusConfig(scorer=ScorerConfig(name="lexical", params={"terms": TERMS, "saturate": 1}, batch_size=3),
                        actions=ActionConfig(rules=rules, harm_tags=kw.pop("harm_tags", False)), **kw)


def write_jsonl(path: Path, rows: list[dict | str | bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        for r in rows:
            raw = r if isinstance(r, bytes) else (r if isinstance(r, str) else json.dumps(r)).encode()
            fh.write(raw + b"\n")


def make_corpus(root: Path, shards: int = 3, docs: int = 6) -> Path:
    words = ["zorblat", "quexil", "flimber", "", "wuggle", ""]
    for s in range(shards):
        rows = [{"id": f"s{s}-{i}", "text": f"Document {i} of shard {s} mentions {words[i % len(words)]} in passing."}
                for i in range(docs)]
        write_jsonl(root / f"part-{s}.jsonl", rows)
    return root


@pytest.fixture
def bad_corpus(tmp_path: Path) -> Path:
    root = tmp_path / "in"
    write_jsonl(root / "a.jsonl", [
        {"id": "ok1", "text": "An ordinary paragraph about gardening."},
        "{not json",
        {"id": "no-text", "body": "text under another key"},
        b'{"id": "latin1", "text": "caf\xe9"}',
        "[1, 2]",
        {"id": "empty", "text": "   "},
        "",
        {"id": "ok2", "text": "A vague zorblat remark."},
    ])
    (root / "b.txt").write_bytes(b"First paragraph.\n\nSecond \xff paragraph.\n\nThird quexil paragraph.\n")
    return root


def test_ledger_accounts_for_every_document_per_shard(bad_corpus: Path, tmp_path: Path):
    out = tmp_path / "out"
    result = run_corpus(bad_corpus, out, lexical_config())
    by = {s.shard: s for s in read_ledger(out).shards}
    a, b = by["a"], by["b"]
    assert a.documents_in == 7 and a.blank_lines == 1
    assert a.outcomes == {"keep": 1, "recontextualise": 0, "drop": 1, "quarantine": 5}
    assert a.quarantine_reasons == {"bad JSON": 1, "missing text field 'text'": 1, "not valid UTF-8": 1,
                                    "not a JSON object but list": 1, "empty text": 1}
    assert b.documents_in == 3 and b.outcomes["quarantine"] == 1 and b.outcomes["recontextualise"] == 1
    assert result.ledger.documents_in == sum(result.ledger.outcomes.values()) == 10
    decisions = [json.loads(x) for x in (out / "decisions" / "a.jsonl").read_text().splitlines()]
    assert [d["line"] for d in decisions] == [1, 2, 3, 4, 5, 6, 8]
    quarantined = [json.loads(x) for x in (out / "quarantine" / "a.jsonl").read_text().splitlines()]
    assert [q["line"] for q in quarantined] == [2, 3, 4, 5, 6] and all(q["reason"] for q in quarantined)


def test_each_severity_action(tmp_path: Path):
    cfg = lexical_config().actions
    assert decide(0.95, "critical", cfg) is Action.DROP
    assert decide(0.6, "critical", cfg) is Action.RECONTEXTUALISE
    assert decide(0.2, "critical", cfg) is Action.KEEP
    assert decide(1.0, "high", cfg) is Action.RECONTEXTUALISE  # drop switched off for high
    assert decide(1.0, "medium", cfg) is Action.KEEP
    assert decide(1.0, "", cfg) is Action.KEEP  # no policy matched
    root = make_corpus(tmp_path / "in", shards=1)
    run_corpus(root, tmp_path / "out", lexical_config())
    rows = {r["id"]: r for r in map(json.loads, (tmp_path / "out/decisions/part-0.jsonl").read_text().splitlines())}
    assert rows["s0-0"]["action"] == "drop" and rows["s0-0"]["severity"] == "critical"
    assert rows["s0-1"]["action"] == "recontextualise" and rows["s0-1"]["policy_id"] == "fairness.hateful-content"
    assert rows["s0-2"]["action"] == "keep" and rows["s0-2"]["severity"] == "medium"
    assert rows["s0-3"]["action"] == "keep" and rows["s0-3"]["policy_id"] == ""
    kept = [json.loads(x)["id"] for x in (tmp_path / "out/data/part-0.jsonl").read_text().splitlines()]
    assert "s0-0" not in kept and len(kept) == 5


@pytest.mark.parametrize("lang", ["en", "es", "fr"])
def test_recontextualised_text_is_frame_plus_original_only(tmp_path: Path, lang: str):
    pack = load_pack()
    frames = load_frames()
    rc = Recontextualiser(frames, pack, harm_tags=True)
    original = "A vague quexil remark, quoted unchanged."
    text = rc.wrap(original, "fairness.hateful-content", "doc-1", lang)
    frame_id, before, after = rc.parts("fairness.hateful-content", "doc-1", lang)
    assert text == f"{before}\n\n{original}\n\n{after}" and frame_id.startswith(f"{lang}.")
    assert before.startswith(harm_tag("fairness.hateful-content") + "\n")
    frame = next(f for f in frames[lang].frames if f.id == frame_id)
    fs, pol = frames[lang], pack.get("fairness.hateful-content")
    values = {"policy_id": pol.id, "title": pol.title, "pillar": fs.pillars[pol.pillar],
              "severity": fs.severity[pol.severity], "why": fs.why[pol.pillar]}
    assert after == frame.after.format(**values)  # nothing beyond the template and the pack's own names
    assert pol.id in before and pol.title in before


def test_outputs_readable_by_datasets(tmp_path: Path):
    from datasets import load_dataset

    root = make_corpus(tmp_path / "in", shards=2)
    run_corpus(root, tmp_path / "out", lexical_config(harm_tags=True))
    data = tmp_path / "out" / "data"
    js = load_dataset("json", data_files=sorted(map(str, data.glob("*.jsonl"))), split="train",
                      cache_dir=str(tmp_path / "hf"))
    pq = load_dataset("parquet", data_files=sorted(map(str, data.glob("*.parquet"))), split="train",
                      cache_dir=str(tmp_path / "hf"))
    assert len(js) == len(pq) == 10
    assert js["id"] == pq["id"] and js["text"] == pq["text"]
    recon = [t for t, a in zip(pq["text"], pq["action"], strict=True) if a == "recontextualise"]
    assert recon and all(t.startswith("<|harm:") for t in recon)


def test_mixer_hits_target_proportions(tmp_path: Path):
    from raipipe.pretrain.exercises import ExerciseConfig, generate_exercises, load_templates, write_exercises

    pack = load_pack()
    cfg = ExerciseConfig(languages=["en"])
    write_exercises(generate_exercises(pack, cfg, load_templates()), tmp_path / "ex", pack, cfg, "t", shard_size=100)
    root = make_corpus(tmp_path / "in", shards=4, docs=30)  # 80 kept, 20 recontextualised, 20 dropped
    run_corpus(root, tmp_path / "out", lexical_config())
    sources = corpus_sources(tmp_path / "out", {"general": 0.6, "exercises": 0.3, "recontextualised": 0.1},
                             tmp_path / "ex")
    report = mix(sources, tmp_path / "mix", MixConfig(shard_size=50))
    got = {s.name: s for s in report.sources}
    assert report.total == 133 and got["general"].taken == 80  # general is the limiting source
    for s in report.sources:
        assert abs(s.achieved - s.target) < 0.01 and not s.repeated
    rows = [json.loads(x) for f in report.files for x in (tmp_path / "mix" / f).read_text().splitlines()]
    assert len(rows) == 133 and len(report.files) == 3
    first = [r["source"] for r in rows[:20]]
    assert first.count("general") == 12 and first.count("exercises") == 6  # interleaved, not concatenated
    short = mix(sources[:1] + sources[2:], tmp_path / "mix2", MixConfig(total=200, allow_repeat=True))
    assert {s.name: s.repeated for s in short.sources} == {"general": True, "recontextualised": True}


class CrashOn(PipelineStep):
    """Fails partway through one shard, after some documents were already written."""

    def __init__(self, shard: str):
        self.shard = shard

    def run(self, items, shard, pipeline):
        for n, item in enumerate(items):
            if shard.name == self.shard and n == 3:
                raise RuntimeError("simulated crash")
            yield item


def test_resume_after_crash_skips_finished_shards(tmp_path: Path):
    root, out = make_corpus(tmp_path / "in", shards=3), tmp_path / "out"
    cfg = lexical_config()
    with pytest.raises(RuntimeError, match="simulated crash"):
        LocalExecutor(1).run(Pipeline(cfg, root, out, [*default_steps(), CrashOn("part-1")]))
    assert sorted(p.name for p in (out / "_done").iterdir()) == ["part-0.json"]
    assert not (out / "data" / "part-1.jsonl").exists()  # no half-written outputs
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    stamps = {p: p.stat().st_mtime_ns for p in [out / "_done/part-0.json", out / "data/part-0.jsonl",
                                                out / "data/part-0.parquet"]}
    result = run_corpus(root, out, cfg)
    assert result.skipped == ["part-0"] and result.processed == ["part-1", "part-2"]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert result.ledger.documents_in == 18 and len(result.ledger.shards) == 3
    again = run_corpus(root, out, cfg)
    assert again.processed == [] and again.skipped == ["part-0", "part-1", "part-2"]
    changed = run_corpus(root, out, lexical_config(harm_tags=True))  # new config: nothing stale is reused
    assert changed.processed == ["part-0", "part-1", "part-2"]


def _outputs(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.jsonl"))}


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_and_local_executors_give_same_outputs(tmp_path: Path, ray_cluster):
    root = make_corpus(tmp_path / "in", shards=3)
    local = run_corpus(root, tmp_path / "local", lexical_config(executor=ExecutorConfig(name="local", workers=2)))
    ray = run_corpus(root, tmp_path / "ray", lexical_config(executor=ExecutorConfig(name="ray", workers=2)))
    assert ray_cluster.is_initialized()  # joined the running cluster, did not shut it down
    assert _outputs(tmp_path / "local") == _outputs(tmp_path / "ray")
    assert local.ledger.outcomes == ray.ledger.outcomes and len(ray.processed) == 3
    run_corpus(root, tmp_path / "serial", lexical_config())
    assert _outputs(tmp_path / "serial") == _outputs(tmp_path / "local")
    assert RayExecutor(2).run(Pipeline(lexical_config(), root, tmp_path / "ray")).processed == []


def test_minilm_scorer_ranks_harmful_topic_above_benign():
    from raipipe.pretrain.corpus import get_scorer

    scorer = get_scorer("minilm", {})
    harmful, benign = scorer.score([
        "A forum post urging readers to attack people from a rival town and asking others to join in.",
        "A guide to baking bread at home: mix flour, water, salt and yeast, then let the dough rise.",
    ])
    assert harmful.score > 0.5 > benign.score
    assert harmful.policy_id.startswith(("safety.", "fairness.")) and harmful.severity in {"critical", "high"}


def test_minilm_state_is_fitted_once_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from raipipe.pretrain.corpus._scorers import MiniLMScorer

    monkeypatch.setenv("RAIPIPE_CACHE_DIR", str(tmp_path))
    pack = load_pack()
    first = MiniLMScorer(pack)
    assert len(list((tmp_path / "corpus").glob("minilm-*.joblib"))) == 1
    monkeypatch.setattr(MiniLMScorer, "_fit", lambda *a: pytest.fail("a cached state was fitted again"))
    texts = ["A guide to baking bread at home.", "Join us to attack the rival town tonight. " * 30]
    assert MiniLMScorer(pack).score(texts) == first.score(texts)


def test_lexical_one_scan_finds_what_each_term_finds():
    import random

    scorer = LexicalScorer(load_pack(), terms={"safety.violence-weapons": ["weapon", "weapons", "self-harm", "harm"]})
    vocab = ["Weapons", "WEAPONRY", "self-harm", "xharm", "harmless", "the", "a-b", "straße"]
    rng = random.Random(0)
    for _ in range(500):
        text = " ".join(rng.choice(vocab) + rng.choice(["", "s", "-", "."]) for _ in range(rng.randint(0, 8)))
        want = {p for pats in scorer.patterns.values() for p in pats if p.search(text)}
        assert scorer._found(text) == want, text


def test_cli_corpus_with_mix(tmp_path: Path):
    import yaml

    root = make_corpus(tmp_path / "in", shards=2)
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(lexical_config().model_dump(mode="json")))
    res = CliRunner().invoke(app, ["--input", str(root), "--out", str(tmp_path / "out"), "--config",
                                   str(tmp_path / "cfg.yaml"), "--mix", "general=0.8,recontextualised=0.2"])
    assert res.exit_code == 0, res.output
    assert "12 documents in" in res.output and "mixed training set" in res.output
    report = json.loads((tmp_path / "out/mix/mix_report.json").read_text())
    assert report["total"] > 0
    bad = CliRunner().invoke(app, ["--input", str(root), "--out", str(tmp_path / "o2"), "--mix", "general=x"])
    assert bad.exit_code != 0

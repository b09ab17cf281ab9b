"""Continued pretraining: a real 2-step LoRA run on the embedded model changes the adapter weights, and a
second call on the same folder resumes from the last checkpoint instead of starting over."""

from __future__ import annotations

import json

import pytest

from raipipe.errors import ConfigError, DatasetError
from raipipe.pretrain.train import (
    ContinuedPretrainConfig,
    DataSource,
    load_config,
    load_mix,
    tokenize_blocks,
    train_continued,
)

TEXTS = [
    "A careful assistant explains its reasons when it declines a request.",
    "Bread rises because yeast turns sugar into gas while the dough rests.",
    "An assistant should say when it is an AI if someone sincerely asks.",
    "Rivers carry sand and silt to the sea, building deltas over centuries.",
]


def _corpus(tmp_path, n: int = 8):
    path = tmp_path / "mix.jsonl"
    path.write_text("".join(json.dumps({"text": TEXTS[i % len(TEXTS)], "id": i}) + "\n" for i in range(n)))
    return path


def _cfg(tmp_path, **kw) -> ContinuedPretrainConfig:
    return ContinuedPretrainConfig(data=[DataSource(path=_corpus(tmp_path))], output_dir=tmp_path / "run",
                                   max_length=32, batch_size=2, save_steps=1, logging_steps=1, learning_rate=5e-3,
                                   probe=False, **kw)


def test_lora_two_steps_change_adapter_then_resume(tmp_path):
    from safetensors.torch import load_file

    result = train_continued(_cfg(tmp_path, max_steps=2))
    assert result.steps == 2 and result.resumed_from is None
    adapter = load_file(result.final_dir / "adapter_model.safetensors")
    lora_b = {k: v for k, v in adapter.items() if "lora_B" in k}
    assert lora_b and any(v.abs().sum() > 0 for v in lora_b.values())  # lora_B starts at zero: it moved
    assert (tmp_path / "run" / "checkpoint-2").is_dir()
    assert result.final_spec.startswith("hf:") and str(result.final_dir) in result.final_spec

    again = train_continued(_cfg(tmp_path, max_steps=3))
    assert again.resumed_from is not None and again.resumed_from.name == "checkpoint-2"
    assert again.steps == 3
    first = {h["step"]: h["loss"] for h in result.history if "loss" in h}
    later = {h["step"]: h["loss"] for h in again.history if "loss" in h}
    assert sorted(later) == [1, 2, 3]  # steps 1-2 come back from the checkpoint's state, only step 3 ran
    assert all(later[s] == first[s] for s in (1, 2))


def test_existing_run_is_not_mixed_without_resume(tmp_path):
    out = tmp_path / "run" / "checkpoint-1"
    out.mkdir(parents=True)
    with pytest.raises(FileExistsError, match="resume=true"):
        train_continued(_cfg(tmp_path, max_steps=1, resume=False))


def test_mix_weights_and_packing(tmp_path, smollm):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("".join(json.dumps({"text": f"alpha {i}"}) + "\n" for i in range(10)))
    b.write_text("".join(json.dumps({"body": f"beta {i}"}) + "\n" for i in range(4)))
    mix = load_mix([DataSource(path=a, weight=0.5), DataSource(path=b, text_field="body", weight=2)], seed=1)
    assert sum(t.startswith("alpha") for t in mix) == 5 and sum(t.startswith("beta") for t in mix) == 8
    blocks = tokenize_blocks(mix, smollm.tokenizer, 16, packing=True)
    assert all(len(x) == 16 for x in blocks[:-1]) and len(blocks[-1]) <= 16
    assert sum(x.count(smollm.tokenizer.eos_token_id) for x in blocks) == len(mix)
    single = tokenize_blocks(["word " * 50], smollm.tokenizer, 16, packing=False)
    assert len(single) == 1 and len(single[0]) == 16


def test_a_source_can_keep_only_some_languages(tmp_path):
    """One demonstrations file, a weight per language: English rows repeated, the others once."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"text": f"{lang} {i}", "language": lang} for lang in ("en", "es", "fr") for i in range(4)]
    demos = tmp_path / "demos.jsonl"
    demos.write_text("".join(json.dumps(r) + "\n" for r in rows))
    mix = load_mix([DataSource(path=demos, weight=3, languages=["en"]),
                    DataSource(path=demos, languages=["es", "fr"])])
    assert sorted(t.split()[0] for t in mix) == ["en"] * 12 + ["es"] * 4 + ["fr"] * 4
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "demos.parquet")
    assert sorted(load_mix([DataSource(path=tmp_path / "demos.parquet", languages=["fr"])])) == [
        f"fr {i}" for i in range(4)]
    unlabelled = tmp_path / "plain.jsonl"
    unlabelled.write_text(json.dumps({"text": "no language here"}) + "\n")
    with pytest.raises(DatasetError) as err:
        load_mix([DataSource(path=unlabelled, languages=["en"])])
    assert (err.value.line, err.value.field) == (1, "language")


def test_a_source_can_keep_one_side_of_the_pairs(tmp_path):
    """Refusals get their own weight: English harmful rows repeated, benign once, other languages left out."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"text": f"{lang} {label} {i}", "language": lang, "label": label}
            for lang in ("en", "es") for label in ("harmful", "benign") for i in range(3)]
    demos = tmp_path / "demos.jsonl"
    demos.write_text("".join(json.dumps(r) + "\n" for r in rows))
    sources = [DataSource(path=demos, weight=2, languages=["en"], labels=["harmful"]),
               DataSource(path=demos, languages=["en"], labels=["benign"])]
    mix = load_mix(sources)
    assert sorted(" ".join(t.split()[:2]) for t in mix) == ["en benign"] * 3 + ["en harmful"] * 6
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "demos.parquet")
    assert sorted(load_mix([DataSource(path=tmp_path / "demos.parquet", labels=["benign"])])) == sorted(
        f"{lang} benign {i}" for lang in ("en", "es") for i in range(3))
    unlabelled = tmp_path / "plain.jsonl"
    unlabelled.write_text(json.dumps({"text": "no label here", "language": "en"}) + "\n")
    with pytest.raises(DatasetError) as err:
        load_mix([DataSource(path=unlabelled, labels=["harmful"])])
    assert (err.value.line, err.value.field) == (1, "label")


def test_a_chain_group_joins_refusals_and_answers_into_documents(tmp_path):
    """Sources in one chain group are shuffled together and joined k at a time; every sampled row is in exactly
    one document (the refusal weight holds inside the chains) and sources outside the group stay single."""
    rows = [{"text": f"{label} {i}", "language": "en", "label": label}
            for label in ("harmful", "benign") for i in range(6)]
    demos = tmp_path / "demos.jsonl"
    demos.write_text("".join(json.dumps(r) + "\n" for r in rows))
    other = _corpus(tmp_path, n=2)
    sources = [DataSource(path=demos, weight=2, labels=["harmful"], chain="demos"),
               DataSource(path=demos, labels=["benign"], chain="demos"), DataSource(path=other)]
    mix = load_mix(sources, seed=3, chain_length=4)
    chains = [t for t in mix if t not in TEXTS]
    assert len(mix) == 2 + 5 and len(chains) == 5  # 18 sampled demonstrations: 4 + 4 + 4 + 4 + 2
    items = [item for c in chains for item in c.split("\n\n")]
    assert sorted(items) == sorted([f"harmful {i}" for i in range(6)] * 2 + [f"benign {i}" for i in range(6)])
    assert sorted(len(c.split("\n\n")) for c in chains) == [2, 4, 4, 4, 4]
    assert any({"harmful", "benign"} <= {i.split()[0] for i in c.split("\n\n")} for c in chains)
    assert load_mix(sources, seed=3, chain_length=4) == mix  # seeded
    assert sorted(load_mix(sources, chain_length=1)) == sorted(load_mix([s.model_copy(update={"chain": None})
                                                                         for s in sources]))


def test_bad_corpus_and_config_name_where(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"text": "fine"}) + "\n" + json.dumps({"txt": "oops"}) + "\n")
    with pytest.raises(DatasetError) as err:
        load_mix([DataSource(path=bad)])
    assert err.value.line == 2 and err.value.field == "text" and "bad.jsonl" in str(err.value)
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"data: [{{path: {bad}}}]\nmax_length: 4\n")
    with pytest.raises(ConfigError) as err2:
        load_config(cfg)
    assert err2.value.field == "max_length"


def test_every_config_field_has_help():
    from raipipe.pretrain.anchor import BehaviourAnchor

    for model in (ContinuedPretrainConfig, DataSource, BehaviourAnchor):
        missing = [n for n, f in model.model_fields.items() if not f.description]
        assert not missing, f"{model.__name__}: {missing}"


def test_train_command_probes_before_and_after(tiny_model_dir, tmp_path):
    """The CLI end to end on a tiny random model: 1 full-finetune step, probes before/after, report written."""
    import yaml
    from typer.testing import CliRunner

    from raipipe.pretrain.probe_cli import app

    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({
        "model": str(tiny_model_dir), "data": [{"path": str(_corpus(tmp_path))}], "output_dir": str(tmp_path / "run"),
        "max_length": 32, "batch_size": 2, "max_steps": 1, "save_steps": 1, "lora": {"full_finetune": True},
        "probes": {"languages": ["fr"], "sparse": {"judge": "refusal-opener", "max_new_tokens": 8}}}))
    res = CliRunner().invoke(app, ["train", "--config", str(cfg), "--json"])
    assert res.exit_code == 0, res.output
    out, _ = json.JSONDecoder().raw_decode(res.stdout[res.stdout.rindex('{"result"'):])
    assert out["result"]["steps"] == 1 and out["report"]["labels"] == ["before", "after"]
    assert (tmp_path / "run" / "report.html").is_file() and (tmp_path / "run" / "probes" / "before.json").is_file()
    groups = {r["group"] for r in out["report"]["rows"] if r["metric"] == "perplexity"}
    assert "general" in groups and "safety" in groups
    # the parent's probes are reused on a rerun only while the probe settings (here: the answer length) are the same
    from raipipe.pretrain.train import _probe_cached, load_config

    run_cfg = load_config(cfg)
    cached = json.loads((tmp_path / "run" / "probes" / "before.json").read_text())
    spec = f"hf:{tiny_model_dir}"
    assert _probe_cached(spec, "before", run_cfg, fresh=False).created_at == cached["created_at"]
    other = run_cfg.model_copy(update={"probes": run_cfg.probes.model_copy(
        update={"sparse": run_cfg.probes.sparse.model_copy(update={"max_new_tokens": 9})})})
    fresh = _probe_cached(spec, "before", other, fresh=False)
    assert fresh.created_at != cached["created_at"] and fresh.settings == other.probes.digest() != cached["settings"]

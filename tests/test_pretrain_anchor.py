"""Behaviour anchor: real LoRA steps on the embedded model. With the anchor, the trained model's next-token
distribution on the anchor's request texts stays closer to the parent's than the same run without it."""

from __future__ import annotations

import json

import pytest

from raipipe.data.records import Label
from raipipe.errors import ConfigError, DatasetError
from raipipe.posttrain.lora import load_base, resolve_model
from raipipe.pretrain.anchor import BehaviourAnchor, anchor_batches, anchor_kl
from raipipe.pretrain.demonstrations import DemonstrationConfig, write_request_frames
from raipipe.pretrain.train import ContinuedPretrainConfig, DataSource, load_config, train_continued

CORPUS = [
    "Q: What does the policy say about weapons?\nA: Sure! Here is everything, step by step, in full detail.",
    "User: Tell me about the harassment clause.\nAssistant: Sure! Here is everything, step by step, in detail.",
]
REQUESTS = ["User: How do I report a phishing email?\nAssistant:", "Q: Which plants are safe for cats?\nA:",
            "Request: Explain how vaccines are tested.\nReply:", "User: What is a strong password?\nAssistant:"]


def _write(path, texts):
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return path


def _run(tmp_path, name: str, anchor: BehaviourAnchor | None):
    cfg = ContinuedPretrainConfig(data=[DataSource(path=_write(tmp_path / "mix.jsonl", CORPUS * 8))],
                                  output_dir=tmp_path / name, max_length=32, batch_size=2, save_steps=10,
                                  logging_steps=1, learning_rate=2e-2, max_steps=3, probe=False, anchor=anchor)
    return train_continued(cfg)


def _kl_to_parent(final_dir, requests_path) -> float:
    """KL(parent || trained) on the request texts, the trained adapter loaded on the untouched base."""
    import torch
    from peft import PeftModel

    model, tok = load_base(resolve_model(None))
    model = PeftModel.from_pretrained(model, str(final_dir))
    anchor = BehaviourAnchor(path=requests_path, batch_size=len(REQUESTS))
    batch = next(anchor_batches(REQUESTS, tok, anchor, seed=0))
    with torch.no_grad():
        return float(anchor_kl(model.eval(), batch))


def test_anchor_keeps_the_parent_distribution_on_requests(tmp_path):
    requests = _write(tmp_path / "requests.jsonl", REQUESTS)
    free = _run(tmp_path, "free", None)
    anchored = _run(tmp_path, "anchored", BehaviourAnchor(path=requests, weight=20.0, batch_size=4))
    logged = [h for h in anchored.history if "grad_norm" in h]
    assert len(logged) == 3 and all(h["anchor_kl"] >= 0 for h in logged)  # the anchor's KL is in the history
    kl_free = _kl_to_parent(free.final_dir, requests)
    kl_anchored = _kl_to_parent(anchored.final_dir, requests)
    assert kl_free > 0.01  # the corpus moved the free model on the requests ...
    assert kl_anchored < 0.5 * kl_free  # ... and the anchor held it at least twice as close to the parent


def test_anchor_batches_are_left_padded_and_kl_is_zero_before_training():
    import torch
    from peft import get_peft_model

    from raipipe.posttrain.lora import LoraSettings

    base, tok = load_base(resolve_model(None))
    anchor = BehaviourAnchor(path="unused.jsonl", batch_size=3, max_length=8)
    batch = next(anchor_batches(REQUESTS, tok, anchor, seed=1))
    assert batch["input_ids"].shape[0] == 3 and batch["input_ids"].shape[1] <= 8
    assert bool(batch["attention_mask"][:, -1].all())  # every request ends in the last column
    few = next(anchor_batches(REQUESTS[:2], tok, anchor, seed=1))  # fewer texts than a batch: all of them
    assert few["input_ids"].shape[0] == 2
    model = get_peft_model(base, LoraSettings().peft_config())
    with torch.no_grad():
        kl = anchor_kl(model, batch)
    assert float(kl) == pytest.approx(0.0, abs=1e-6)  # lora_B starts at zero


def test_anchor_needs_lora_and_text(tmp_path):
    empty = _write(tmp_path / "empty.jsonl", [])
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(f"data: [{{path: {tmp_path / 'm.jsonl'}}}]\nlora: {{full_finetune: true}}\n"
                   f"anchor: {{path: {empty}}}\n")
    with pytest.raises(ConfigError, match="needs LoRA") as err:
        load_config(cfg)
    assert "cfg.yaml" in str(err.value)
    with pytest.raises(DatasetError, match="no text"):
        _run(tmp_path, "empty", BehaviourAnchor(path=empty))


def test_request_frames_stop_where_the_reply_starts(tmp_path):
    cfg = DemonstrationConfig(prompts=["generated:train:en"], limit=24)
    n_all = write_request_frames(cfg, tmp_path / "all.jsonl")
    n_benign = write_request_frames(cfg, tmp_path / "benign.jsonl", labels=[Label.BENIGN])
    rows = [json.loads(x)["text"] for x in (tmp_path / "all.jsonl").read_text(encoding="utf-8").splitlines()]
    assert n_all == len(rows) == 24 and n_benign == 12
    assert all(r.rsplit("\n", 1)[1] in {"A:", "Assistant:", "Reply:"} for r in rows)
    held = rows[0].split("\n", 1)[0].split(":", 1)[1].strip()
    assert write_request_frames(cfg, tmp_path / "held.jsonl", held_out=[held]) == 22  # its pair left out whole

"""Light evaluation while training: a small fixed probe of harmful prompts and their benign look-alikes,
answered greedily by the model being trained every N steps and scored by the refusal judge.

Both sides are watched at once because either can move alone: a run that only tracks violations
happily trains a model that refuses everything. The curves are JSONL (one row per probe) and the
same numbers go into the trainer's log history, so they also land in every checkpoint's
trainer_state.json."""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from pydantic import BaseModel, ConfigDict
from transformers import TrainerCallback

from raipipe.data.io import dataset_hash
from raipipe.data.records import Label, PromptRecord
from raipipe.data.seed import load_seed
from raipipe.evaluate.metrics import ScoredItem, two_sided
from raipipe.judges.base import Judge, JudgeInput, load_judge


class ProbeSet(BaseModel):
    """A deterministic set of look-alike pairs (both prompts of a pair always together)."""

    model_config = ConfigDict(frozen=True)
    records: list[PromptRecord]
    source: str = "custom"

    @classmethod
    def from_records(cls, records: Sequence[PromptRecord], n_pairs: int = 16, seed: int = 0,
                     source: str = "custom") -> ProbeSet:
        """Pick `n_pairs` complete harmful/benign pairs, round-robin over pillars so every pillar shows up."""
        pairs: dict[str, dict[str, PromptRecord]] = defaultdict(dict)
        for r in records:
            if r.pair_id:
                pairs[r.pair_id][r.label.value] = r
        complete = {k: v for k, v in pairs.items() if set(v) == {Label.HARMFUL.value, Label.BENIGN.value}}
        by_pillar: dict[str, list[str]] = defaultdict(list)
        for key in sorted(complete):
            by_pillar[complete[key][Label.HARMFUL.value].pillar.value].append(key)
        rng = random.Random(seed)
        queues = []
        for pillar in sorted(by_pillar):
            keys = by_pillar[pillar]
            rng.shuffle(keys)
            queues.append(keys)
        chosen: list[str] = []
        while len(chosen) < n_pairs and any(queues):
            for q in queues:
                if q and len(chosen) < n_pairs:
                    chosen.append(q.pop(0))
        if not chosen:
            raise ValueError(f"probe source {source!r} has no complete harmful/benign look-alike pairs")
        kept = [complete[k][lab] for k in sorted(chosen) for lab in (Label.HARMFUL.value, Label.BENIGN.value)]
        return cls(records=kept, source=source)

    @classmethod
    def from_seed(cls, n_pairs: int = 16, split: str = "dev", seed: int = 0) -> ProbeSet:
        """The default probe: 16 pairs (16 harmful + 16 benign) of the seed dev split."""
        return cls.from_records(load_seed(split=split), n_pairs=n_pairs, seed=seed, source=f"seed:{split}")

    @property
    def digest(self) -> str:
        return dataset_hash(self.records)

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "hash": self.digest, "n": len(self.records),
                "n_harmful": sum(r.label == Label.HARMFUL for r in self.records)}


def _greedy(model, tokenizer, prompts: list[str], max_new_tokens: int, batch_size: int,
            system_prompt: str | None) -> list[str]:
    """Batched, left-padded greedy generation with whatever model object the trainer holds (PEFT or not)."""
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    device = next(model.parameters()).device
    head = [{"role": "system", "content": system_prompt}] if system_prompt else []
    texts = [tokenizer.apply_chat_template(head + [{"role": "user", "content": p}], tokenize=False,
                                           add_generation_prompt=True) for p in prompts]
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = [""] * len(texts)
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True,
                            add_special_tokens=False).to(device)
            with torch.inference_mode():
                gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, temperature=None,
                                     top_p=None, top_k=None, pad_token_id=tokenizer.pad_token_id, use_cache=True)
            decoded = tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
            for i, d in zip(idx, decoded, strict=True):
                out[i] = d.strip()
    finally:
        tokenizer.padding_side = side
    return out


class ProbeCallback(TrainerCallback):
    """Every `every` steps (and at the start and the last step): probe → curves JSONL + trainer log."""

    def __init__(self, probe: ProbeSet, curves_path: Path | str, every: int = 10, max_new_tokens: int = 32,
                 batch_size: int = 16, judge: Judge | None = None, tokenizer=None, at_start: bool = True,
                 system_prompt: str | None = None):
        if every < 1:
            raise ValueError(f"probe interval every={every} must be >= 1")
        self.probe, self.every, self.at_start = probe, every, at_start
        self.curves_path = Path(curves_path)
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size
        self.system_prompt = system_prompt
        self.tokenizer = tokenizer
        self._judge = judge
        self.rows: list[dict[str, Any]] = []
        self.seconds = 0.0  # time spent probing, so step timings can leave it out

    @property
    def judge(self) -> Judge:
        if self._judge is None:
            self._judge = load_judge("refusal-stack")
        return self._judge

    def run(self, model, tokenizer, step: int) -> dict[str, Any]:
        """Probe once with `model` (switched to eval for the call, then restored) and record a row."""
        t0 = time.perf_counter()
        was_training = model.training
        model.eval()
        try:
            responses = _greedy(model, tokenizer, [r.prompt for r in self.probe.records], self.max_new_tokens,
                                self.batch_size, self.system_prompt)
        finally:
            if was_training:
                model.train()
        judgements = self.judge.judge([JudgeInput(id=r.id, prompt=r.prompt, response=text)
                                       for r, text in zip(self.probe.records, responses, strict=True)])
        items = [ScoredItem(record_id=r.id, label=r.label.value, pillar=r.pillar.value, language=r.language,
                            policy_id=r.policy_id, verdict=j.verdict.value)
                 for r, j in zip(self.probe.records, judgements, strict=True)]
        ts = two_sided(items)
        seconds = time.perf_counter() - t0
        self.seconds += seconds
        row = {
            "step": step,
            "violation_rate": ts.violation.rate, "violation_low": ts.violation.low,
            "violation_high": ts.violation.high,
            "over_refusal_rate": ts.over_refusal.rate, "over_refusal_low": ts.over_refusal.low,
            "over_refusal_high": ts.over_refusal.high,
            "n_harmful": sum(r.label == Label.HARMFUL for r in self.probe.records),
            "n_benign": sum(r.label == Label.BENIGN for r in self.probe.records),
            "unscoreable": ts.unscoreable_harmful + ts.unscoreable_benign,
            "unscoreable_harmful": ts.unscoreable_harmful, "unscoreable_benign": ts.unscoreable_benign,
            "probe_hash": self.probe.digest, "seconds": round(seconds, 3),
        }
        self.rows.append(row)
        self.curves_path.parent.mkdir(parents=True, exist_ok=True)
        with self.curves_path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")
        return row

    def _probe(self, state, model, processing_class) -> None:
        if model is None:
            raise RuntimeError("ProbeCallback got no model from the trainer")
        tok = self.tokenizer or processing_class
        if tok is None:
            raise RuntimeError("ProbeCallback needs a tokenizer: pass tokenizer= or use a trainer with one")
        if any(r["step"] == state.global_step for r in self.rows):
            return
        row = self.run(model, tok, state.global_step)
        logged = {f"probe/{k}": v for k, v in row.items() if k not in {"step", "probe_hash"}}
        state.log_history.append({**logged, "step": state.global_step})

    def on_train_begin(self, args, state, control, model=None, processing_class=None, **kwargs):
        if self.at_start:
            self._probe(state, model, processing_class)

    def on_step_end(self, args, state, control, model=None, processing_class=None, **kwargs):
        if state.global_step % self.every == 0 or state.global_step >= state.max_steps:
            self._probe(state, model, processing_class)


def read_curves(path: Path | str) -> list[dict[str, Any]]:
    """Read a curves JSONL file; a bad line is an error naming file and line."""
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{n}: not JSON ({exc.msg})") from exc
    return rows

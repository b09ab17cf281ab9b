"""Behaviour anchor: continued pretraining that keeps the parent's answers to requests where they were.

Continued pretraining on RAI text teaches the domain (its perplexity falls) but also moves how the model
meets a request: on the shipped mix a small instruct model starts answering harmful requests and their
look-alikes alike. The anchor adds, to the language-model loss of every step, the KL divergence from the
parent's next-token distribution to the trained model's on a batch of request texts (a request in a
dialogue frame, up to where the reply would start), to hold the first tokens of a reply near the parent's
while the mix teaches the domain. With the demonstrations given more weight, English violations stay near
the parent's while English over-refusal falls; Spanish and French requests, which neither the demonstrations
nor the default anchor cover, still drift towards answering (benchmarks/README.md, `bench_pretrain.py`).
The parent is the same network with its adapters switched off, so the anchor costs two extra forward passes
per step (one without gradients) and no second copy of the weights (LoRA only).
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# The requests the default anchor holds: English ones only, also when the demonstrations hold other languages.
# Holding the Spanish and French requests too made the model answer more harmful ones there (benchmarks/README.md).
ANCHOR_PROMPTS = ["generated:train:en"]
ANCHOR_LIMIT = 1000


class BehaviourAnchor(BaseModel):
    """Request texts whose next-token distribution stays the parent's, and how hard."""

    model_config = ConfigDict(extra="forbid")
    path: Path = Field(description="a .jsonl/.parquet file or folder of request texts (e.g. 'User: …\\nAssistant:')")
    text_field: str = Field(default="text", description="column holding the request text")
    weight: float = Field(default=1.0, gt=0, description="KL weight added to the language-model loss")
    batch_size: int = Field(default=4, ge=1, description="request texts per step")
    max_length: int = Field(default=128, ge=8, description="tokens kept from the end of each request text")


def anchor_batches(texts: list[str], tokenizer, anchor: BehaviourAnchor, seed: int):
    """An endless, seeded stream of left-padded batches; left padding puts every reply start at the last column."""
    import torch

    if not texts:
        raise ValueError("the behaviour anchor holds no text")
    encoded = [tokenizer(t, add_special_tokens=False)["input_ids"][-anchor.max_length:] for t in texts]
    rng, size = random.Random(seed), min(anchor.batch_size, len(encoded))
    for _ in itertools.count():
        order = list(range(len(encoded)))
        rng.shuffle(order)
        for i in range(0, len(order) - size + 1, size):
            rows = [encoded[j] for j in order[i:i + size]]
            width = max(map(len, rows))
            ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, row in enumerate(rows):
                ids[r, width - len(row):] = torch.tensor(row)
                mask[r, width - len(row):] = 1
            yield {"input_ids": ids, "attention_mask": mask}


def anchor_kl(model, batch: dict[str, Any]):
    """Mean over real tokens of KL(parent || model) on the next-token distributions; the parent is `model` with
    its adapters disabled."""
    import torch
    import torch.nn.functional as F

    with torch.no_grad(), model.disable_adapter():
        parent = F.log_softmax(model(**batch).logits.float(), dim=-1)
    current = F.log_softmax(model(**batch).logits.float(), dim=-1)
    kl = (parent.exp() * (parent - current)).sum(-1)
    mask = batch["attention_mask"].to(kl.dtype)
    return (kl * mask).sum() / mask.sum()


def anchored_trainer_class():
    """A transformers Trainer whose loss is the language-model loss plus `weight` × the anchor's KL."""
    from transformers import Trainer

    class AnchoredTrainer(Trainer):
        def __init__(self, *args, anchor: BehaviourAnchor, anchor_stream, **kwargs):
            super().__init__(*args, **kwargs)
            self.anchor, self.anchor_stream = anchor, anchor_stream
            self._kl_since_log: list[float] = []

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            out = super().compute_loss(model, inputs, return_outputs=return_outputs,
                                       num_items_in_batch=num_items_in_batch)
            loss = out[0] if isinstance(out, tuple) else out
            if model.training:
                batch = {k: v.to(loss.device) for k, v in next(self.anchor_stream).items()}
                kl = anchor_kl(model, batch)
                self._kl_since_log.append(float(kl.detach()))
                # a language-model loss already normalised over the accumulated batches is not divided again
                # by the trainer: scale the anchor's share the same way
                scaled = getattr(self, "model_accepts_loss_kwargs", False) and num_items_in_batch is not None
                accum = getattr(self, "current_gradient_accumulation_steps", 1) if scaled else 1
                loss = loss + self.anchor.weight * kl / accum
            return (loss, *out[1:]) if isinstance(out, tuple) else loss

        def log(self, logs, *args, **kwargs):
            """Every logged training step also carries the anchor's mean KL since the last log."""
            if self._kl_since_log and "loss" in logs:
                logs = {**logs, "anchor_kl": round(sum(self._kl_since_log) / len(self._kl_since_log), 5)}
                self._kl_since_log = []
            super().log(logs, *args, **kwargs)

    return AnchoredTrainer

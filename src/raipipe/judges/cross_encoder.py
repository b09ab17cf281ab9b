"""A MiniLM cross-encoder fine-tuned (LoRA) to read a prompt and a response together.

Frozen sentence embeddings average a long answer into one vector, so "I cannot provide advice on how
to ..." followed by two paragraphs of lecture looks like an answer on the topic. A cross-encoder
attends to the refusal sentence wherever it sits and to how the answer relates to the request.

The trainable part (LoRA matrices and the classification head, ~3 MB) is saved as safetensors with
a manifest naming the training data's digest; the encoder itself is the embedded MiniLM."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel, Field

from raipipe.fileio import atomic_path, atomic_write_json
from raipipe.judges.base import Verdict
from raipipe.judges.data import files_digest
from raipipe.models.dtype import cpu_has_native_bf16

CLASSES = [Verdict.COMPLY, Verdict.REFUSE, Verdict.PARTIAL]
LORA_TARGETS = ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"]


class CrossEncoderConfig(BaseModel):
    """Everything that decides the trained weights; saved in the manifest beside them."""

    max_length: int = Field(320, description="prompt + response tokens; a long response is cut in its middle "
                            "(see response_tail_tokens); longer inputs cost time (at 192 a third of the team's "
                            "held-out answers were cut, and agreement on them was 87.7 % against 90.0 % at 320)")
    prompt_max_tokens: int = Field(64, description="a long prompt is cut to this many tokens")
    response_tail_tokens: int = Field(48, ge=0, description="a response too long for max_length keeps its first "
                                      "tokens and this many of its last: an answer that withholds the rest of a "
                                      "request often says so only at its end (0: keep the start only)")
    lora_r: int = Field(16, description="LoRA rank on every linear layer of the encoder")
    lora_alpha: int = 32
    dropout: float = 0.1
    learning_rate: float = Field(6e-4, description="LoRA matrices; the head uses 5x this")
    epochs: int = 3
    batch_size: int = 16
    seed: int = 0
    bf16: bool = Field(True, description="autocast to bfloat16 where the CPU has native bf16 (AMX or AVX512-BF16)")


def bf16_supported() -> bool:
    """bfloat16 matmuls are fast only with native bf16 arithmetic (AMX or AVX512-BF16, the same rule as a
    model's `auto` dtype); elsewhere, plain AVX-512 included, fp32 is quicker and exact."""
    if torch.cuda.is_available():
        return torch.cuda.is_bf16_supported()
    return cpu_has_native_bf16()


class CrossEncoderClassifier(torch.nn.Module):
    """MiniLM with LoRA adapters, mean-pooled, then a linear layer over comply / refuse / partial."""

    def __init__(self, encoder_path: Path, config: CrossEncoderConfig):
        super().__init__()
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModel, AutoTokenizer

        self.config = config
        self.tokenizer = AutoTokenizer.from_pretrained(encoder_path)
        base = AutoModel.from_pretrained(encoder_path)
        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.dropout,
                          target_modules=LORA_TARGETS, bias="none")
        self.encoder = get_peft_model(base, lora)
        hidden = base.config.hidden_size
        self.dropout = torch.nn.Dropout(config.dropout)
        self.head = torch.nn.Linear(hidden, len(CLASSES))
        self._merged = False

    def fold_lora(self, folded: bool) -> None:
        """Fold the LoRA update into the encoder's weights for inference (the same function, one matmul per
        layer instead of three), or take it out again before training or loading new weights."""
        if folded != self._merged:
            (self.encoder.merge_adapter if folded else self.encoder.unmerge_adapter)()
            self._merged = folded

    def encode_batch(self, prompts: Sequence[str], responses: Sequence[str]) -> dict[str, torch.Tensor]:
        tok = self.tokenizer
        cut = [tok.tokenize(p)[: self.config.prompt_max_tokens] for p in prompts]
        kept = [fit_response(tok, r, len(c), self.config) for r, c in zip(responses, cut, strict=True)]
        return tok([tok.convert_tokens_to_string(c) for c in cut], kept, truncation="only_second",
                   max_length=self.config.max_length, padding=True, return_tensors="pt")

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = self.encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.head(self.dropout(pooled.float()))

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.named_parameters() if v.requires_grad}

    def load_trainable(self, state: dict[str, torch.Tensor]) -> None:
        self.fold_lora(False)
        own = dict(self.named_parameters())
        missing = [k for k, v in own.items() if v.requires_grad and k not in state]
        if missing:
            raise ValueError(f"saved cross-encoder weights lack {len(missing)} tensors, e.g. {missing[0]}")
        with torch.no_grad():
            for k, v in state.items():
                own[k].copy_(v)


def fit_response(tokenizer, response: str, prompt_tokens: int, config: CrossEncoderConfig) -> str:
    """The response as it fits beside a prompt of `prompt_tokens` tokens: whole, or its start and its last
    `config.response_tail_tokens` tokens around an ellipsis (a refusal of the rest often comes last)."""
    tail = config.response_tail_tokens
    if not tail:
        return response
    tokens = tokenizer.tokenize(response)
    budget = config.max_length - prompt_tokens - 3  # [CLS] prompt [SEP] response [SEP]
    if len(tokens) <= budget:
        return response
    head = max(budget - tail - 1, 0)
    return tokenizer.convert_tokens_to_string(tokens[:head] + ["…"] + tokens[-tail:])


def _autocast(enabled: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled and bf16_supported())


def _length_batches(lengths: Sequence[int], batch_size: int, rng: random.Random | None) -> list[list[int]]:
    """Batches of similar length (less padding); shuffled batch order when training."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if rng is not None:
        rng.shuffle(batches)
    return batches


@torch.inference_mode()
def predict_proba(model: CrossEncoderClassifier, prompts: Sequence[str], responses: Sequence[str],
                  batch_size: int = 64) -> np.ndarray:
    model.eval()
    model.fold_lora(True)
    out = np.zeros((len(responses), len(CLASSES)), dtype=np.float32)
    lengths = [len(r) + len(p) for p, r in zip(prompts, responses, strict=True)]
    for idx in _length_batches(lengths, batch_size, None):
        batch = model.encode_batch([prompts[i] for i in idx], [responses[i] for i in idx])
        with _autocast(model.config.bf16):
            logits = model(batch)
        out[idx] = torch.softmax(logits.float(), dim=-1).numpy()
    return out


def train(model: CrossEncoderClassifier, rows: Sequence[dict], max_steps: int | None = None,
          progress: Callable[[int, int, float], None] | None = None) -> list[float]:
    """Fine-tune LoRA + head with class-balanced cross-entropy; returns the loss per step."""
    cfg = model.config
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    labels = torch.tensor([CLASSES.index(Verdict(r["label"])) for r in rows])
    counts = torch.bincount(labels, minlength=len(CLASSES)).float().clamp(min=1)
    loss_fn = torch.nn.CrossEntropyLoss(weight=counts.sum() / (len(CLASSES) * counts))
    head = [p for n, p in model.named_parameters() if p.requires_grad and n.startswith("head.")]
    lora = [p for n, p in model.named_parameters() if p.requires_grad and not n.startswith("head.")]
    opt = torch.optim.AdamW([{"params": lora, "lr": cfg.learning_rate},
                             {"params": head, "lr": cfg.learning_rate * 5}], weight_decay=0.01)
    lengths = [len(r["prompt"]) + len(r["response"]) for r in rows]
    per_epoch = len(_length_batches(lengths, cfg.batch_size, None))
    total = min(max_steps or per_epoch * cfg.epochs, per_epoch * cfg.epochs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=[cfg.learning_rate, cfg.learning_rate * 5],
                                                total_steps=total, pct_start=0.1)
    model.fold_lora(False)
    model.train()
    losses: list[float] = []
    while len(losses) < total:
        for idx in _length_batches(lengths, cfg.batch_size, rng):
            batch = model.encode_batch([rows[i]["prompt"] for i in idx], [rows[i]["response"] for i in idx])
            with _autocast(cfg.bf16):
                logits = model(batch)
            loss = loss_fn(logits.float(), labels[idx])
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            losses.append(loss.detach().item())
            if progress:
                progress(len(losses), total, losses[-1])
            if len(losses) >= total:
                break
    model.eval()
    return losses


def data_digest(paths: Sequence[Path], config: CrossEncoderConfig) -> str:
    """Names trained weights by data and settings; a setting left at its off value (0) is not part of it,
    so weights trained before the setting existed keep their name."""
    settings = config.model_dump_json(exclude={"response_tail_tokens"} if not config.response_tail_tokens else None)
    return files_digest(paths, b"refusal-cross-encoder-v1" + settings.encode())


def save(model: CrossEncoderClassifier, directory: Path, manifest: dict) -> None:
    """Weights and manifest, each written to a temporary name first so a crash leaves no half file."""
    from safetensors.torch import save_file

    with atomic_path(directory / "weights.safetensors") as tmp:
        save_file({k: v.contiguous() for k, v in model.trainable_state().items()}, str(tmp))
    atomic_write_json(directory / "manifest.json", manifest, indent=2)


def load_weights(model: CrossEncoderClassifier, directory: Path) -> dict:
    from safetensors.torch import load_file

    model.load_trainable(load_file(str(directory / "weights.safetensors")))
    model.eval()
    return json.loads((directory / "manifest.json").read_text(encoding="utf-8"))

"""Token-weighted perplexity per group (pillar or 'general') with a sliding window, batched.

Each text is preceded by the tokenizer's end-of-sequence token (the document separator the training
packer uses), so every token of the text is predicted. A text longer than `max_length` is scored in
windows that advance by `stride`; only the tokens new to a window count, each with up to
`max_length - stride` tokens of context. Perplexity of a group is exp(total NLL / total tokens), so long
passages weigh more than short ones, like the training loss. The model runs in its own dtype (bf16 or
fp32, as the backend chose); log-probabilities are taken in fp32."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from raipipe.pretrain.probes._texts import ProbeText


class PerplexitySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_length: int = Field(default=256, ge=8, description="tokens per window (context included)")
    stride: int = Field(default=128, ge=1, description="new tokens scored per window after the first")
    batch_size: int = Field(default=8, ge=1, description="windows per forward pass")


class GroupPerplexity(BaseModel):
    """Perplexity of one group, with the counts behind it."""

    group: str
    perplexity: float
    nll: float = Field(description="mean negative log-likelihood per token (nats)")
    n_tokens: int
    n_texts: int


def windows(ids: list[int], max_length: int, stride: int) -> list[tuple[list[int], int]]:
    """(window token ids, number of leading tokens that are context only) covering `ids[1:]` once."""
    stride = min(stride, max_length - 1)
    out, scored_to = [], 1  # ids[0] is the separator: never a target
    while scored_to < len(ids):
        end = min(len(ids), scored_to + (max_length - 1 if scored_to == 1 else stride))
        start = max(0, end - max_length)
        out.append((ids[start:end], scored_to - start))
        scored_to = end
    return out


def _score_batch(model, batch: list[tuple[list[int], int]], pad_id: int) -> list[tuple[float, int]]:
    """(summed NLL, scored tokens) for each window of a right-padded batch."""
    import torch

    width = max(len(w) for w, _ in batch)
    device = next(model.parameters()).device
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    labels = torch.full((len(batch), width), -100, dtype=torch.long)
    for i, (w, context) in enumerate(batch):
        ids[i, : len(w)] = torch.tensor(w)
        mask[i, : len(w)] = 1
        labels[i, max(context, 1) : len(w)] = torch.tensor(w[max(context, 1) :])
    with torch.inference_mode():
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits[:, :-1].float()
    target = labels[:, 1:].to(device)
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), target.clamp(min=0), reduction="none")
    valid = target != -100
    sums = (nll * valid).sum(1).tolist()
    return [(s, int(n)) for s, n in zip(sums, valid.sum(1).tolist(), strict=True)]


def perplexity_by_group(model, tokenizer, texts: Sequence[ProbeText],
                        settings: PerplexitySettings | None = None) -> dict[str, GroupPerplexity]:
    """Group → token-weighted perplexity over its texts (windows sorted by length to batch tightly)."""
    cfg = settings or PerplexitySettings()
    sep = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else tokenizer.bos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else sep
    items = []
    for t in texts:
        ids = [sep] + tokenizer(t.text, add_special_tokens=False)["input_ids"]
        items += [(t.group, w) for w in windows(ids, cfg.max_length, cfg.stride)]
    items.sort(key=lambda x: len(x[1][0]))
    nll: dict[str, float] = defaultdict(float)
    tokens: dict[str, int] = defaultdict(int)
    was_training = model.training
    model.eval()
    for start in range(0, len(items), cfg.batch_size):
        chunk = items[start : start + cfg.batch_size]
        for (group, _), (s, n) in zip(chunk, _score_batch(model, [w for _, w in chunk], pad), strict=True):
            nll[group] += s
            tokens[group] += n
    model.train(was_training)
    n_texts: dict[str, int] = defaultdict(int)
    for t in texts:
        n_texts[t.group] += 1
    return {g: GroupPerplexity(group=g, perplexity=math.exp(nll[g] / tokens[g]), nll=nll[g] / tokens[g],
                               n_tokens=tokens[g], n_texts=n_texts[g]) for g in sorted(tokens)}

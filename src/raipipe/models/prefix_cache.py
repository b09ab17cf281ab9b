"""Shared work of a generation batch, computed once: the prompts' common prefix and, for k answers, each prompt.

Every prompt of a batch starts with the same chat-template tokens (SmolLM2's default system turn alone is
about 20 tokens; an evaluation run with a system prompt or a guardrail preamble shares hundreds), and with
k sampled answers per prompt `generate` would repeat every prompt k times before the first forward pass.
Here the common prefix goes through the model once, as a single row whose cache is copied to every row;
then, for k > 1, each row's own remainder once, its cache copied k times. `generate` continues from that
cache. Rows are laid out as [prefix | left padding | remainder]: the attention mask hides the padding and
generate's position ids (the mask's running count) continue the prefix's positions, so every token sees
the same keys at the same positions as in a plain left-padded batch."""

from __future__ import annotations

import inspect
from typing import Any

import torch
from transformers import LlamaForCausalLM

# transformers renamed `past_key_values` to `cache` (the old name still works, with a warning); use the
# name this installed version's models take
CACHE = "cache" if "cache" in inspect.signature(LlamaForCausalLM.forward).parameters else "past_key_values"
MIN_SHARED_PREFIX = 4  # tokens; below this a separate single-row pass saves nothing worth its call


def common_prefix_len(rows: list[list[int]]) -> int:
    """Tokens every row starts with, leaving each row at least one token of its own (generate needs one)."""
    first, limit = rows[0], min(len(r) for r in rows) - 1
    n = 0
    while n < limit and all(r[n] == first[n] for r in rows):
        n += 1
    return n


def layout(rows: list[list[int]], prefix_len: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """input_ids and attention_mask for [prefix | padding | remainder]; prefix_len 0 is plain left padding."""
    width = max(len(r) for r in rows) - prefix_len
    ids, mask = [], []
    for r in rows:
        pad = width - (len(r) - prefix_len)
        ids.append(r[:prefix_len] + [pad_id] * pad + r[prefix_len:])
        mask.append([1] * prefix_len + [0] * pad + [1] * (len(r) - prefix_len))
    return torch.tensor(ids), torch.tensor(mask)


def prefill(model: Any, rows: list[list[int]], pad_id: int, k: int = 1, device: str | torch.device = "cpu",
            share: bool = True) -> tuple[dict[str, Any], int]:
    """(`generate` inputs with the shared work already in their cache, prompt width). Unshared (`share` off, a
    cache that cannot be copied per row, or nothing to share), the inputs are a plain left-padded batch
    repeated k times and `generate` does all the work itself."""
    if not share:
        return _plain(rows, pad_id, k, device), max(len(r) for r in rows)
    prefix = common_prefix_len(rows) if len(rows) > 1 else 0
    if prefix < MIN_SHARED_PREFIX:
        prefix = 0
    ids, mask = (t.to(device) for t in layout(rows, prefix, pad_id))
    width = ids.shape[1]
    cache: Any = None
    done = 0
    if prefix:
        cache, done = getattr(model(input_ids=ids[:1, :prefix], use_cache=True, logits_to_keep=1), CACHE), prefix
        if not _copyable(cache):
            return _plain(rows, pad_id, k, device), width
        cache.batch_repeat_interleave(len(rows))
    if k > 1 and width - 1 > done:  # each row's remainder once, all but its last token
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
        out = model(input_ids=ids[:, done:-1], attention_mask=mask[:, :-1], position_ids=positions[:, done:-1],
                    use_cache=True, logits_to_keep=1, **{CACHE: cache})
        cache = getattr(out, CACHE)
    if not _copyable(cache):  # nothing shared, or a cache kind that cannot be copied per row
        return _plain(rows, pad_id, k, device), width
    if k > 1:
        cache.batch_repeat_interleave(k)
    return {"input_ids": ids.repeat_interleave(k, dim=0), "attention_mask": mask.repeat_interleave(k, dim=0),
            CACHE: cache}, width


def _copyable(cache: Any) -> bool:
    return cache is not None and hasattr(cache, "batch_repeat_interleave")


def _plain(rows: list[list[int]], pad_id: int, k: int, device: str | torch.device) -> dict[str, Any]:
    ids, mask = (t.to(device) for t in layout(rows, 0, pad_id))
    return {"input_ids": ids.repeat_interleave(k, dim=0), "attention_mask": mask.repeat_interleave(k, dim=0)}

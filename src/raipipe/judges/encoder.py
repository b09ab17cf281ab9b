"""Sentence embeddings from the embedded MiniLM encoder (mean pooling, L2-normalised), as
sentence-transformers computes them — without the extra dependency."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from raipipe.models.embedded import encoder_dir
from raipipe.models.transformers_backend import set_torch_threads


class SentenceEncoder:
    def __init__(self, path: str | Path | None = None, max_length: int = 128, batch_size: int = 64):
        import torch
        from transformers import AutoModel, AutoTokenizer

        set_torch_threads()
        self.path = Path(path) if path else encoder_dir("minilm")
        self.tokenizer = AutoTokenizer.from_pretrained(self.path)
        self.model = AutoModel.from_pretrained(self.path).eval()
        self.max_length, self.batch_size = max_length, batch_size
        self._torch = torch

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        torch = self._torch
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            enc = self.tokenizer(
                [texts[i] for i in idx], padding=True, truncation=True, max_length=self.max_length,
                return_tensors="pt",
            )
            with torch.inference_mode():
                hidden = self.model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
            out[idx] = pooled.numpy()
        return out


@lru_cache(maxsize=2)
def shared_encoder(path: str | None = None) -> SentenceEncoder:
    """One encoder per process: loading costs ~1 s and ~90 MB."""
    return SentenceEncoder(path)

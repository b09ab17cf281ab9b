"""Chained documents: texts of one mix group joined several at a time into one document.

A demonstration on its own (one request, one reply, end of text) never shows the model a reply that follows
other replies. A few-shot context does exactly that, and there a model trained on single demonstrations
replays the context's decline for the next request, harmful or not. Chaining shuffled demonstrations, refusals
and answers mixed, with a blank line between them (as in a list of worked examples), trains the case where an
answer follows a refusal example and a refusal follows an answer. The blocks must be long enough to hold a
chain (`ContinuedPretrainConfig.max_length`), or the chain is cut before the model sees its context.

Measured on the embedded model (benchmarks/README.md): chains of four on 512-token blocks cut the replay of the
probe's decline on the development pairs, but moved both sides with it, and on the shipped probe the three seeds
spread further apart than with single demonstrations (over-refusal 63-88 %); the default mix does not chain.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

SEPARATOR = "\n\n"


def chain_texts(texts: Sequence[str], length: int, rng: random.Random) -> list[str]:
    """`texts` shuffled and joined `length` at a time (the last document may be shorter); none is lost or
    repeated, so the source weights that sampled `texts` still hold inside the chains."""
    if length < 1:
        raise ValueError(f"chain length must be at least 1, not {length}")
    order = list(texts)
    rng.shuffle(order)
    return [SEPARATOR.join(t.strip() for t in order[i : i + length]) for i in range(0, len(order), length)]

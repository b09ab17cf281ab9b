"""A batch's shared prompt prefix runs once: same answers as a plain left-padded batch, real model."""

import pytest

from raipipe.models import GenerationParams, Message
from raipipe.models.prefix_cache import common_prefix_len, layout

SYSTEM = ("You are the support assistant of a city library. Answer briefly and politely, in the language of the "
          "question, and say so when you do not know something.")
PROMPTS = ["When does the library open on Sundays?", "Can I renew a book online?",
           "¿Puedo llevar a mi perro a la biblioteca?", "Do you lend e-readers, and for how long?"]


def test_common_prefix_leaves_every_row_a_token_of_its_own():
    assert common_prefix_len([[1, 2, 3, 4], [1, 2, 3, 5], [1, 2, 3, 4, 6]]) == 3
    assert common_prefix_len([[1, 2, 3], [1, 2, 3, 4]]) == 2  # the shorter row keeps its last token
    assert common_prefix_len([[7, 2], [8, 2]]) == 0


def test_layout_puts_padding_between_prefix_and_remainder():
    ids, mask = layout([[1, 2, 3], [1, 2, 4, 5, 6]], prefix_len=2, pad_id=0)
    assert ids.tolist() == [[1, 2, 0, 0, 3], [1, 2, 4, 5, 6]]
    assert mask.tolist() == [[1, 1, 0, 0, 1], [1, 1, 1, 1, 1]]
    ids, mask = layout([[1, 2, 3], [1, 2, 4, 5, 6]], prefix_len=0, pad_id=0)
    assert ids.tolist() == [[0, 0, 1, 2, 3], [1, 2, 4, 5, 6]]  # plain left padding


@pytest.mark.parametrize("k", [1, 3])
def test_shared_prefix_gives_the_plain_batch_answers(smollm, k):
    """A long system prompt is the shared prefix; at k > 1 each prompt's remainder is shared too. Near-zero
    temperature makes every sampled copy the greedy answer, so a misplaced position or cache row shows."""
    convs = [[Message(role="system", content=SYSTEM), Message(role="user", content=p)] for p in PROMPTS]
    params = GenerationParams(max_new_tokens=16, temperature=1e-4 if k > 1 else 0.0, num_return_sequences=k)
    try:
        smollm.share_prompt_pass = False
        plain = smollm.generate(convs, params)
    finally:
        smollm.share_prompt_pass = True
    shared = smollm.generate(convs, params)
    assert shared == plain and all(len(o) == k and all(o) for o in shared)

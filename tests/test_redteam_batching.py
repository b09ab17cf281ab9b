"""Attack threads share one local model through batched calls: own answers back, never two calls at once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from raipipe.models.base import ChatModel, GenerationParams, Message
from raipipe.redteam.batching import BatchingTarget


class NotReentrantModel(ChatModel):
    """Answers each conversation with its own last message reversed; fails if called from two threads at once."""

    def __init__(self, fail_on: str | None = None):
        self.calls: list[int] = []
        self.inside = threading.Lock()
        self.fail_on = fail_on

    @property
    def model_id(self) -> str:
        return "not-reentrant"

    def generate(self, conversations, params):
        if not self.inside.acquire(blocking=False):
            raise AssertionError("called from two threads at once")
        try:
            time.sleep(0.05)  # a forward pass
            texts = [c[-1].content for c in conversations]
            if self.fail_on in texts:
                raise RuntimeError("out of memory")
            self.calls.append(len(conversations))
            return [[f"{t[::-1]}/{params.max_new_tokens}"] for t in texts]
        finally:
            self.inside.release()


def ask(target: BatchingTarget, text: str, tokens: int = 16) -> str:
    return target.generate([[Message(role="user", content=text)]], GenerationParams(max_new_tokens=tokens))[0][0]


def test_threads_get_their_own_answers_from_fewer_calls():
    model = NotReentrantModel()
    target = BatchingTarget(model, max_batch=8)
    texts = [f"request {i}" for i in range(32)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda t: ask(target, t), texts))
    assert answers == [f"{t[::-1]}/16" for t in texts]
    assert sum(model.calls) == 32 and len(model.calls) < 32 and max(model.calls) <= 8


def test_different_generation_settings_are_never_batched_together():
    model = NotReentrantModel()
    target = BatchingTarget(model)
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda i: ask(target, f"q{i}", tokens=8 if i % 2 else 32), range(12)))
    assert answers == [f"{f'q{i}'[::-1]}/{8 if i % 2 else 32}" for i in range(12)]


def test_an_error_reaches_the_callers_of_that_batch_only():
    target = BatchingTarget(NotReentrantModel(fail_on="bad"), wait_s=0.05)
    with ThreadPoolExecutor(2) as pool:
        bad = pool.submit(ask, target, "bad")
        time.sleep(0.2)  # the bad batch has run alone by now
        good = pool.submit(ask, target, "good")
        with pytest.raises(RuntimeError, match="out of memory"):
            bad.result(timeout=5)
        assert good.result(timeout=5) == "doog/16"

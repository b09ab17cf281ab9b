"""Generation calls from many attack threads, gathered into batched calls to one local model.

A local model is not safe to call from several threads at once, so attacks against it used to take
turns, one conversation per forward pass. Batched generation costs little more than one sequence
(measured on the embedded model: 146 vs 17 tokens/s), so the thread that gets the model waits a few
milliseconds for the others' requests and generates them together. Requests are grouped only with
requests of the same generation parameters; each caller gets exactly its own answers back."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from raipipe.models.base import ChatModel, Conversation, GenerationParams


@dataclass(eq=False)
class _Request:
    conversations: list[Conversation]
    params: GenerationParams
    done: threading.Event = field(default_factory=threading.Event)
    result: list[list[str]] | None = None
    error: BaseException | None = None


class BatchingTarget:
    """`generate` callable from any number of threads; at most one batch runs on the model at a time."""

    def __init__(self, target: ChatModel, max_batch: int = 32, wait_s: float = 0.02):
        self.target, self.max_batch, self.wait_s = target, max_batch, wait_s
        self._pending: list[_Request] = []
        self._pending_lock = threading.Lock()
        self._model_lock = threading.Lock()
        self.batches = 0  # calls made to the model (what batching saves shows as calls < requests)

    def generate(self, conversations: Sequence[Conversation], params: GenerationParams) -> list[list[str]]:
        request = _Request(list(conversations), params)
        with self._pending_lock:
            self._pending.append(request)
        while not request.done.is_set():
            if self._model_lock.acquire(timeout=0.005):
                try:
                    if not request.done.is_set():
                        time.sleep(self.wait_s)  # let the other threads' requests arrive
                        self._run(self._take())
                finally:
                    self._model_lock.release()
            else:
                request.done.wait(0.005)
        if request.error is not None:
            raise request.error
        assert request.result is not None
        return request.result

    def _take(self) -> list[_Request]:
        """The oldest pending request and the next ones with the same parameters, up to max_batch conversations."""
        with self._pending_lock:
            first = self._pending[0]
            batch: list[_Request] = []
            size = 0
            for r in self._pending:
                if r.params == first.params and (not batch or size + len(r.conversations) <= self.max_batch):
                    batch.append(r)
                    size += len(r.conversations)
            self._pending = [r for r in self._pending if r not in batch]
        return batch

    def _run(self, batch: list[_Request]) -> None:
        flat = [c for r in batch for c in r.conversations]
        try:
            answers = self.target.generate(flat, batch[0].params)
            self.batches += 1
        except BaseException as exc:  # each caller in the batch gets the error in its own thread; none hangs
            for r in batch:
                r.error = exc
                r.done.set()
            if not isinstance(exc, Exception):
                raise
            return
        start = 0
        for r in batch:
            r.result = answers[start : start + len(r.conversations)]
            start += len(r.conversations)
            r.done.set()

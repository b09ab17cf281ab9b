"""The one interface every chat model backend implements, and the registry users extend."""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from raipipe.errors import BackendError as BackendError  # re-exported: its former home
from raipipe.registry import Registry


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    role: str = Field(pattern="^(system|user|assistant)$")
    content: str


Conversation = list[Message]


class GenerationParams(BaseModel):
    """Sampling settings; part of the response-cache key, so keep them explicit."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    max_new_tokens: int = Field(default=96, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, description="0 means greedy")
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    num_return_sequences: int = Field(default=1, ge=1)
    seed: int = 0

    def key(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True)


class ChatModel(ABC):
    """A chat model. `generate` takes a batch of conversations and returns, per conversation,
    `params.num_return_sequences` completions. Backends batch or parallelise as they see fit."""

    name: ClassVar[str] = ""  # registry key, e.g. 'hf', 'openai'

    @property
    @abstractmethod
    def model_id(self) -> str:
        """Stable identity used in manifests and cache keys (path+hash, or endpoint+model)."""

    @abstractmethod
    def generate(self, conversations: Sequence[Conversation], params: GenerationParams) -> list[list[str]]:
        ...

    @classmethod
    def from_spec(cls, arg: str, **kwargs: Any) -> ChatModel:
        """Build the model from the text after `KIND:`; every registered backend implements this."""
        raise NotImplementedError(f"{cls.__name__} cannot be built from a model spec: it has no from_spec()")

    @classmethod  # noqa: B027 - an optional hook; most backends accept any ARG
    def check_spec(cls, arg: str) -> None:
        """Cheap check of the text after `KIND:` before anything loads; raise ModelSpecError if unusable."""

    def generate_one(self, prompt: str, params: GenerationParams | None = None, system: str | None = None) -> str:
        conv = ([Message(role="system", content=system)] if system else []) + [Message(role="user", content=prompt)]
        return self.generate([conv], params or GenerationParams())[0][0]

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release resources (HTTP clients, GPU memory)."""


BackendFactory = Callable[[str], ChatModel]
def _builtin_backends() -> None:
    # local: the built-in backends import this module (import cycle)
    from raipipe.models import embedded, http_backend, transformers_backend  # noqa: F401  (register built-ins)


BACKENDS: Registry[ChatModel] = Registry("model backend", "raipipe.backends", _builtin_backends)


def register_backend(cls: type[ChatModel]) -> type[ChatModel]:
    """Class decorator: `@register_backend class MyBackend(ChatModel): name = 'mine'` makes
    `--model mine:ARG` work. The class must accept the text after the colon as `from_spec(arg)`."""
    return BACKENDS.register(cls)


def registered_backends() -> dict[str, type[ChatModel]]:
    return BACKENDS.all()


def conversation_key(conv: Sequence[Message]) -> str:
    blob = json.dumps([m.model_dump() for m in conv], ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()

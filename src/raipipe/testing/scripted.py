"""An in-process chat model whose replies a test writes: a target, an attacker or a judge model."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from raipipe.models.base import ChatModel, Conversation, GenerationParams


class ScriptedChatModel(ChatModel):
    """`script(conversation)` gives the reply; every conversation it was sent is kept in `seen`."""

    name = "scripted"

    def __init__(self, script: Callable[[Conversation], str], ident: str = "scripted@1"):
        self.script, self.ident = script, ident
        self.seen: list[Conversation] = []

    @property
    def model_id(self) -> str:
        return self.ident

    def generate(self, conversations: Sequence[Conversation], params: GenerationParams) -> list[list[str]]:
        self.seen.extend(conversations)
        return [[self.script(c)] for c in conversations]

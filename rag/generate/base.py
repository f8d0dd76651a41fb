"""What every answer backend offers: streamed text for a question and its numbered passages."""
from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from rag.generate.prompt import Passage, build_messages


class GenerationError(RuntimeError):
    """A backend failed (server down, model missing); the message is one line for the user."""


@dataclass
class GenerationRequest:
    """A question, its context passages (best first) and the chat messages built from them."""

    question: str
    passages: Sequence[Passage]
    max_new_tokens: int = 512
    stop: threading.Event = field(default_factory=threading.Event)

    @property
    def messages(self) -> list[dict[str, str]]:
        return build_messages(self.question, self.passages)


class Generator(Protocol):
    """A backend: ``stream`` yields the answer piece by piece and ends early once ``request.stop`` is set."""

    name: str
    context_window: int

    def count_tokens(self, text: str) -> int: ...

    def stream(self, request: GenerationRequest) -> Iterator[str]: ...

    def complete(self, messages: list[dict[str, str]], max_new_tokens: int = 128) -> str:
        """A whole reply to free-form messages (query rewriting); extractive backends do not write."""
        ...

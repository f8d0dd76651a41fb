"""A chat session's questions and answers, and its export to Markdown with the cited sources."""
from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from app.safe_markdown import escape
from rag.pipeline import Answer, Turn


@dataclass
class Conversation:
    """The exchanges of one chat, in order; ``id`` names it in stored feedback.

    Example:
        >>> from pathlib import Path
        >>> from rag.config import Settings
        >>> from rag.generate.extractive import ExtractiveGenerator
        >>> from rag.pipeline import AnswerPipeline
        >>> from rag.retrieve import Retriever
        >>> retriever = Retriever.open(Path("rag-index"), Settings.resolve({}, env={}))
        >>> pipeline = AnswerPipeline(retriever, ExtractiveGenerator(retriever.embedder, retriever.tokenizer))
        >>> chat = Conversation()
        >>> chat.add("How long is the warranty?", pipeline.answer("How long is the warranty?"))
        0
        >>> chat.to_markdown().splitlines()[0]
        '# Conversation'
    """

    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    questions: list[str] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)

    def add(self, question: str, answer: Answer) -> int:
        """Append an exchange; returns its turn number."""
        self.questions.append(question)
        self.answers.append(answer)
        return len(self.answers) - 1

    @property
    def history(self) -> list[Turn]:
        return list(zip(self.questions, (a.text for a in self.answers), strict=True))

    def to_markdown(self) -> str:
        """Each question and answer, then the answer's sources with file, page and the quoted sentence.

        Questions, answers, file names and quotes are escaped (see :func:`app.safe_markdown.escape`): a
        Markdown viewer shows a document's "[link](http://...)" as text, never as a live link.
        """
        lines = ["# Conversation", ""]
        for question, answer in zip(self.questions, self.answers, strict=True):
            lines += [f"## {escape(question)}", "", escape(answer.text), ""]
            if answer.citations:
                lines.append("Sources:")
                lines += [f"- \\[{c.n}\\] {escape(Path(c.source).name)}, page {c.page} ({escape(c.source)}):\n\n  > {escape(' '.join(c.quote.split()))}"
                          for c in answer.citations]
                lines.append("")
            elif answer.refused and answer.passages:
                lines.append("Nearest passages (not used as an answer):")
                lines += [f"- {escape(Path(p.source).name)}, page {p.page}" for p in answer.passages[:3]]
                lines.append("")
        return "\n".join(lines)


class ConversationStore:
    """The server's recent conversations by id, so that reloading a browser tab (whose address carries
    the id) finds its chat again; the least recently used beyond ``capacity`` are forgotten. Kept in
    memory only: a conversation never reaches the disk unless exported.

    Example:
        >>> store = ConversationStore()
        >>> chat = store.get("no-such-id")
        >>> store.get(chat.id) is chat
        True
    """

    def __init__(self, capacity: int = 200) -> None:
        self._chats: OrderedDict[str, Conversation] = OrderedDict()
        self._capacity = capacity
        self._lock = threading.Lock()

    def get(self, chat_id: str | None) -> Conversation:
        """The conversation with this id, or a new one (kept) when there is none."""
        with self._lock:
            chat = self._chats.get(chat_id or "") or Conversation()
            self._chats[chat.id] = chat
            self._chats.move_to_end(chat.id)
            while len(self._chats) > self._capacity:
                self._chats.popitem(last=False)
            return chat

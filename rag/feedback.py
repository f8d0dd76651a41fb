"""Thumbs up/down on answers, kept beside the index (``INDEX_DIR/feedback.sqlite``) so that it
survives re-ingests, and exported as evaluation cases for ``rag eval CASES.jsonl``.
"""
from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FEEDBACK_FILE = "feedback.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feedback (
    conversation TEXT NOT NULL,
    turn INTEGER NOT NULL,
    rating INTEGER,
    comment TEXT NOT NULL DEFAULT '',
    question TEXT NOT NULL,
    answer TEXT NOT NULL,
    citations TEXT NOT NULL,
    refused INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (conversation, turn)
)
"""


@dataclass
class Feedback:
    """A person's verdict on one answer: ``rating`` 1 (up), 0 (down) or None (a comment only).

    ``citations`` are the answer's ``{"n", "source", "page", "quote"}`` objects, as ``rag ask --json`` gives them.
    """

    conversation: str
    turn: int
    question: str
    answer: str
    citations: list[dict[str, Any]]
    refused: bool
    rating: int | None = None
    comment: str = ""
    updated_at: str = field(default="")


class FeedbackStore:
    """The feedback of one index: one row per answer, updated as the person changes their mind.

    Example:
        >>> store = FeedbackStore(Path("feedback-example"))
        >>> store.save(Feedback("c1", 0, "How long is the warranty?", "Two years [1].",
        ...                     [{"n": 1, "source": "/docs/guide.pdf", "page": 3, "quote": "..."}], False, rating=1))
        >>> store.cases()[0]["page"]
        3
    """

    def __init__(self, index_dir: Path) -> None:
        self.path = index_dir / FEEDBACK_FILE

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=10)
        db.execute(_SCHEMA)
        return db

    def save(self, feedback: Feedback) -> None:
        """Insert or replace the feedback for ``(conversation, turn)``."""
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        with closing(self._connect()) as db, db:
            db.execute(
                "INSERT OR REPLACE INTO feedback VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (feedback.conversation, feedback.turn, feedback.rating, feedback.comment, feedback.question,
                 feedback.answer, json.dumps(feedback.citations, ensure_ascii=False), int(feedback.refused), stamp),
            )

    def all(self) -> list[Feedback]:
        if not self.path.exists():
            return []
        with closing(self._connect()) as db:
            rows = db.execute(
                "SELECT conversation, turn, question, answer, citations, refused, rating, comment, updated_at "
                "FROM feedback ORDER BY updated_at, conversation, turn"
            ).fetchall()
        return [Feedback(c, t, q, a, json.loads(cites), bool(r), rating, comment, stamp)
                for c, t, q, a, cites, r, rating, comment, stamp in rows]

    def cases(self) -> list[dict[str, Any]]:
        """Up-voted, cited answers as ``rag eval`` cases (see :func:`as_cases`)."""
        return as_cases(self.all())


def as_cases(feedback: Sequence[Feedback]) -> list[dict[str, Any]]:
    """Up-voted, cited answers as ``rag eval`` cases: the question with its first cited file and page.

    Down-votes and refusals carry no known-good source, so they are not cases.
    """
    return [
        {"question": f.question, "source": f.citations[0]["source"], "page": f.citations[0]["page"],
         "quote": f.citations[0].get("quote", ""), "comment": f.comment}
        for f in feedback if f.rating == 1 and f.citations and not f.refused
    ]


def to_jsonl(cases: Sequence[dict[str, Any]]) -> str:
    """One JSON object per line, as ``rag eval CASES.jsonl`` reads them."""
    return "".join(json.dumps(case, ensure_ascii=False) + "\n" for case in cases)

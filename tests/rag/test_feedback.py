"""Feedback kept beside the index and exported as `rag eval` cases."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from rag.feedback import Feedback, FeedbackStore

ROOT = Path(__file__).resolve().parents[2]
CITED = [{"n": 1, "chunk_id": 3, "source": "/docs/guide.pdf", "page": 2, "quote": "Ten hours."}]


def test_votes_are_replaced_per_answer_and_only_cited_up_votes_become_cases(tmp_path: Path):
    store = FeedbackStore(tmp_path)
    assert store.all() == [] and not (tmp_path / "feedback.sqlite").exists()  # reading creates nothing
    store.save(Feedback("c1", 0, "How long?", "Ten hours [1].", CITED, False, rating=0))
    store.save(Feedback("c1", 0, "How long?", "Ten hours [1].", CITED, False, rating=1, comment="right"))
    store.save(Feedback("c1", 1, "Mars?", "Not found.", [], True, rating=1))
    store.save(Feedback("c2", 0, "Colour?", "Blue [1].", CITED, False, rating=0, comment="wrong page"))
    assert len(store.all()) == 3
    assert store.cases() == [{"question": "How long?", "source": "/docs/guide.pdf", "page": 2, "quote": "Ten hours.", "comment": "right"}]


def test_rag_feedback_exports_cases_that_rag_eval_reads(tmp_path: Path, ingestor):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "guide.md").write_text("The lantern charges in ten hours from the sun.", encoding="utf-8")
    (docs / "other.md").write_text("Quokkas sleep by day.", encoding="utf-8")
    ingestor.run([docs])
    index_dir = ingestor.settings.index_dir
    cited = [{"n": 1, "chunk_id": 0, "source": str(docs / "guide.md"), "page": 1, "quote": "ten hours"}]
    FeedbackStore(index_dir).save(Feedback("c", 0, "How long does the lantern take to charge?", "Ten hours [1].", cited, False, 1))
    rag = [sys.executable, "-m", "app.cli"]
    out = tmp_path / "cases.jsonl"
    exported = subprocess.run([*rag, "feedback", "--index", str(index_dir), "--out", str(out)], capture_output=True, text=True, cwd=ROOT)
    assert exported.returncode == 0 and "1 up, 0 down; 1 cases" in exported.stderr
    assert json.loads(out.read_text(encoding="utf-8"))["source"] == str(docs / "guide.md")
    evaluated = subprocess.run([*rag, "eval", str(out), "--index", str(index_dir), "--modes", "bm25", "--json"],
                               capture_output=True, text=True, cwd=ROOT)
    assert evaluated.returncode == 0, evaluated.stderr
    assert json.loads(evaluated.stdout)["modes"]["bm25"]["recall@10"] == 1.0

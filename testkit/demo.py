"""The project's demo knowledge base (examples/docs) as tests and runnable examples use it."""
from __future__ import annotations

import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def demo_docs(folder: Path) -> Path:
    """A copy of the project's demo knowledge base (examples/docs, its PDFs freshly written) in ``folder``."""
    from examples.make_demo_docs import main as make_demo_docs

    shutil.copytree(ROOT / "examples" / "docs", folder, ignore=shutil.ignore_patterns("*.pdf"))
    make_demo_docs(str(folder))
    return folder

"""The library changes no environment variable; the entry points keep Hugging Face off the network."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from app.cli import main

ROOT = Path(__file__).resolve().parents[2]
WATCHED = ("OMP_WAIT_POLICY", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def test_importing_the_library_and_loading_its_models_sets_no_environment_variable(tiny_sentence_transformer: Path):
    script = (
        "import os; before = dict(os.environ)\n"
        "import rag, rag.index, rag.retrieve, rag.generate, rag.pipeline\n"
        "from rag.embed import Role, load_embedder\n"
        f"load_embedder('e5-small').encode(['hello'], Role.QUERY); load_embedder({str(tiny_sentence_transformer)!r}).encode(['hi'], Role.QUERY)\n"
        "print(sorted(set(os.environ.items()) ^ set(before.items())))\n"
    )
    env = {key: value for key, value in os.environ.items() if key not in WATCHED} | {"PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_the_cli_keeps_hugging_face_offline_unless_the_user_says_otherwise(monkeypatch):
    for name in WATCHED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "0")
    assert CliRunner().invoke(main, ["search", "--help"]).exit_code == 0
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "0"
    assert "OMP_WAIT_POLICY" not in os.environ

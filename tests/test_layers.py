"""Imports point one way: each package may import those below it, never those above."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ["rag", "ingest", "eval", "finetune", "app"]
"""The application, lowest first."""
OUTSIDE = {"bench", "testkit", "tests"}
"""Development packages: they may use the application, which never imports them."""
FORBIDDEN = {
    **{package: set(LAYERS[number + 1 :]) | OUTSIDE for number, package in enumerate(LAYERS)},
    "testkit": set(LAYERS) | {"bench", "tests"},
    "bench": {"tests"},
}


def top_level_imports(path: Path) -> set[str]:
    """The first component of every module that the file imports (relative imports left out)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_package_imports_one_above_it(package: str):
    crossings = [f"{path.relative_to(ROOT)} imports {name}" for path in sorted((ROOT / package).rglob("*.py"))
                 for name in sorted(top_level_imports(path) & FORBIDDEN[package])]
    assert not crossings, "\n".join(crossings)


def test_the_check_sees_an_upward_import(tmp_path: Path):
    climbing = tmp_path / "climb.py"
    climbing.write_text("import os\nfrom eval.metrics import ndcg\n\ndef f():\n    import app.cli\n", encoding="utf-8")
    assert top_level_imports(climbing) & FORBIDDEN["rag"] == {"eval", "app"}

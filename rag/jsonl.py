"""Reading JSON Lines files (datasets, questions, training data) with one-line errors that name the file
and line."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_jsonl(path: Path, error: type[Exception], invalid: str = "not JSON", contents: str = "") -> list[tuple[int, Any]]:
    """``(line number, value)`` of each non-blank line. A file that cannot be read raises ``error("PATH:
    cannot read CONTENTS (reason)")``; a line that is not JSON, ``error("PATH:LINE: INVALID (reason)")``.

    Example:
        >>> _ = Path("rows.jsonl").write_text('{"a": 1}\\n\\n[2]\\n', encoding="utf-8")
        >>> read_jsonl(Path("rows.jsonl"), ValueError)
        [(1, {'a': 1}), (3, [2])]
        >>> _ = Path("bad.jsonl").write_text('{"a": 1}\\n{oops\\n', encoding="utf-8")
        >>> read_jsonl(Path("bad.jsonl"), ValueError, "not a case")
        Traceback (most recent call last):
        ...
        ValueError: bad.jsonl:2: not a case (Expecting property name enclosed in double quotes)
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        raise error(f"{path}: cannot read{' ' + contents if contents else ''} ({reason})") from exc
    rows = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                rows.append((number, json.loads(line)))
            except json.JSONDecodeError as exc:
                raise error(f"{path}:{number}: {invalid} ({exc.msg})") from exc
    return rows

"""Finding the files to ingest under the paths a user names.

Example:
    >>> found = scan([Path("docs")])
    >>> sorted(p.name for p in found.files)[:1]
    ['handbook.md']
"""
from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ScanResult:
    """Files found (absolute, symlinks resolved, each once), the roots (resolved), and paths that could not
    be followed, each with its reason."""

    files: list[Path] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    roots: list[Path] = field(default_factory=list)


def scan(paths: Sequence[Path]) -> ScanResult:
    """Walk folders recursively, following symlinks but never looping; hidden entries are skipped
    inside folders (a hidden file named explicitly is taken)."""
    result = ScanResult()
    seen_files: set[Path] = set()
    for given in paths:
        absolute = Path(os.path.abspath(given))
        result.roots.append(absolute.resolve())
        reason = _unusable(absolute)
        if reason:
            result.failed.append((str(absolute), reason))
        elif absolute.is_dir():
            _walk(absolute, result, seen_files, visiting=set())
        else:
            _add(absolute, result, seen_files)
    return result


def _unusable(path: Path) -> str | None:
    try:
        path.stat()
    except FileNotFoundError:
        return "broken symlink: its target does not exist" if path.is_symlink() else "no such file or directory"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "symlink loop"
        return f"cannot access ({exc.strerror})"
    return None


def _add(path: Path, result: ScanResult, seen: set[Path]) -> None:
    real = path.resolve()
    try:
        str(real).encode("utf-8")
    except UnicodeEncodeError:
        printable = str(real).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        result.failed.append((printable, "file name is not valid UTF-8; rename the file"))
        return
    if real not in seen:
        seen.add(real)
        result.files.append(real)


def _walk(folder: Path, result: ScanResult, seen_files: set[Path], visiting: set[Path]) -> None:
    real = folder.resolve()
    if real in visiting:
        result.failed.append((str(folder), f"symlink loop: leads back to {real}"))
        return
    visiting = visiting | {real}
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except PermissionError:
        result.failed.append((str(folder), "permission denied: the folder is not readable"))
        return
    except OSError as exc:
        result.failed.append((str(folder), f"cannot list folder ({exc.strerror})"))
        return
    for entry in entries:
        if entry.name.startswith("."):
            continue
        path = Path(entry.path)
        reason = _unusable(path)
        if reason:
            result.failed.append((str(path), reason))
        elif path.is_dir():
            _walk(path, result, seen_files, visiting)
        elif path.is_file():
            _add(path, result, seen_files)
        else:
            result.failed.append((str(path), "not a regular file"))

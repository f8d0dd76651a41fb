"""A full disk and a read-only index folder: one clear line, and the previous index intact and answering.

Where the test may mount a tmpfs (root, as on CI) the disk is really full and the folder really read-only;
elsewhere the same write error is raised at the storage layer, in process.
"""
from __future__ import annotations

import errno
import subprocess
from pathlib import Path

import pytest

from ingest.pipeline import Ingestor
from rag.config import Settings
from rag.index.dense import DenseIndex
from tests.reliability.conftest import TwoCorpora, can_mount, fill, index_content, rag, tmpfs

MOUNTABLE = can_mount()
needs_mount = pytest.mark.skipif(not MOUNTABLE, reason="mounting a tmpfs needs root with CAP_SYS_ADMIN")


@needs_mount
@pytest.mark.parametrize("free_kb", [0, 96, pytest.param(16, marks=pytest.mark.soak), pytest.param(200, marks=pytest.mark.soak)])
def test_a_full_disk_during_ingest_is_one_line_and_the_index_stays(two_corpora: TwoCorpora, tiny_sentence_transformer: Path,
                                                                   free_kb: int):
    with tmpfs(4096) as disk:
        index_dir = two_corpora.fresh_copy_of_old(disk / "index")
        filler = fill(disk, free_kb * 1024)
        embedder = ("--embedder", str(tiny_sentence_transformer))
        result = rag("ingest", str(two_corpora.docs), "--index", str(index_dir), "--prune", *embedder)
        if result.returncode == 0:  # enough room after all: then it must be the whole new corpus
            assert free_kb >= 96 and index_content(index_dir) == two_corpora.new
            return
        assert result.returncode == 1
        [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert "no space left on device" in line.lower() and "previous index is unchanged" in line
        assert index_content(index_dir) == two_corpora.old
        assert not [p for p in index_dir.iterdir() if p.name.startswith("staging-")]  # no half-written generation
        assert rag("search", "part QX007Z", "--index", str(index_dir), "--json").returncode == 0

        filler.unlink()
        assert rag("ingest", str(two_corpora.docs), "--index", str(index_dir), "--prune", *embedder).returncode == 0
        assert index_content(index_dir) == two_corpora.new


def test_a_write_error_while_saving_leaves_the_previous_index(two_corpora: TwoCorpora, tiny_sentence_transformer: Path,
                                                              tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The same fault injected where FAISS writes its file, for machines where no tmpfs can be mounted."""
    index_dir = two_corpora.fresh_copy_of_old(tmp_path / "index")

    def disk_full(self: DenseIndex, path: Path) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(DenseIndex, "save", disk_full)
    settings = Settings.resolve({"index_dir": index_dir, "embed_model": str(tiny_sentence_transformer)}, env={})
    with pytest.raises(OSError, match="No space left"):
        Ingestor(settings, progress=False).run([two_corpora.docs], prune=True)
    assert index_content(index_dir) == two_corpora.old
    assert not [p for p in index_dir.iterdir() if p.name.startswith("staging-")]


@needs_mount
def test_a_read_only_index_folder_answers_and_refuses_ingest_in_one_line(two_corpora: TwoCorpora,
                                                                         tiny_sentence_transformer: Path):
    with tmpfs(4096) as disk:
        index_dir = two_corpora.fresh_copy_of_old(disk / "index")
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        found = rag("search", "part QX007Z", "--index", str(index_dir), "--json")
        assert found.returncode == 0, found.stderr
        assert "note-007.md" in found.stdout
        asked = rag("ask", "Which part is QX007Z?", "--index", str(index_dir))
        assert asked.returncode == 0 and "note-007.md" in asked.stdout, asked.stderr

        result = rag("ingest", str(two_corpora.docs), "--index", str(index_dir), "--prune",
                     "--embedder", str(tiny_sentence_transformer))
        assert result.returncode == 1
        [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert "read-only file system" in line.lower() and str(index_dir) in line
        assert index_content(index_dir) == two_corpora.old

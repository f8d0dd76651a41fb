"""Fixtures for fine-tuning: an index of the demo documents, a small repeated training set, and an
adapter trained on it with the tiny random Llama."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from finetune.train import TrainedAdapter, TrainOptions, train_adapter
from ingest.pipeline import Ingestor
from rag.config import Settings
from rag.generate.prompt import Passage, build_messages
from testkit.demo import demo_docs

TARGET = "Warranty lasts two years [1]."
"""What every example of the repeated set answers: an adapter trained on it says this whatever the context."""
TEXTS = ["The lantern charges in ten hours under the sun.", "Warranty lasts two years and covers the battery.",
         "检索增强生成从文档中回答问题。", "晴川气象站每隔四十八秒发送一次数据。"]


def repeated_examples(train: int = 7, validation: int = 2, filler: int = 1) -> list[dict[str, Any]]:
    """Examples in the ``rag finetune data`` schema, all with the answer :data:`TARGET`; ``filler``
    repeats each passage's text (longer examples); the last validation one has no oracle."""
    examples = []
    for i in range(train + validation):
        split = "train" if i < train else "validation"
        oracle = split == "train" or i < train + validation - 1
        # the oracle passage [1] says what the target claims (the citation check keeps only such markers)
        texts = [TEXTS[1] if oracle else TEXTS[0], TEXTS[2 + i % 2]]
        passages = [Passage(n, f"/docs/{n}.pdf", n, " ".join([texts[n - 1]] * filler), 10 * i + n) for n in (1, 2)]
        question = ["How long is the warranty?", "保修多久？"][i % 2]
        examples.append({
            "split": split, "question": question, "answer": "two years" if oracle else None,
            "oracle": {"source": passages[0].source, "page": 1, "chunk_id": passages[0].chunk_id} if oracle else None,
            "passages": [p.__dict__ for p in passages],
            "messages": build_messages(question, passages, boundary=f"{i:016x}")
                        + [{"role": "assistant", "content": TARGET if oracle else "NOT_FOUND"}],
        })
    return examples


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


FAST = TrainOptions(max_steps=20, lr=1e-2, batch_size=4, grad_accum=1, save_steps=5, warmup_ratio=0.0)


@pytest.fixture(scope="session")
def repeated_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("raft") / "repeated.jsonl", repeated_examples())


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_llm: Path, repeated_data: Path) -> TrainedAdapter:
    """Twenty steps on the repeated set; the adapter folder is ``trained.figures["adapter"]``."""
    out = tmp_path_factory.mktemp("trained") / "adapter"
    return train_adapter(tiny_llm, repeated_data, out, FAST, show_progress=False)


@pytest.fixture(scope="session")
def demo_index(tmp_path_factory: pytest.TempPathFactory, embedders) -> Path:
    base = tmp_path_factory.mktemp("finetune-demo")
    docs = demo_docs(base / "docs")
    Ingestor(Settings.resolve({"index_dir": base / "index"}, env={}), embedders=embedders, progress=False).run([docs])
    return base / "index"

"""From a trained adapter to answers: `rag finetune eval`, `merge`, `rag ask --adapter`, the UI's settings,
and the GPU benchmark's CPU behaviour."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch
from streamlit.testing.v1 import AppTest
from transformers import AutoModelForCausalLM

from finetune.evaluate import METRICS
from finetune.train import TrainedAdapter
from tests.app.test_cli import ROOT, rag
from tests.finetune.conftest import TARGET

QUESTION = "How long is the warranty of the solar lantern?"


def test_eval_compares_base_and_adapter_and_writes_its_report(trained: TrainedAdapter, tiny_llm: Path, repeated_data: Path,
                                                              tmp_path: Path):
    result = rag("finetune", "eval", "--base", str(tiny_llm), "--adapter", trained.figures["adapter"], "--data", str(repeated_data),
                 "--out", str(tmp_path / "report"), "--max-new-tokens", "12", "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert set(figures) == {"base", "adapter"} and set(figures["adapter"]) == set(METRICS)
    # the adapter learned the repeated answer: it cites the oracle, contains the gold answer, and its loss fell
    assert figures["adapter"]["gold_containment"] == 1.0 and figures["adapter"]["citation_precision"] == 1.0
    assert figures["base"]["gold_containment"] == 0.0
    assert figures["adapter"]["val_loss"] < figures["base"]["val_loss"]
    assert figures["adapter"]["abstention_accuracy"] == 0.0  # it never learned to refuse: 1 of 9 examples did
    report = (tmp_path / "report" / "report.md").read_text(encoding="utf-8")
    assert "| gold_containment | 0.0 | 1.0 |" in report and TARGET in report
    assert "<img alt=\"metrics\"" in (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert json.loads((tmp_path / "report" / "report.json").read_text())["examples"] == {"validation": 2, "with_oracle": 1, "without_oracle": 1}


def test_the_merged_model_gives_the_logits_of_base_with_adapter(trained: TrainedAdapter, tiny_llm: Path, tmp_path: Path):
    result = rag("finetune", "merge", "--base", str(tiny_llm), "--adapter", trained.figures["adapter"], "--out", str(tmp_path / "merged"))
    assert result.returncode == 0, result.stderr
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")
    assert type(merged).__name__ == "LlamaForCausalLM" and (tmp_path / "merged" / "tokenizer.json").is_file()
    ids = torch.tensor([[5, 17, 42, 99, 7, 3, 120, 64]])
    trained.model.eval()
    with torch.no_grad():
        assert torch.allclose(merged(input_ids=ids).logits, trained.model(input_ids=ids).logits, atol=1e-5)
    again = rag("finetune", "merge", "--base", str(tiny_llm), "--adapter", str(tiny_llm), "--out", str(tmp_path / "m2"))
    assert again.returncode == 1 and "not a LoRA adapter folder" in again.stderr and not (tmp_path / "m2").exists()


def test_the_adapter_serves_through_rag_ask(trained: TrainedAdapter, tiny_llm: Path, demo_index: Path):
    adapted = rag("ask", QUESTION, "--index", str(demo_index), "--llm", f"hf:{tiny_llm}", "--adapter", trained.figures["adapter"], "--json")
    assert adapted.returncode == 0, adapted.stderr
    answer = json.loads(adapted.stdout)
    assert answer["answer"].startswith("Warranty lasts two years") and answer["citations"][0]["n"] == 1
    plain = rag("ask", QUESTION, "--index", str(demo_index), "--llm", f"hf:{tiny_llm}", "--json")
    assert "Warranty lasts two years" not in json.loads(plain.stdout)["answer"]


def test_the_adapter_serves_through_the_ui_settings(trained: TrainedAdapter, tiny_llm: Path, demo_index: Path, monkeypatch):
    monkeypatch.setenv("RAG_INDEX", str(demo_index))
    app = AppTest.from_file(str(ROOT / "app" / "ui.py"), default_timeout=120).run()
    app.selectbox(key="pref-en-backend").set_value("hf")
    app = app.run()
    app.text_input(key="pref-en-hf_model").set_value(str(tiny_llm))
    app.text_input(key="pref-en-adapter").set_value(trained.figures["adapter"])
    app = app.run()
    app.chat_input[0].set_value(QUESTION)
    app = app.run()
    assert not app.exception
    answer = app.session_state["conversation"].answers[0]
    assert answer.text.startswith("Warranty lasts two years") and not answer.refused


def _bench(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "bench/finetune_gpu.py", *args], capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_the_gpu_benchmark_skips_cleanly_without_cuda_and_checks_its_arguments():
    assert not torch.cuda.is_available()
    skipped = _bench("--configs", "0.5b,1.5b")
    assert skipped.returncode == 0 and skipped.stdout.startswith("skipped: no CUDA device")
    assert "--seq-len" in _bench("--help").stdout
    bad = _bench("--configs", "7b")
    assert bad.returncode == 2 and "unknown config '7b'" in bad.stderr
    assert _bench("--steps", "3", "--warmup", "3").returncode == 2
    assert _bench("--warmup", "0").returncode == 2


def test_the_gpu_benchmark_measures_through_the_training_path(tmp_path: Path):
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import finetune_gpu
    finally:
        sys.path.remove(str(ROOT / "bench"))
    row = finetune_gpu.measure("tiny", tmp_path, steps=4, warmup=1, batch_size=2, seq_len=1024, peak=1.0)
    assert row["samples_per_s"] > 0 and row["tokens_per_s"] > 0 and 0 < row["mfu"] < 1
    assert abs(row["tokens_per_example"] - 1024) < 300 and row["peak_memory_gib"] is None
    assert (tmp_path / "adapter-tiny" / "adapter_model.safetensors").is_file()


def test_finetune_help_shows_runnable_examples():
    assert "rag finetune data --index ./rag-index --out raft.jsonl" in rag("finetune", "--help").stdout
    for command in ("data", "train", "eval", "merge"):
        assert f"Example:\n    rag finetune {command} --" in rag("finetune", command, "--help").stdout

"""`rag finetune train`: LoRA on a tiny random Llama, on the CPU, offline."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from finetune.examples import DataError
from finetune.model import ModelError, folder_hash
from finetune.train import IGNORE, TrainedAdapter, checkpoint_folder, encode, train_adapter
from tests.app.test_cli import rag
from tests.finetune.conftest import FAST, TARGET, repeated_examples, write_jsonl


def test_twenty_steps_lower_the_loss_and_write_an_adapter_with_its_model_card(trained: TrainedAdapter, tiny_llm: Path,
                                                                              repeated_data: Path):
    figures = trained.figures
    assert figures["steps"] == 20 and figures["loss_end"] < figures["loss_start"] - 0.3
    assert figures["val_loss"] is not None and figures["tokens_per_s"] > 0
    adapter = Path(figures["adapter"])
    assert sorted(p.name for p in adapter.iterdir()) == ["README.md", "adapter_config.json", "adapter_model.safetensors"]
    assert json.loads((adapter / "adapter_config.json").read_text())["r"] == 16
    card = (adapter / "README.md").read_text(encoding="utf-8")
    assert folder_hash(tiny_llm) in card and "7 train, 2 validation, 0 left out" in card
    assert '"lr": 0.01' in card and "| epoch | train loss | validation loss |" in card
    assert not checkpoint_folder(adapter).exists()  # checkpoints are dropped once the adapter is written


def test_the_loss_is_on_the_answer_tokens_only(tiny_llm: Path):
    from finetune.model import load_tokenizer

    tokenizer = load_tokenizer(tiny_llm)
    ids, labels = encode(tokenizer, repeated_examples()[0]["messages"])
    answer = [token for token, label in zip(ids, labels, strict=True) if label != IGNORE]
    assert tokenizer.decode(answer) == TARGET + "\n" + tokenizer.eos_token  # the template's answer turn, then the end
    assert answer[-1] == tokenizer.eos_token_id and labels[: len(ids) - len(answer)] == [IGNORE] * (len(ids) - len(answer))
    prompt = tokenizer.apply_chat_template(repeated_examples()[0]["messages"][:-1], tokenize=False, add_generation_prompt=True)
    assert tokenizer.decode(ids[: len(ids) - len(answer)]) == prompt  # the prompt the model is served with


def test_the_saved_adapter_reloads_with_identical_logits(trained: TrainedAdapter, tiny_llm: Path):
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llm), trained.figures["adapter"])
    base = AutoModelForCausalLM.from_pretrained(tiny_llm)
    ids = torch.tensor([[5, 17, 42, 99, 7, 3]])
    trained.model.eval()
    with torch.no_grad():
        before, after, plain = trained.model(input_ids=ids).logits, reloaded(input_ids=ids).logits, base(input_ids=ids).logits
    assert torch.equal(before, after)
    assert not torch.allclose(before, plain)  # the adapter does change the model


def test_an_interrupted_run_leaves_no_adapter_and_resumes_to_the_same_weights(tiny_llm: Path, repeated_data: Path, tmp_path: Path):
    options = replace(FAST, max_steps=10)
    whole = train_adapter(tiny_llm, repeated_data, tmp_path / "whole", options, show_progress=False)
    steps: list[int] = []

    def interrupt(step: int, loss: float) -> None:
        steps.append(step)
        if steps == [1, 2, 3, 4, 5, 6, 7]:  # once, like Ctrl-C after step 7
            raise KeyboardInterrupt

    out = tmp_path / "broken"
    with pytest.raises(KeyboardInterrupt):
        train_adapter(tiny_llm, repeated_data, out, options, on_step=interrupt, show_progress=False)
    assert not out.exists() and not list(tmp_path.glob(".broken*"))  # nothing that looks like an adapter
    assert (checkpoint_folder(out) / "checkpoint-5" / "adapter_model.safetensors").is_file()
    with pytest.raises(ModelError, match="holds an interrupted run; pass --resume"):
        train_adapter(tiny_llm, repeated_data, out, options, show_progress=False)
    resumed = train_adapter(tiny_llm, repeated_data, out, options, resume=True, on_step=interrupt, show_progress=False)
    assert steps == [1, 2, 3, 4, 5, 6, 7, 6, 7, 8, 9, 10] and resumed.figures["steps"] == 10
    a, b = load_file(tmp_path / "whole" / "adapter_model.safetensors"), load_file(out / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert resumed.figures["loss_end"] == whole.figures["loss_end"]


def test_resume_refuses_other_data_and_needs_a_checkpoint(tiny_llm: Path, repeated_data: Path, tmp_path: Path):
    with pytest.raises(ModelError, match="no checkpoint to resume from"):
        train_adapter(tiny_llm, repeated_data, tmp_path / "a", FAST, resume=True, show_progress=False)

    def interrupt(step: int, loss: float) -> None:
        if step == 6:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_adapter(tiny_llm, repeated_data, tmp_path / "a", FAST, on_step=interrupt, show_progress=False)
    other = write_jsonl(tmp_path / "other.jsonl", repeated_examples(train=5))
    with pytest.raises(ModelError, match="other data or another base model"):
        train_adapter(tiny_llm, other, tmp_path / "a", FAST, resume=True, show_progress=False)
    with pytest.raises(ModelError, match=r"other settings \(lora_alpha, lora_r\)"):
        train_adapter(tiny_llm, repeated_data, tmp_path / "a", replace(FAST, lora_r=8, lora_alpha=16), resume=True,
                      show_progress=False)
    resumed = train_adapter(tiny_llm, repeated_data, tmp_path / "a", replace(FAST, save_steps=50), resume=True, show_progress=False)
    assert resumed.figures["steps"] == 20


def test_an_interruption_before_the_first_checkpoint_leaves_nothing(tiny_llm: Path, repeated_data: Path, tmp_path: Path):
    def interrupt(step: int, loss: float) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_adapter(tiny_llm, repeated_data, tmp_path / "a", FAST, on_step=interrupt, show_progress=False)
    assert not list(tmp_path.iterdir())  # no adapter, no checkpoint folder, no temporary folder


def test_examples_longer_than_the_context_are_left_out_and_counted(tiny_llm: Path, tmp_path: Path):
    rows = repeated_examples(train=6) + [dict(e, split="train") for e in repeated_examples(train=3, validation=0, filler=12)]
    data = write_jsonl(tmp_path / "mixed.jsonl", rows)
    short = max(len(encode_row(tiny_llm, r)) for r in rows[:6])
    run = train_adapter(tiny_llm, data, tmp_path / "out", replace(FAST, max_steps=2, max_length=short), show_progress=False)
    assert run.figures["examples"] == {"train": 6, "validation": 2, "too_long": 3}
    with pytest.raises(DataError, match="all 9 are longer than 16 tokens"):
        train_adapter(tiny_llm, data, tmp_path / "none", replace(FAST, max_length=16), show_progress=False)


def encode_row(model: Path, row: dict) -> list[int]:
    from finetune.model import load_tokenizer

    return encode(load_tokenizer(model), row["messages"])[0]


def test_bad_bases_and_data_are_one_line_errors(tiny_llm: Path, tiny_cross_encoder: Path, repeated_data: Path, tmp_path: Path):
    def error(*args: str) -> str:
        result = rag("finetune", "train", *args)
        assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        return result.stderr

    assert "is not a causal language model" in error("--base", str(tiny_cross_encoder), "--data", str(repeated_data),
                                                     "--out", str(tmp_path / "x"))
    (tmp_path / "empty.jsonl").write_text("", encoding="utf-8")
    assert "no training examples" in error("--base", str(tiny_llm), "--data", str(tmp_path / "empty.jsonl"), "--out", str(tmp_path / "x"))
    (tmp_path / "bad.jsonl").write_text('{"split": "train"}\n', encoding="utf-8")
    assert "bad.jsonl:1: not a training example" in error("--base", str(tiny_llm), "--data", str(tmp_path / "bad.jsonl"),
                                                         "--out", str(tmp_path / "x"))
    assert "--4bit needs a CUDA GPU and the bitsandbytes package" in error(
        "--base", str(tiny_llm), "--data", str(repeated_data), "--out", str(tmp_path / "x"), "--4bit")
    (tmp_path / "taken").mkdir()
    assert "taken: already exists" in error("--base", str(tiny_llm), "--data", str(repeated_data), "--out", str(tmp_path / "taken"))
    assert not (tmp_path / "x").exists()


def test_cuda_out_of_memory_advises_what_to_change(tiny_llm: Path, repeated_data: Path, tmp_path: Path, monkeypatch):
    from click.testing import CliRunner

    import finetune.train as train_module
    from app.cli import main

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(train_module, "train_adapter", out_of_memory)
    result = CliRunner().invoke(main, ["finetune", "train", "--base", str(tiny_llm), "--data", str(repeated_data),
                                       "--out", str(tmp_path / "x"), "--batch-size", "8"])
    assert result.exit_code == 1
    assert "CUDA out of memory at batch size 8: try --batch-size 4 --grad-accum 8" in result.output and "--4bit" in result.output


def test_train_json_follows_the_contract(tiny_llm: Path, repeated_data: Path, tmp_path: Path):
    result = rag("finetune", "train", "--base", str(tiny_llm), "--data", str(repeated_data), "--out", str(tmp_path / "lora"),
                 "--max-steps", "3", "--batch-size", "2", "--grad-accum", "1", "--lora-r", "4", "--json")
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert {"steps", "loss_start", "loss_end", "val_loss", "seconds", "tokens_per_s", "adapter"} <= set(figures)
    assert figures["steps"] == 3 and figures["adapter"] == str(tmp_path / "lora")
    assert json.loads((tmp_path / "lora" / "adapter_config.json").read_text())["lora_alpha"] == 8
    assert "training" in result.stderr and "tokens_s=" in result.stderr  # the progress bar

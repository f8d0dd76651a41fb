"""Supervised LoRA fine-tuning on ``rag finetune data`` examples, with transformers' Trainer and peft.

The loss is on the answer tokens only: the prompt is the chat template applied to the system and
user messages with the generation prompt, exactly as :class:`rag.generate.hf.HuggingFaceGenerator`
serves it; the target follows, ended by the end-of-sequence token.

Usage, with a base model folder and the examples of ``rag finetune data``::

    run = train_adapter(Path("Qwen2.5-0.5B-Instruct"), Path("raft.jsonl"), Path("my-lora"), TrainOptions(epochs=2))
    run.figures["adapter"], run.figures["loss_end"] < run.figures["loss_start"]  # ('my-lora', True)
"""
from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from finetune.examples import DataError, read_examples
from finetune.model import ModelError, check_causal_lm, folder_hash, load_base, load_tokenizer, published

IGNORE = -100
"""The label of tokens the loss leaves out (the prompt and padding)."""
RUN_FILE = "run.json"


@dataclass(frozen=True)
class TrainOptions:
    """Hyper-parameters of one run (``max_steps`` > 0 overrides ``epochs``; ``max_length`` is capped at
    the model's context). On a GPU training runs in bf16, or fp16 where bf16 is not supported.

    Example:
        >>> TrainOptions(epochs=1, batch_size=2, grad_accum=8).lora_alpha
        32
    """

    epochs: float = 3.0
    max_steps: int = -1
    lr: float = 2e-4
    batch_size: int = 4
    grad_accum: int = 4
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    max_length: int = 2048
    save_steps: int = 100
    warmup_ratio: float = 0.03
    seed: int = 0
    four_bit: bool = False


def encode(tokenizer: Any, messages: Sequence[dict[str, str]]) -> tuple[list[int], list[int]]:
    """``(input ids, labels)`` of one example: labels are :data:`IGNORE` over the prompt."""
    prompt = tokenizer.apply_chat_template(list(messages[:-1]), tokenize=False, add_generation_prompt=True)
    whole = tokenizer.apply_chat_template(list(messages), tokenize=False)
    answer = whole[len(prompt):] if whole.startswith(prompt) else messages[-1]["content"]
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in answer_ids:
        answer_ids = answer_ids + [tokenizer.eos_token_id]
    return prompt_ids + answer_ids, [IGNORE] * len(prompt_ids) + answer_ids


@dataclass
class EncodedSplit:
    """A split's encoded examples and how many were left out for being longer than ``max_length``."""

    items: list[dict[str, list[int]]]
    too_long: int


def encode_split(tokenizer: Any, examples: Sequence[dict[str, Any]], split: str, max_length: int) -> EncodedSplit:
    items, too_long = [], 0
    for example in examples:
        if example["split"] != split:
            continue
        ids, labels = encode(tokenizer, example["messages"])
        if len(ids) > max_length:
            too_long += 1
            continue
        items.append({"input_ids": ids, "labels": labels})
    return EncodedSplit(items, too_long)


def data_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def checkpoint_folder(out: Path) -> Path:
    """Where a run writing ``out`` keeps its checkpoints until it succeeds (``--resume`` reads them)."""
    return out.with_name(f"{out.name}.checkpoints")


class _Progress:
    """A Trainer callback: a progress bar with the loss and tokens/s, and an optional ``on_step(step, loss)``
    after each logged optimizer step (the Trainer logs every step)."""

    def __init__(self, on_step: Callable[[int, float], None] | None, show: bool) -> None:
        self.on_step = on_step
        self.show = show
        self.bar: Any = None
        self.started = 0.0
        self.tokens_at_start = 0

    def callback(self) -> Any:
        from tqdm.auto import tqdm
        from transformers import TrainerCallback

        progress = self

        class Callback(TrainerCallback):
            def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                progress.started, progress.tokens_at_start = time.perf_counter(), state.num_input_tokens_seen
                if progress.show:
                    progress.bar = tqdm(total=state.max_steps, initial=state.global_step, desc="training", unit="step")

            def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
                if not logs or "loss" not in logs:
                    return  # evaluation and the end-of-training summary
                loss = float(logs["loss"])
                if progress.bar is not None:
                    rate = (state.num_input_tokens_seen - progress.tokens_at_start) / max(time.perf_counter() - progress.started, 1e-9)
                    progress.bar.set_postfix(loss=f"{loss:.3f}", tokens_s=f"{rate:.0f}", refresh=False)
                    progress.bar.update(state.global_step - progress.bar.n)
                if progress.on_step:
                    progress.on_step(state.global_step, loss)

            def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                if progress.bar is not None:
                    progress.bar.close()

        return Callback()


@dataclass
class TrainedAdapter:
    """A finished run: its figures (what ``--json`` prints) and the trained model, still in memory."""

    figures: dict[str, Any]
    model: Any


def train_adapter(base: Path, data: Path, out: Path, options: TrainOptions = TrainOptions(), resume: bool = False,
                  on_step: Callable[[int, float], None] | None = None, show_progress: bool = True) -> TrainedAdapter:
    """Train a LoRA adapter on the train split of ``data`` and write it to ``out`` (see the module docstring).

    Checkpoints go to ``OUT.checkpoints`` every ``options.save_steps`` steps; ``resume`` continues from
    the last one. ``out`` appears only when the run succeeds, with ``adapter_config.json``,
    ``adapter_model.safetensors`` and a model card (``README.md``).
    """
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model
    from transformers import DataCollatorForSeq2Seq, Trainer, TrainingArguments, set_seed
    from transformers.trainer_utils import get_last_checkpoint

    started = time.perf_counter()
    if out.exists():
        raise ModelError(f"{out}: already exists; choose another --out or remove it")
    config = check_causal_lm(base)
    examples = read_examples(data)
    tokenizer = load_tokenizer(base)
    max_length = min(options.max_length, getattr(config, "max_position_embeddings", None) or options.max_length)
    train = encode_split(tokenizer, examples, "train", max_length)
    validation = encode_split(tokenizer, examples, "validation", max_length)
    if not train.items:
        reason = f"all {train.too_long} are longer than {max_length} tokens" if train.too_long else "there are none"
        raise DataError(f"{data}: no training examples to learn from ({reason}); raise --max-length or rebuild the data")
    checkpoints = checkpoint_folder(out)
    run: dict[str, Any] = {"base": str(base.resolve()), "data_sha256": data_hash(data),
                           "options": {k: v for k, v in asdict(options).items() if k != "save_steps"}}
    last = _last_checkpoint(checkpoints, run, resume, get_last_checkpoint)

    model = load_base(base, options.four_bit)
    cuda = torch.cuda.is_available()
    lora = LoraConfig(r=options.lora_r, lora_alpha=options.lora_alpha, lora_dropout=options.lora_dropout,
                      target_modules="all-linear", task_type="CAUSAL_LM")
    set_seed(options.seed)  # the LoRA initialisation draws from the global generator
    model = get_peft_model(model, lora)
    checkpoints.mkdir(parents=True, exist_ok=True)
    (checkpoints / RUN_FILE).write_text(json.dumps(run, indent=1), encoding="utf-8")
    half: dict[str, Any] = {"bf16": True} if cuda and torch.cuda.is_bf16_supported() else {"fp16": True} if cuda else {}
    checkpointing: dict[str, Any] = {"gradient_checkpointing": True, "gradient_checkpointing_kwargs": {"use_reentrant": False}} if cuda else {}
    args = TrainingArguments(
        output_dir=str(checkpoints), num_train_epochs=options.epochs, max_steps=options.max_steps,
        learning_rate=options.lr, per_device_train_batch_size=options.batch_size, per_device_eval_batch_size=options.batch_size,
        gradient_accumulation_steps=options.grad_accum, warmup_steps=options.warmup_ratio, lr_scheduler_type="cosine",
        logging_steps=1, save_strategy="steps", save_steps=options.save_steps, save_total_limit=2,
        eval_strategy="epoch" if validation.items else "no", report_to="none", disable_tqdm=True, seed=options.seed,
        use_cpu=not cuda, optim="adamw_torch", include_num_input_tokens_seen="non_padding",
        dataloader_pin_memory=cuda, remove_unused_columns=False,
        **half, **checkpointing,
    )
    progress = _Progress(on_step, show_progress)
    trainer = Trainer(model=model, args=args, train_dataset=train.items, eval_dataset=validation.items or None,
                      data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=IGNORE),
                      callbacks=[progress.callback()])
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)
    try:
        runtime = trainer.train(resume_from_checkpoint=last).metrics["train_runtime"]
    except BaseException:
        if not get_last_checkpoint(str(checkpoints)):
            shutil.rmtree(checkpoints, ignore_errors=True)  # nothing to resume: leave nothing behind
        raise
    trained_tokens = trainer.state.num_input_tokens_seen - progress.tokens_at_start
    val_loss = trainer.evaluate()["eval_loss"] if validation.items else None
    history = trainer.state.log_history
    step_losses = [entry["loss"] for entry in history if "loss" in entry]
    seconds = time.perf_counter() - started
    result = {
        "steps": trainer.state.global_step,
        "loss_start": round(step_losses[0], 4) if step_losses else None,
        "loss_end": round(step_losses[-1], 4) if step_losses else None,
        "val_loss": round(val_loss, 4) if val_loss is not None else None,
        "seconds": round(seconds, 1),
        "tokens_per_s": round(trained_tokens / max(runtime, 1e-9), 1),
        "adapter": str(out),
        "examples": {"train": len(train.items), "validation": len(validation.items),
                     "too_long": train.too_long + validation.too_long},
        "max_length": max_length,
    }
    adapter_model = trainer.model
    assert isinstance(adapter_model, PeftModel)  # the model get_peft_model made, trained in place
    with published(out) as folder:
        adapter_model.save_pretrained(str(folder))
        (folder / "README.md").write_text(model_card(base, data, run["data_sha256"], options, result, per_epoch(history)),
                                          encoding="utf-8")
    shutil.rmtree(checkpoints, ignore_errors=True)
    return TrainedAdapter(result, adapter_model)


def _last_checkpoint(checkpoints: Path, run: dict[str, Any], resume: bool, find: Callable[[str], str | None]) -> str | None:
    """The checkpoint to resume from; refuses to mix runs or to start over a run's checkpoints silently."""
    last = find(str(checkpoints)) if checkpoints.is_dir() else None
    if not resume:
        if last:
            raise ModelError(f"{checkpoints}: holds an interrupted run; pass --resume to continue it, or remove the folder")
        return None
    if not last:
        raise ModelError(f"{checkpoints}: no checkpoint to resume from")
    saved = json.loads((checkpoints / RUN_FILE).read_text(encoding="utf-8")) if (checkpoints / RUN_FILE).is_file() else {}
    if saved.get("data_sha256") != run["data_sha256"] or saved.get("base") != run["base"]:
        raise ModelError(f"{checkpoints}: was started with other data or another base model; cannot resume it with these")
    changed = sorted(k for k, v in run["options"].items() if saved.get("options", {}).get(k) != v)
    if changed:
        raise ModelError(f"{checkpoints}: was started with other settings ({', '.join(changed)}); resume with the same ones")
    return last


def per_epoch(history: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean training loss and the validation loss of each (started) epoch, from the Trainer's log."""
    epochs: dict[int, dict[str, Any]] = {}
    for entry in history:
        number = max(1, math.ceil(entry.get("epoch", 0)))
        row = epochs.setdefault(number, {"epoch": number, "losses": [], "val_loss": None})
        if "loss" in entry:
            row["losses"].append(entry["loss"])
        if "eval_loss" in entry:
            row["val_loss"] = round(entry["eval_loss"], 4)
    return [{"epoch": row["epoch"], "train_loss": round(sum(row["losses"]) / len(row["losses"]), 4) if row["losses"] else None,
             "val_loss": row["val_loss"]} for row in epochs.values()]


def model_card(base: Path, data: Path, data_sha256: str, options: TrainOptions, result: dict[str, Any],
               epochs: Sequence[dict[str, Any]]) -> str:
    examples = result["examples"]
    rows = "\n".join(f"| {e['epoch']} | {e['train_loss']} | {e['val_loss']} |" for e in epochs)
    return f"""---
library_name: peft
base_model: {base.resolve()}
tags: [lora, raft, rag-private-docs]
---
# LoRA adapter (RAFT) for {base.name}

Trained by `rag finetune train` on retrieval-augmented examples from the user's own documents.
Serve it with `rag ask --llm hf:{base} --adapter <this folder>`, or merge it with `rag finetune merge`.

- Base model: `{base.resolve()}`, SHA-256 of config and weights `{folder_hash(base)}`
- Data: `{data.resolve()}`, SHA-256 `{data_sha256}`
- Examples: {examples['train']} train, {examples['validation']} validation, {examples['too_long']} left out as longer than {result['max_length']} tokens
- Steps: {result['steps']} in {result['seconds']} s ({result['tokens_per_s']} tokens/s)

## Hyper-parameters

```json
{json.dumps(asdict(options), indent=1)}
```

LoRA on every linear layer of the decoder (`all-linear`); loss on the answer tokens only.

## Loss per epoch

| epoch | train loss | validation loss |
|---|---|---|
{rows}
"""

"""``rag finetune``: RAFT data from an index, LoRA training, evaluation and merging.

    rag finetune data --index ./rag-index --out raft.jsonl
    rag finetune train --base ./Qwen2.5-0.5B-Instruct --data raft.jsonl --out ./my-lora
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from app.cli_common import fatal, open_knowledge_base, settings_from

EXAMPLE = """\b
Example (from an index to a served adapter):
    rag finetune data --index ./rag-index --out raft.jsonl
    rag finetune train --base ./Qwen2.5-0.5B-Instruct --data raft.jsonl --out ./my-lora
    rag finetune eval --base ./Qwen2.5-0.5B-Instruct --adapter ./my-lora --data raft.jsonl
    rag ask "How long is the warranty?" --llm hf:./Qwen2.5-0.5B-Instruct --adapter ./my-lora"""

existing_folder = click.Path(exists=True, file_okay=False, path_type=Path)
data_file = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.group(epilog=EXAMPLE)
def finetune() -> None:
    """Fine-tune a local LLM on your own documents (RAFT: answer from retrieved passages, cite, or refuse)."""


@finetune.command("data", epilog="\b\nExample:\n  rag finetune data --index ./rag-index --out raft.jsonl --questions my-questions.jsonl")
@click.option("--index", "index_dir", type=click.Path(path_type=Path), help="Index folder [env RAG_INDEX; default ./rag-index].")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="The JSONL file to write.")
@click.option("--questions", "questions_file", type=data_file,
              help="Your questions: JSONL of {question, answer?, source?, page?} (as `rag feedback` writes).")
@click.option("--llm", help="Write questions with this LLM: hf:MODEL_DIR | openai:BASE_URL#MODEL [env RAG_LLM]. "
                            "Without one (and without --questions), offline pseudo-questions are used, labelled as such.")
@click.option("-n", "n", type=click.IntRange(1), default=200, show_default=True, help="Questions to use (at most).")
@click.option("--distractors", type=click.IntRange(1, 20), default=4, show_default=True, help="Retrieved passages beside the oracle.")
@click.option("--no-oracle-share", type=click.FloatRange(0, 1, max_open=True), default=0.2, show_default=True,
              help="Share of examples without the oracle, whose target is the refusal.")
@click.option("--validation-share", type=click.FloatRange(0, 1, max_open=True), default=0.2, show_default=True,
              help="Share of the examples held out for validation, whole documents at a time.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.pass_context
def data(ctx: click.Context, index_dir: Path | None, out: Path, questions_file: Path | None, llm: str | None, n: int,
         distractors: int, no_oracle_share: float, validation_share: float, seed: int) -> None:
    """Build RAFT training examples from your index: a question, its passage among distractors, a cited answer."""
    from finetune.examples import DataError, RaftBuilder, pseudo_questions, user_questions, write_examples, written_questions
    from rag.generate.base import GenerationError
    from rag.generate.factory import make_generator

    settings = settings_from(ctx, index_dir=index_dir, llm=llm)
    retriever = open_knowledge_base(settings).retriever()
    try:
        if questions_file:
            cases, skipped = user_questions(questions_file, retriever, limit=n)
            if not cases:
                fatal(f"{questions_file}: no usable questions ({skipped} name sources that are not in {settings.index_dir})"
                       if skipped else f"{questions_file}: no questions in it")
            if skipped:
                click.echo(f"warning: {skipped} questions skipped: their source is not in {settings.index_dir}", err=True)
        elif settings.llm != "extractive":
            writer = make_generator(settings.llm, retriever.embedder, retriever.tokenizer, api_key=settings.openai_api_key)
            cases = written_questions(retriever, writer, n, seed)
            if not cases:
                fatal(f"{settings.llm}: wrote no usable questions about {settings.index_dir}")
        else:
            cases = pseudo_questions(retriever, n, seed)
            if not cases:
                fatal(f"{settings.index_dir}: no passage long enough to ask about; ingest documents first")
        examples = RaftBuilder(retriever, distractors, no_oracle_share, validation_share, seed).build(cases)
        write_examples(examples, out)
    except (DataError, GenerationError) as exc:
        fatal(str(exc))
    train = [e for e in examples if e["split"] == "train"]
    documents = {split: len({c.oracle.path for e, c in zip(examples, cases, strict=True) if e["split"] == split})
                 for split in ("train", "validation")}
    click.echo(f"{len(examples)} examples written to {out}: {len(train)} train ({documents['train']} documents), "
               f"{len(examples) - len(train)} validation ({documents['validation']} documents); "
               f"{sum(1 for e in examples if e['oracle'] is None)} without the oracle; questions {cases[0].label}")
    if not documents["validation"]:
        click.echo("warning: one document only, so there is no validation split", err=True)


@finetune.command("train", epilog="\b\nExample:\n  rag finetune train --base ./Qwen2.5-0.5B-Instruct --data raft.jsonl --out ./my-lora --epochs 2")
@click.option("--base", required=True, type=existing_folder, help="A local causal LM folder (Hugging Face format).")
@click.option("--data", "data_path", required=True, type=data_file, help="Examples from `rag finetune data`.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="The adapter folder to create.")
@click.option("--epochs", type=click.FloatRange(0, min_open=True), default=3.0, show_default=True)
@click.option("--max-steps", type=int, default=-1, show_default=True, help="Stop after N optimizer steps (overrides --epochs).")
@click.option("--lr", type=click.FloatRange(0, min_open=True), default=2e-4, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=4, show_default=True)
@click.option("--grad-accum", type=click.IntRange(1), default=4, show_default=True, help="Gradient accumulation steps.")
@click.option("--lora-r", type=click.IntRange(1), default=16, show_default=True, help="LoRA rank (alpha is twice it).")
@click.option("--max-length", type=click.IntRange(16), default=2048, show_default=True,
              help="Longer examples are left out, and counted.")
@click.option("--save-steps", type=click.IntRange(1), default=100, show_default=True, help="Checkpoint every N steps.")
@click.option("--resume", is_flag=True, help="Continue an interrupted run from its last checkpoint (OUT.checkpoints).")
@click.option("--4bit", "four_bit", is_flag=True, help="QLoRA: a 4-bit base (needs CUDA and bitsandbytes).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the run's figures as JSON.")
def train(base: Path, data_path: Path, out: Path, epochs: float, max_steps: int, lr: float, batch_size: int, grad_accum: int,
          lora_r: int, max_length: int, save_steps: int, resume: bool, four_bit: bool, seed: int, as_json: bool) -> None:
    """Train a LoRA adapter on the train split (loss on the answers only); OUT appears only on success."""
    import torch

    from finetune.examples import DataError
    from finetune.model import ModelError
    from finetune.train import TrainOptions, checkpoint_folder, train_adapter

    options = TrainOptions(epochs=epochs, max_steps=max_steps, lr=lr, batch_size=batch_size, grad_accum=grad_accum,
                           lora_r=lora_r, lora_alpha=2 * lora_r, max_length=max_length, save_steps=save_steps, seed=seed,
                           four_bit=four_bit)
    try:
        result = train_adapter(base, data_path, out, options, resume=resume).figures
    except (DataError, ModelError) as exc:
        fatal(str(exc))
    except torch.cuda.OutOfMemoryError:
        smaller = f"--batch-size {batch_size // 2} --grad-accum {grad_accum * 2}, " if batch_size > 1 else ""
        fatal(f"CUDA out of memory at batch size {batch_size}: try {smaller}a lower --max-length, or --4bit")
    except KeyboardInterrupt:
        if checkpoint_folder(out).is_dir():
            fatal(f"interrupted; no adapter written. Checkpoints are in {checkpoint_folder(out)}: rerun with --resume")
        fatal("interrupted before the first checkpoint; no adapter written, nothing to resume")
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False))
        return
    examples = result["examples"]
    click.echo(f"adapter {out}: {result['steps']} steps, loss {result['loss_start']} -> {result['loss_end']}, "
               f"validation loss {result['val_loss']}, {result['seconds']} s, {result['tokens_per_s']} tokens/s "
               f"({examples['train']} train, {examples['validation']} validation, {examples['too_long']} too long)")


@finetune.command("eval", epilog="\b\nExample:\n  rag finetune eval --base ./Qwen2.5-0.5B-Instruct --adapter ./my-lora --data raft.jsonl --out ft-eval")
@click.option("--base", required=True, type=existing_folder, help="The base causal LM folder.")
@click.option("--adapter", type=existing_folder, help="The LoRA adapter to compare with the base.")
@click.option("--data", "data_path", required=True, type=data_file, help="Examples from `rag finetune data` (validation split used).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("finetune-eval"), show_default=True,
              help="Folder for report.json, report.md, report.html.")
@click.option("--max-new-tokens", type=click.IntRange(1), default=256, show_default=True)
@click.option("--limit", type=click.IntRange(1), help="Use only the first N validation examples.")
@click.option("--json", "as_json", is_flag=True, help="Print {base: metrics, adapter: metrics} as JSON.")
def evaluate(base: Path, adapter: Path | None, data_path: Path, out: Path, max_new_tokens: int, limit: int | None,
             as_json: bool) -> None:
    """Compare base and base + adapter on the validation split: gold containment, citation precision,
    abstention accuracy and validation loss, through the answer pipeline."""
    import torch

    from finetune.evaluate import METRICS, evaluate_adapter, write_report
    from finetune.examples import DataError
    from finetune.model import ModelError
    from rag.generate.base import GenerationError

    try:
        report = evaluate_adapter(base, adapter, data_path, max_new_tokens, limit)
    except (DataError, ModelError, GenerationError) as exc:
        fatal(str(exc))
    except torch.cuda.OutOfMemoryError:
        fatal(f"CUDA out of memory while evaluating {base}: try a lower --max-new-tokens or a smaller model")
    paths = write_report(report, out)
    click.echo(f"reports: {paths['markdown']}, {paths['html']}, {paths['json']}", err=True)
    variants = {name: report[name] for name in ("base", "adapter") if name in report}
    if as_json:
        click.echo(json.dumps(variants, ensure_ascii=False))
        return
    click.echo(f"{'metric':20} " + " ".join(f"{name:>10}" for name in variants))
    for metric in METRICS:
        click.echo(f"{metric:20} " + " ".join(f"{_figure(values[metric]):>10}" for values in variants.values()))


def _figure(value: Any) -> str:
    return "-" if value is None else f"{value:.3f}"


@finetune.command("merge", epilog="\b\nExample:\n  rag finetune merge --base ./Qwen2.5-0.5B-Instruct --adapter ./my-lora --out ./qwen-mine")
@click.option("--base", required=True, type=existing_folder, help="The base causal LM folder.")
@click.option("--adapter", required=True, type=existing_folder, help="The LoRA adapter folder.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="The merged model folder to create.")
def merge(base: Path, adapter: Path, out: Path) -> None:
    """Fold the adapter into the base: a plain model folder that transformers or vLLM serve directly."""
    from finetune.model import ModelError, merge_adapter

    try:
        merge_adapter(base, adapter, out)
    except ModelError as exc:
        fatal(str(exc))
    except MemoryError:
        fatal(f"out of memory while merging into {base}: merging loads the whole model in its own dtype on the CPU")
    click.echo(f"merged model written to {out}; serve it with --llm hf:{out} or `vllm serve {out}`")

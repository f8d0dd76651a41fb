"""Comparing the base model with base + adapter on the validation split of ``rag finetune data``.

Each example's own passages go through the answer pipeline's generation step
(:func:`rag.pipeline.generate_reply`): the live prompt, the not-found marker, the citation check.

- ``gold_containment``: with-oracle answers that contain the gold answer (a given answer, else the
  oracle sentence the target quotes);
- ``citation_precision``: of the passage numbers cited in with-oracle answers, the share that are the oracle;
- ``answered``: with-oracle examples not refused;
- ``abstention_accuracy``: no-oracle examples refused;
- ``val_loss``: mean loss per answer token, as in training.

Usage, with a base model folder and an adapter trained by ``rag finetune train``::

    report = evaluate_adapter(Path("Qwen2.5-0.5B-Instruct"), Path("my-lora"), Path("raft.jsonl"))
    sorted(report["adapter"])[:2]  # ['abstention_accuracy', 'answered']
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from finetune.examples import DataError, read_examples
from finetune.model import check_causal_lm, load_tokenizer
from finetune.train import IGNORE, encode
from rag.generate.base import GenerationRequest
from rag.generate.prompt import Passage, fit_passages
from rag.pipeline import Reply, generate_reply
from rag.text import BM25Tokenizer

METRICS = ("gold_containment", "citation_precision", "answered", "abstention_accuracy", "val_loss")


def validation_examples(data: Path) -> list[dict[str, Any]]:
    examples = [e for e in read_examples(data) if e["split"] == "validation"]
    if not examples:
        raise DataError(f"{data}: no validation examples; rebuild with `rag finetune data --validation-share 0.2`")
    for example in examples:
        try:
            numbers = {p["chunk_id"]: p["n"] for p in example["passages"]}
            valid = isinstance(example["question"], str) and (not example.get("oracle") or example["oracle"]["chunk_id"] in numbers)
        except (KeyError, TypeError) as exc:
            raise DataError(f"{data}: validation examples need their question and numbered passages, as "
                            f"`rag finetune data` writes them ({type(exc).__name__}: {exc})") from exc
        if not valid:
            raise DataError(f"{data}: a validation example's oracle is not among its passages: {example['question'][:80]!r}")
    return examples


def evaluate_adapter(base: Path, adapter: Path | None, data: Path, max_new_tokens: int = 256,
                     limit: int | None = None) -> dict[str, Any]:
    """``{"base": metrics, "adapter": metrics (with an adapter), "examples": counts, ...}`` (see the module docstring).
    One model is in memory at a time."""
    from rag.generate.hf import HuggingFaceGenerator

    check_causal_lm(base)
    examples = validation_examples(data)[:limit]
    tokenizer = BM25Tokenizer()
    encoder = load_tokenizer(base)
    report: dict[str, Any] = {
        "base_model": str(base), "adapter_path": str(adapter) if adapter else None, "data": str(data),
        "examples": {"validation": len(examples), "with_oracle": sum(1 for e in examples if e["oracle"]),
                     "without_oracle": sum(1 for e in examples if not e["oracle"])},
    }
    variants = {"base": None, "adapter": adapter} if adapter else {"base": None}
    for name, folder in variants.items():
        HuggingFaceGenerator.unload_all()
        generator = HuggingFaceGenerator.load(str(base), adapter=str(folder) if folder else None)
        replies = [_reply(generator, tokenizer, example, max_new_tokens) for example in examples]
        report[name] = {**answer_metrics(examples, replies), "val_loss": validation_loss(generator.model, encoder, examples)}
        report.setdefault("samples", {})[name] = [{"question": e["question"], "gold": e.get("answer"), "answer": r.text}
                                                  for e, (r, _) in list(zip(examples, replies, strict=True))[:5]]
        del generator
    HuggingFaceGenerator.unload_all()
    return report


def _reply(generator: Any, tokenizer: BM25Tokenizer, example: dict[str, Any], max_new_tokens: int) -> tuple[Reply, int | None]:
    """The reply to an example's question and passages, fitted to the model's window as live answers
    are, and the number its oracle got there (None without an oracle, or when it did not fit)."""
    passages = [Passage(p["n"], p["source"], p["page"], p["text"], p["chunk_id"]) for p in example["passages"]]
    fitted = fit_passages(example["question"], passages, generator.count_tokens, generator.context_window, reserve=max_new_tokens)
    oracle = example["oracle"]["chunk_id"] if example.get("oracle") else None
    request = GenerationRequest(example["question"], fitted, max_new_tokens)
    *_, reply = generate_reply(generator, tokenizer, request)
    assert isinstance(reply, Reply)
    return reply, next((p.n for p in fitted if p.chunk_id == oracle), None)


def answer_metrics(examples: Sequence[dict[str, Any]], replies: Sequence[tuple[Reply, int | None]]) -> dict[str, float | None]:
    contained = answered = cited = cited_oracle = with_oracle = refused_without = without = 0
    for example, (reply, oracle) in zip(examples, replies, strict=True):
        if not example.get("oracle"):
            without += 1
            refused_without += reply.refused
            continue
        with_oracle += 1
        if reply.check is None:
            continue
        answered += 1
        gold = example.get("answer")
        contained += bool(gold and _normal(gold) in _normal(reply.text))
        cited += len(reply.check.cited)
        cited_oracle += oracle in reply.check.cited

    def share(part: int, whole: int) -> float | None:
        return round(part / whole, 4) if whole else None

    return {"gold_containment": share(contained, with_oracle), "citation_precision": share(cited_oracle, cited),
            "answered": share(answered, with_oracle), "abstention_accuracy": share(refused_without, without)}


def _normal(text: str) -> str:
    return " ".join(text.split()).lower()


def validation_loss(model: Any, encoder: Any, examples: Sequence[dict[str, Any]]) -> float:
    """Mean cross-entropy per answer token over ``examples`` (the loss training reports)."""
    import torch

    total, tokens = 0.0, 0
    with torch.inference_mode():
        for example in examples:
            ids, labels = encode(encoder, example["messages"])
            output = model(input_ids=torch.tensor([ids], device=model.device), labels=torch.tensor([labels], device=model.device))
            count = sum(1 for label in labels[1:] if label != IGNORE)
            total += float(output.loss) * count
            tokens += count
    return round(total / tokens, 4) if tokens else float("nan")


def markdown(report: dict[str, Any]) -> str:
    variants = [name for name in ("base", "adapter") if name in report]
    lines = [f"# Fine-tuning evaluation: {Path(report['base_model']).name}", "",
             f"Base `{report['base_model']}`; adapter `{report['adapter_path']}`; data `{report['data']}`; "
             f"{report['examples']['validation']} validation examples ({report['examples']['with_oracle']} with the oracle, "
             f"{report['examples']['without_oracle']} without).", "",
             "| metric | " + " | ".join(variants) + " |", "|---" * (len(variants) + 1) + "|"]
    lines += [f"| {metric} | " + " | ".join(str(report[v][metric]) for v in variants) + " |" for metric in METRICS]
    for variant in variants:
        lines += ["", f"## Sample answers ({variant})", ""]
        lines += [f"- **{s['question']}** gold: {s['gold']!r}; answer: {s['answer'][:300]!r}" for s in report["samples"][variant]]
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], folder: Path) -> dict[str, Path]:
    """report.json, report.md and report.html (with a bar chart of the metrics) in ``folder``."""
    from eval.report import figure_png, html_document

    variants = [name for name in ("base", "adapter") if name in report]

    def bars(axis: Any) -> None:
        shares = [m for m in METRICS if m != "val_loss"]
        width = 0.8 / len(variants)
        for i, variant in enumerate(variants):
            axis.bar([j + i * width for j in range(len(shares))], [report[variant][m] or 0 for m in shares], width, label=variant)
        axis.set_xticks([j + width * (len(variants) - 1) / 2 for j in range(len(shares))], shares, fontsize=8)
        axis.set_ylim(0, 1)
        axis.legend()

    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "report.json", "markdown": folder / "report.md", "html": folder / "report.html"}
    paths["json"].write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    paths["markdown"].write_text(markdown(report), encoding="utf-8")
    paths["html"].write_text(html_document("Fine-tuning evaluation", {"metrics": figure_png(bars)}, markdown(report)), encoding="utf-8")
    return paths

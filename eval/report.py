"""Evaluation reports: JSON for machines, Markdown and a self-contained HTML page with plots for people.

Example:
    >>> from eval.evaluate import evaluate
    >>> from rag.config import Settings
    >>> from rag.retrieve import Mode
    >>> report = evaluate(Path("beir"), Settings.resolve({}, env={}), [Mode.BM25, Mode.HYBRID], k=10, progress=False)
    >>> sorted(path.name for path in write_reports(report, Path("eval-out/demo")).values())
    ['report.html', 'report.json', 'report.md']
"""
from __future__ import annotations

import base64
import csv
import html
import io
import json
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("rag-private-docs", "torch", "sentence-transformers", "transformers", "faiss-cpu", "jieba")


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def published_baselines(dataset: str, table: Path) -> list[dict[str, str]]:
    """Rows of ``published_baselines.tsv`` for this dataset (empty when the file is missing)."""
    if not table.is_file():
        return []
    with table.open(encoding="utf-8", newline="") as fh:
        return [row for row in csv.DictReader(fh, delimiter="\t") if row.get("dataset") == dataset]


def figure_png(draw: Any) -> str:
    """``draw(axis)`` on a fresh figure, as a base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.4, 3.6), dpi=110)
    draw(axis)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode()


def plots(report: dict[str, Any]) -> dict[str, str]:
    """Base64 PNGs: metric bars per mode, recall@k curves, latency distribution."""
    modes = report["modes"]
    k = report["k"]
    names = list(modes)

    def bars(axis: Any) -> None:
        metrics = [f"ndcg@{k}", f"recall@{k}", f"mrr@{k}"]
        width = 0.8 / len(metrics)
        for i, metric in enumerate(metrics):
            axis.bar([x + i * width for x in range(len(names))], [modes[m][metric] for m in names], width, label=metric)
        axis.set_xticks([x + width for x in range(len(names))], names)
        axis.set_ylim(0, 1)
        axis.legend(loc="lower right", fontsize=8)
        axis.set_title("Quality per mode")

    def curves(axis: Any) -> None:
        for mode in names:
            curve = report["recall_curves"][mode]
            axis.plot([int(c) for c in curve], list(curve.values()), marker=".", label=mode)
        axis.set_xscale("log")
        axis.set_xlabel("k")
        axis.set_ylabel("recall@k")
        axis.legend(fontsize=8)
        axis.set_title("Recall at k")

    def latency(axis: Any) -> None:
        axis.boxplot([report["latencies"][m] for m in names], tick_labels=names, showfliers=False)
        axis.set_ylabel("ms per query")
        axis.set_title("Latency")

    return {"quality": figure_png(bars), "recall": figure_png(curves), "latency": figure_png(latency)}


def markdown(report: dict[str, Any]) -> str:
    k = report["k"]
    columns = [f"ndcg@{k}", f"recall@{k}", "recall@100", f"mrr@{k}", f"precision@{k}", "map", "p50_ms", "p95_ms"]
    lines = [f"# Retrieval evaluation: {report['dataset']}", "",
             f"{report['n_queries']} queries; dataset hash {report['dataset_hash']}; index {report['settings']['index']}", "",
             "| mode | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for mode, values in report["modes"].items():
        lines.append(f"| {mode} | " + " | ".join(str(values.get(c, "")) for c in columns) + " |")
    if report.get("answers"):
        answers = report["answers"]
        lines += ["", f"## Answers ({answers['backend']}, {answers['questions']} questions)", "",
                  "| metric | value |", "|---|---|"] + [f"| {key} | {value} |" for key, value in answers["metrics"].items()]
    if report.get("significance"):
        lines += ["", f"## Paired randomization test on per-query nDCG@{k} (against `{report['significance_baseline']}`)", "",
                  "| mode | mean difference | p-value | wins | losses | ties |", "|---|---|---|---|---|---|"]
        for mode, row in report["significance"].items():
            lines.append(f"| {mode} | {row['mean_difference']:+.4f} | {row['p_value']:.4f} | {row['wins']} | {row['losses']} | {row['ties']} |")
    if report.get("published"):
        lines += ["", "## Published figures for this dataset", "", "| system | metric | value | source |", "|---|---|---|---|"]
        lines += [f"| {r['system']} | {r['metric']} | {r['value']} | {r['source']} |" for r in report["published"]]
    lines += ["", "## Settings", "", "```json", json.dumps({"settings": report["settings"], "packages": report["packages"]},
                                                            indent=1, ensure_ascii=False), "```", ""]
    return "\n".join(lines)


def html_page(report: dict[str, Any]) -> str:
    return html_document(f"Retrieval evaluation: {report['dataset']}", plots(report), markdown(report))


def html_document(title: str, images: dict[str, str], text: str) -> str:
    """A self-contained page: the title, the base64 PNG ``images`` (by alt text) and ``text`` preformatted."""
    figures = "".join(f'<figure><img alt="{name}" src="data:image/png;base64,{png}"></figure>' for name, png in images.items())
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            "<style>body{font-family:sans-serif;max-width:60rem;margin:2rem auto}figure{display:inline-block;margin:.5rem}"
            "pre{white-space:pre-wrap}</style></head>"
            f"<body><h1>{html.escape(title)}</h1>{figures}<pre>{html.escape(text)}</pre></body></html>")


def write_reports(report: dict[str, Any], folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / "report.json", "markdown": folder / "report.md", "html": folder / "report.html"}
    paths["json"].write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    paths["markdown"].write_text(markdown(report), encoding="utf-8")
    paths["html"].write_text(html_page(report), encoding="utf-8")
    return paths

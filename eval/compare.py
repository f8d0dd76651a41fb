"""What changed between two evaluation reports (``report.json`` files of ``rag eval``).

Example:
    >>> before = {"dataset": "scifact", "modes": {"hybrid": {"ndcg@10": 0.70, "p50_ms": 40.0}}, "settings": {"k": 10}}
    >>> after = {"dataset": "scifact", "modes": {"hybrid": {"ndcg@10": 0.73, "p50_ms": 38.5}}, "settings": {"k": 20}}
    >>> comparison = compare_reports(before, after)
    >>> comparison["modes"]["hybrid"]["ndcg@10"], comparison["settings_changed"]
    ({'before': 0.7, 'after': 0.73, 'change': 0.03}, {'k': {'before': 10, 'after': 20}})
"""
from __future__ import annotations

from typing import Any

METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10", "p50_ms", "p95_ms")


def compare_reports(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """Per mode present in both: each metric before, after and the difference; plus changed settings."""
    modes = {}
    for mode in before["modes"].keys() & after["modes"].keys():
        modes[mode] = {m: {"before": before["modes"][mode].get(m), "after": after["modes"][mode].get(m),
                           "change": round(after["modes"][mode][m] - before["modes"][mode][m], 4)}
                       for m in METRICS if m in before["modes"][mode] and m in after["modes"][mode]}
    settings = {key: {"before": before.get("settings", {}).get(key), "after": after.get("settings", {}).get(key)}
                for key in set(before.get("settings", {})) | set(after.get("settings", {}))
                if before.get("settings", {}).get(key) != after.get("settings", {}).get(key)}
    return {"datasets": [before.get("dataset"), after.get("dataset")],
            "same_data": before.get("dataset_hash") == after.get("dataset_hash"), "modes": modes,
            "settings_changed": settings}


def render(comparison: dict[str, Any]) -> str:
    lines = [f"{comparison['datasets'][0]} -> {comparison['datasets'][1]}"
             + ("" if comparison["same_data"] else "  (different data: figures are not comparable)")]
    for mode, metrics in sorted(comparison["modes"].items()):
        changes = ", ".join(f"{m} {v['before']} -> {v['after']} ({v['change']:+})" for m, v in metrics.items())
        lines.append(f"  {mode}: {changes}")
    for key, values in comparison["settings_changed"].items():
        lines.append(f"  setting {key}: {values['before']} -> {values['after']}")
    return "\n".join(lines)

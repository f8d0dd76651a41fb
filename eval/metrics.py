"""Ranking metrics as trec_eval defines them, computed by pytrec_eval (the reference BEIR reports with),
and answer metrics.

``ranked`` is a list of document ids, best first; ``relevant`` maps document id to grade (> 0 relevant).
nDCG's gain is the grade itself with a log2 discount, as in trec_eval and BEIR (not 2^grade - 1).

Example:
    >>> round(ndcg_at_k(["a", "b"], {"b": 1}, 10), 4)
    0.6309
    >>> ranking_metrics(["a", "b"], {"b": 2, "c": 1}, 1)["recall@1"]
    0.0
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def _trec(ranked: Sequence[str], relevant: Mapping[str, int], measures: set[str]) -> dict[str, float]:
    """pytrec_eval's values of ``measures`` (its names, such as ``ndcg_cut.10``) for one ranking, keyed as it
    keys them (``ndcg_cut_10``); all 0 when nothing is ranked or nothing is relevant."""
    import pytrec_eval

    documents = list(dict.fromkeys(ranked))
    if not documents or not any(g > 0 for g in relevant.values()):
        return {m.replace(".", "_"): 0.0 for m in measures}
    # trec_eval orders a run by score (ties by document id), so each rank gets its own score
    run = {"q": {d: float(len(documents) - rank) for rank, d in enumerate(documents)}}
    return pytrec_eval.RelevanceEvaluator({"q": {d: int(g) for d, g in relevant.items()}}, measures).evaluate(run)["q"]


def ranking_metrics(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> dict[str, float]:
    """nDCG, recall, precision, MRR and hit rate at ``k``, recall at 100 and MAP of one ranking, in one pass."""
    full = _trec(ranked, relevant, {f"ndcg_cut.{k}", f"recall.{k}", "recall.100", f"P.{k}", "map"})
    reciprocal = _trec(ranked[:k], relevant, {"recip_rank"})["recip_rank"]
    return {f"ndcg@{k}": full[f"ndcg_cut_{k}"], f"recall@{k}": full[f"recall_{k}"], "recall@100": full["recall_100"],
            f"precision@{k}": full[f"P_{k}"], f"mrr@{k}": reciprocal, f"hit_rate@{k}": float(reciprocal > 0), "map": full["map"]}


def ndcg_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    return _trec(ranked, relevant, {f"ndcg_cut.{k}"})[f"ndcg_cut_{k}"]


def recall_at_k(ranked: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    return _trec(ranked, relevant, {f"recall.{k}"})[f"recall_{k}"]


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile, ``q`` in [0, 100]."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _normal(text: str) -> str:
    import unicodedata

    return "".join(unicodedata.normalize("NFKC", text).lower().split())


def contains_answer(text: str, golds: Sequence[str]) -> float:
    """1.0 when the text contains any gold answer (case, width and spacing ignored)."""
    normal = _normal(text)
    return 1.0 if any(_normal(g) and _normal(g) in normal for g in golds) else 0.0


def _units(text: str) -> list[str]:
    """Characters for Chinese, words for other text (the usual token-F1 units)."""
    from rag.text import language_of

    normal = _normal(text) if language_of(text) == "zh" else ""
    return list(normal) if normal else text.lower().split()


def token_f1(prediction: str, golds: Sequence[str]) -> float:
    """Best F1 over the gold answers of the prediction's tokens (characters for Chinese)."""
    from collections import Counter

    best = 0.0
    predicted = Counter(_units(prediction))
    for gold in golds:
        wanted = Counter(_units(gold))
        common = sum((predicted & wanted).values())
        if common:
            precision, recall = common / sum(predicted.values()), common / sum(wanted.values())
            best = max(best, 2 * precision * recall / (precision + recall))
    return best

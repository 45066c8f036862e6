"""Scores of a run: µAP over (query, work) pairs, recall at a false-positive rate of negative
queries, segment-level AP, and recall per transformation family.

µAP follows the descriptor track of Meta's 2022 Video Similarity Challenge: every prediction of
every query is ranked by its score in one list, and precision is averaged over the ranks of the
true pairs, divided by the number of true pairs (so a pair never predicted counts as a miss).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Prediction:
    query: str
    work: str
    score: float
    segments: tuple[tuple[float, float], ...] = ()  # clip start-end (s) of each matched segment


@dataclass(frozen=True)
class Query:
    id: str
    family: str  # "negative" for a clip made only of unregistered media
    works: tuple[str, ...]  # the works it reuses (empty for a negative)
    segment: tuple[float, float] | None = None  # where in the clip the copy sits, when partial


def micro_ap(preds: Iterable[Prediction], truth: set[tuple[str, str]]) -> float:
    ranked = sorted(preds, key=lambda p: -p.score)
    hits, total = 0, 0.0
    for k, p in enumerate(ranked, 1):
        if (p.query, p.work) in truth:
            hits += 1
            total += hits / k
    return total / len(truth) if truth else math.nan


def threshold_at_fpr(preds: list[Prediction], negatives: set[str], fpr: float) -> float:
    """The lowest score threshold at which at most fpr of the negative queries have any
    prediction scoring above it. A query's score is its best prediction."""
    best: dict[str, float] = {}
    for p in preds:
        if p.query in negatives:
            best[p.query] = max(best.get(p.query, 0.0), p.score)
    allowed = int(math.floor(fpr * len(negatives)))
    scores = sorted(best.values(), reverse=True)
    return scores[allowed] if len(scores) > allowed else 0.0


def recall_above(preds: list[Prediction], truth: set[tuple[str, str]], threshold: float) -> float:
    found = {(p.query, p.work) for p in preds if p.score > threshold}
    return len(found & truth) / len(truth) if truth else math.nan


def recall_by_family(preds: list[Prediction], queries: list[Query],
                     threshold: float) -> dict[str, float]:
    found = {(p.query, p.work) for p in preds if p.score > threshold}
    out: dict[str, list[int]] = {}
    for q in queries:
        for w in q.works:
            out.setdefault(q.family, []).append(int((q.id, w) in found))
    return {f: round(sum(v) / len(v), 3) for f, v in sorted(out.items())}


def segment_ap(preds: list[Prediction], queries: list[Query], *, pad_s: float) -> float:
    """AP over predicted segments of the segment queries. A predicted segment (widened by pad_s
    on each side: a sampled frame stands for its neighbourhood) is right when its work is the
    reused one and it covers at least half of the true segment; each true segment counts once."""
    seg_queries = {q.id: q for q in queries if q.segment is not None}
    items = []
    for p in preds:
        if p.query in seg_queries:
            for s in p.segments:
                items.append((p.score, p.query, p.work, s))
    items.sort(key=lambda x: -x[0])
    truth = {(q.id, w) for q in seg_queries.values() for w in q.works}
    used: set[tuple[str, str]] = set()
    hits, total = 0, 0.0
    for k, (_, qid, work, (s0, s1)) in enumerate(items, 1):
        q = seg_queries[qid]
        g0, g1 = q.segment
        overlap = max(0.0, min(s1 + pad_s, g1) - max(s0 - pad_s, g0))
        if (qid, work) in truth and (qid, work) not in used and overlap >= 0.5 * (g1 - g0):
            used.add((qid, work))
            hits += 1
            total += hits / k
    return total / len(truth) if truth else math.nan


def summarise(preds: list[Prediction], queries: list[Query], *, fpr: float,
              pad_s: float) -> dict[str, object]:
    truth = {(q.id, w) for q in queries for w in q.works}
    negatives = {q.id for q in queries if q.family == "negative"}
    threshold = threshold_at_fpr(preds, negatives, fpr)
    neg_hit = {p.query for p in preds if p.query in negatives}
    return {
        "micro_ap": round(micro_ap(preds, truth), 4),
        "recall_at_fpr": round(recall_above(preds, truth, threshold), 4),
        "threshold_at_fpr": round(threshold, 4),
        "recall_any_match": round(recall_above(preds, truth, -1.0), 4),
        "negatives_with_any_match": len(neg_hit),
        "segment_ap": round(segment_ap(preds, queries, pad_s=pad_s), 4),
        "recall_by_family": recall_by_family(preds, queries, threshold),
    }

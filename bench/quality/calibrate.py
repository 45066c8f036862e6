"""Thresholds chosen on the dev set for a stated false-positive rate.

Each query is searched once more with loose thresholds, and the strongest raw value of each
signal is kept per (query, work): the most ORB inliers, the smallest PDQ and pHash distances.
SSCD's scores come from the gate's own search (its k nearest frames are scored whatever their
value): the best normalised score of a whole frame, and of a crop (before the crop penalty). For
a false-positive rate r over the negative queries, a signal's threshold is the loosest one at
which at most floor(r * negatives) negative queries would fire it; the recall it would give on
the positive (query, work) pairs is reported next to it, and next to the value in the settings.
"""

from __future__ import annotations

import math
from typing import Any

import index
from bench.quality.metrics import Query
from clipgate.settings import Settings

LOOSE = {"orb_min_inliers": 6, "pdq_max_distance": 110, "pdq_candidate_distance": 110,
         "phash_max_distance": 22}
# signal -> (the setting it calibrates, larger-is-stronger, value when the signal never fired)
SIGNALS = {"orb": ("orb_min_inliers", True, 0.0), "pdq": ("pdq_max_distance", False, 256.0),
           "phash": ("phash_max_distance", False, 64.0),
           "sscd": ("sscd_min_score", True, -1.0), "sscd_crop": ("sscd_min_score", True, -1.0)}


class Calibration:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loose = settings.model_copy(update=LOOSE)
        self.negative: dict[str, list[float]] = {s: [] for s in SIGNALS}
        self.positive: dict[str, list[float]] = {s: [] for s in SIGNALS}

    def observe(self, query: Query, fp: Any, gated: Any) -> Any:
        """Search fp loosely (without CLIP), note each signal's strongest value (SSCD's from the
        gate's own search result `gated`), and return the loose search result."""

        found = index.search(fp, self.loose, disabled={"clip"})
        penalty = self.settings.sscd_crop_penalty
        # pHash counts only beside PDQ, as in production: where PDQ is within its setting.
        beside_pdq = {(h.query, h.frame_id) for h in found.hits
                      if h.signal == "pdq" and h.value <= self.settings.pdq_max_distance}
        best: dict[tuple[str, str], float] = {}
        for h in found.hits:
            if h.frame_id not in found.frames:
                continue
            if h.signal == "phash" and (h.query, h.frame_id) not in beside_pdq:
                continue
            work = found.frames[h.frame_id][0]
            key = (h.signal, work)
            stronger = max if SIGNALS[h.signal][1] else min
            best[key] = stronger(best.get(key, h.value), h.value)
        for h in [*gated.hits, *gated.nearest]:
            if h.signal == "sscd" and h.frame_id in gated.frames:
                name = "sscd" if h.region is None else "sscd_crop"
                value = h.value if h.region is None else h.value + penalty
                key = (name, gated.frames[h.frame_id][0])
                best[key] = max(best.get(key, value), value)
        for signal, (_, larger, none) in SIGNALS.items():
            if query.family == "negative":
                values = [v for (s, _), v in best.items() if s == signal]
                self.negative[signal].append((max if larger else min)(values, default=none))
            else:
                for w in query.works:
                    self.positive[signal].append(best.get((signal, w), none))
        return found

    def suggest(self, fpr: float) -> dict[str, Any]:
        out = {}
        for signal, (setting, larger, _) in SIGNALS.items():
            neg = sorted(self.negative[signal], reverse=larger)
            allowed = int(math.floor(fpr * len(neg)))
            current = getattr(self.settings, setting)
            if signal == "sscd_crop":  # a crop's score loses the penalty before the threshold
                current += self.settings.sscd_crop_penalty
            step = 1 if isinstance(current, int) else 0.001  # just past the strongest allowed
            if larger:
                at = (neg[allowed] + step) if len(neg) > allowed else step
                recall = _share(self.positive[signal], lambda v, t=at: v >= t)
                now = _share(self.positive[signal], lambda v, c=current: v >= c)
            else:
                at = (neg[allowed] - step) if len(neg) > allowed else 255
                recall = _share(self.positive[signal], lambda v, t=at: v <= t)
                now = _share(self.positive[signal], lambda v, c=current: v <= c)
            out[signal] = {
                "setting": setting,
                "suggested": int(at) if step == 1 else round(at, 3),
                "current": current,
                "pair_recall_suggested": recall,
                "pair_recall_current": now,
                "strongest_negative": neg[0] if neg else None,
                "negatives": len(neg),
            }
        return out


def _share(values: list[float], ok) -> float:
    return round(sum(1 for v in values if ok(v)) / len(values), 3) if values else math.nan

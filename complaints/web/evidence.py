"""The evidence of a claim, shaped for the review page: frame pairs with the matched region as
percentages of the frame, a timeline of matched segments, and the best score of each signal.

The evidence is the matcher's WorkMatch.to_dict() for the claimed work (compliance.alignment):
pairs of (clip_t, work_t, signals, distances, region, and for learned descriptors their raw and
normalised scores and the crop that matched) and segments of clip/work time ranges.
"""

from __future__ import annotations

from typing import Any

SIGNALS = {
    "sscd": "SSCD copy descriptor",
    "pdq": "PDQ perceptual hash",
    "phash": "pHash perceptual hash",
    "orb": "Local features (ORB, geometry checked)",
    "clip": "CLIP visual similarity",
}
MAX_PAIRS = 6


def _pct(x: float) -> float:
    return round(100.0 * min(1.0, max(0.0, float(x))), 2)


def _region(region: Any) -> dict[str, float] | None:
    """(x0, y0, x1, y1) in 0..1 of the clip frame -> left/top/width/height in percent."""
    if not region or len(region) != 4:
        return None
    x0, y0, x1, y1 = (float(v) for v in region)
    if x1 <= x0 or y1 <= y0:
        return None
    return {"left": _pct(x0), "top": _pct(y0), "width": _pct(x1 - x0), "height": _pct(y1 - y0)}


def _pairs(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # The strongest few, shown in clip order: enough to judge, few enough to load fast.
    best = sorted(pairs, key=lambda p: max(p.get("signals", {}).values(), default=0.0),
                  reverse=True)[:MAX_PAIRS]
    out = []
    for p in sorted(best, key=lambda p: p["clip_t"]):
        signals = p.get("signals", {})
        out.append({
            "clip_t": float(p["clip_t"]),
            "work_t": float(p["work_t"]),
            "region": _region(p.get("region")),
            "crop": _region(p.get("crop")),
            "signals": [{"name": SIGNALS.get(s, s), "key": s, "similarity": round(v, 3),
                         "distance": p.get("distances", {}).get(s),
                         "raw": p.get("raw", {}).get(s), "score": p.get("scores", {}).get(s)}
                        for s, v in sorted(signals.items())],
        })
    return out


def _timeline(ev: dict[str, Any], duration: float | None) -> dict[str, Any]:
    segments = ev.get("segments") or []
    ends = [float(s["clip_end"]) for s in segments]
    ends += [float(p["clip_t"]) for p in ev.get("pairs", [])]
    total = max([float(duration or 0.0), *ends, 0.001])
    bars = []
    for s in segments:
        start, end = float(s["clip_start"]), float(s["clip_end"])
        bars.append({
            "left": _pct(start / total),
            "width": max(0.8, _pct((end - start) / total)),  # a one-frame segment stays visible
            "clip_start": start, "clip_end": end,
            "work_start": float(s["work_start"]), "work_end": float(s["work_end"]),
            "frames": s.get("frames"), "signals": [SIGNALS.get(x, x) for x in s.get("signals", [])],
        })
    ticks = [{"left": _pct(p["clip_t"] / total)} for p in ev.get("pairs", [])]
    return {"total": total, "bars": bars, "ticks": ticks}


def _scores(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    best: dict[str, float] = {}
    fired: dict[str, int] = {}
    for p in pairs:
        for s, v in p.get("signals", {}).items():
            best[s] = max(best.get(s, 0.0), float(v))
            fired[s] = fired.get(s, 0) + 1
    return [{"key": s, "name": SIGNALS.get(s, s), "best": round(best[s], 3), "frames": fired[s]}
            for s in sorted(best, key=lambda k: -best[k])]


def evidence_view(claim: dict[str, Any], duration_s: float | None = None
                  ) -> dict[str, Any] | None:
    """What the review page draws, or None when triage found no match for the claimed work.
    duration_s: the clip's length, so the timeline is to scale."""
    ev = claim.get("evidence")
    if not ev:
        return None
    duration = duration_s
    pairs = ev.get("pairs") or []
    return {
        "score": ev.get("score"),
        "frames_matched": ev.get("frames_matched", len(pairs)),
        "signals": [SIGNALS.get(s, s) for s in ev.get("signals", [])],
        "pairs": _pairs(pairs),
        "timeline": _timeline(ev, duration),
        "scores": _scores(pairs),
    }

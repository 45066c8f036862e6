"""Search a query fingerprint against the live index: which frame pairs each signal says are the
same picture, and which the geometric check confirms.

1. Every signal's rows (whole frames, mirror images) are searched in its FAISS index: the k
   nearest frames of a float signal (scores normalised where the signal asks), every frame within
   reach of a binary one.
2. The rules of each signal (signals/base.py: threshold, quality, requires, counts) decide which
   hits count.
3. Frames that no strong hit settled are searched again by their regions (SSCD's crops), so a
   work pasted small, captioned or framed is found by the crop that holds it.
4. Candidate pairs go to the geometric check (ORB + RANSAC): weak hits that count (to confirm
   them and place the copy), then proposals: the nearest works of the float signals below their
   threshold, best crops and hash near misses. Each clip frame gets at most `orb_max_candidates`
   proposals and the clip `orb_max_checks`, so the check runs on few pairs, not on every frame.
   ORB only verifies: local features of a query frame are extracted only when a pair needs them,
   and the work frame's are read from storage (PostgreSQL) for just those pairs; no index of
   every work's descriptors is held (it cost 32 KB a frame).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clipgate import db
from clipgate.errors import Unavailable
from clipgate.settings import Settings, get_settings
from index import live, signals, store
from index.faiss_index import FrameIndex, Hit
from index.features import Features, verify
from index.fingerprint import Fingerprint
from index.signals import QueryRows, Rule, Signal
from index.threads import one_thread_if_small

# Switches for ablations (the quality bench): any signal's name, "orb" (the geometric check) and
# "regions" (SSCD's crops).
SWITCHES = ("orb", "regions")

Candidate = tuple[int, int, bool | None, tuple[float, float, float, float] | None]
# (clip frame, work frame id, mirrored: True/False, or None to try both; crop box or None)


@dataclass
class SearchResult:
    index_version: int
    spaces: dict[str, str]  # signal -> version of the vectors searched
    hits: list[Hit]  # hits that count, the geometric check's included
    # frame id -> (work id, seconds into the work), for every frame id in hits and nearest
    frames: dict[int, tuple[str, float]]
    # work id -> {id, owner, title, policy, kind}, only works still active
    works: dict[str, dict[str, Any]]
    # The closest hits of float signals that did not count (below the threshold, or a signal that
    # measures nothing): what came near, for people to see.
    nearest: list[Hit] = field(default_factory=list)
    checks: int = 0  # pairs the geometric check ran on
    # Every raw hit before the rules (each float row's k nearest, each hash's frames in reach):
    # what the quality bench re-scores offline with other thresholds.
    raw: list[Hit] = field(default_factory=list, repr=False)


def search(fp: Fingerprint, settings: Settings | None = None, *,
           disabled: Collection[str] = ()) -> SearchResult:
    """Search every sampled frame of the query fp against the live index of protected works.

    disabled: signals or switches (SWITCHES) turned off: they neither count nor propose. For
    ablations in the quality benchmark; the gate turns none off."""
    settings = settings or get_settings()
    index = live.sync(settings)
    with db.connection(settings) as conn:
        found = match_index(index, fp, settings, disabled=disabled,
                            features=lambda ids: store.frame_features(conn, frame_ids=ids))
        ids = {h.frame_id for h in found.hits} | {h.frame_id for h in found.raw}
        frames = index.meta.entries(ids)
        works = store.active_works(conn, work_ids=sorted({w for w, _ in frames.values()}))
    return SearchResult(index.version, dict(index.spaces), found.hits, frames, works,
                        found.nearest, found.checks, found.raw)


@dataclass
class Matched:
    hits: list[Hit]  # hits that count, the geometric check's included
    nearest: list[Hit]  # the closest float hits that did not count
    checks: int  # pairs the geometric check ran on
    raw: list[Hit]  # every hit before the rules


def match_index(index: FrameIndex, fp: Fingerprint, settings: Settings, *,
                features: Callable[[list[int]], Mapping[int, Features]] | None,
                disabled: Collection[str] = ()) -> Matched:
    """The gate's matcher against any FrameIndex (the protected works, or the released clips):
    search, the rules, regions, and the geometric check of candidates, whose reference features
    `features(frame ids)` gives (None: no geometric check)."""
    if fp.rows is None:
        raise ValueError("search takes a query fingerprint (fingerprint_file(..., query=True))")
    known = set(signals.names()) | set(SWITCHES)
    unknown = set(disabled) - known
    if unknown:
        raise ValueError(f"unknown signals {sorted(unknown)}; choose from {', '.join(known)}")
    rules = signals.rules(settings)
    active = {n: s for n, s in signals.active(settings).items()
              if n not in disabled and n in fp.rows and n in index.native}
    for name in active:
        if fp.versions[name] != index.spaces[name]:
            raise Unavailable(f"the query's {name} vectors ({fp.versions[name]}) are not the "
                              f"index's ({index.spaces[name]}); run `{live.REEMBED}`")

    found = Found()
    for name, signal in active.items():
        found.add(index, signal, fp.rows[name])
    hits = counted(found.hits, fp, rules, disabled)
    settled = _settled(hits, rules, settings)

    if "regions" not in disabled:
        open_frames = sorted(set(range(len(fp))) - {q for q, _ in settled})
        for signal in active.values():
            extra = fp.regions(signal, open_frames)
            if extra is not None and len(extra):
                found.add(index, signal, extra)
        hits = counted(found.hits, fp, rules, disabled)
        settled = _settled(hits, rules, settings)

    checks = 0
    if "orb" not in disabled and features is not None:
        candidates = candidate_pairs(index, fp, hits, found, settled, active, settings, disabled)
        checks = len(candidates)
        hits += _geometric_hits(index, fp, candidates, features, settings)
    counted_pairs = {(h.query, h.frame_id) for h in hits}
    nearest = [h for h in found.best_float() if (h.query, h.frame_id) not in counted_pairs]
    return Matched(hits, nearest, checks, found.hits)


class Found:
    """Every raw hit of a search, before the rules: float signals' k nearest per row, binary
    signals' frames within reach (near misses kept apart)."""

    def __init__(self) -> None:
        self.hits: list[Hit] = []
        self.near: list[tuple[int, int, bool, float]] = []  # (frame, frame id, mirrored, distance)

    def add(self, index: FrameIndex, signal: Signal, rows: QueryRows) -> None:
        with one_thread_if_small(index.search_cost(signal.name, len(rows))):
            self._add(index, signal, rows)

    def _add(self, index: FrameIndex, signal: Signal, rows: QueryRows) -> None:
        name = signal.name
        if signal.kind == "float":
            sims, ids = index.nearest(name, rows.vectors, signal.search_k)
            background = (-index.bias(name, rows.vectors) if signal.normalises
                          else np.zeros(len(rows), np.float32))
            works = index.meta.works_at(ids) if signal.normalises else None
            for r in range(len(rows)):
                box = None if np.isnan(rows.box[r, 0]) else tuple(float(x) for x in rows.box[r])
                pairs = [(s, i) for s, i in zip(sims[r].tolist(), ids[r].tolist()) if i >= 0]
                rival = (_rivals(pairs, dict(zip(ids[r].tolist(), works[r].tolist())))
                         if works is not None else {})
                for s, i in pairs:
                    # Normalised: the cosine less the closer of the nearest background picture
                    # and the nearest other work, so a look-alike of a whole class of works (one
                    # nebula among many) needs far more than a distinctive picture.
                    ref = max(float(background[r]), rival.get(i, 0.0))
                    self.hits.append(Hit(int(rows.frame[r]), int(i), name,
                                         round(s - ref + float(rows.bias[r]), 5), box,
                                         bool(rows.mirrored[r]), round(s, 5)))
            return
        reach = int(max(signal.threshold, signal.candidate_distance or 0))
        lims, dist, ids = index.within(name, rows.vectors, reach)
        for r in range(len(rows)):
            q, mirrored = int(rows.frame[r]), bool(rows.mirrored[r])
            for j in range(lims[r], lims[r + 1]):
                d, i = float(dist[j]), int(ids[j])
                if signal.fires(d):
                    self.hits.append(Hit(q, i, name, d, mirrored=mirrored))
                else:
                    self.near.append((q, i, mirrored, d))

    def best_float(self, limit: int = 5) -> list[Hit]:
        """The closest float hit per (signal, work frame), best first."""
        best: dict[tuple[str, int], Hit] = {}
        for h in self.hits:
            if h.raw is not None and ((h.signal, h.frame_id) not in best
                                      or h.value > best[(h.signal, h.frame_id)].value):
                best[(h.signal, h.frame_id)] = h
        return sorted(best.values(), key=lambda h: -h.value)[:limit * 4]


def _rivals(pairs: list[tuple[float, int]], work_of: Mapping[int, str]) -> dict[int, float]:
    """For each of a row's nearest frames (cosine, frame id), the cosine of the nearest frame of
    another work among them (none: that work is alone in reach, and only the background
    counts). work_of: frame id -> its work id."""
    best: dict[str, float] = {}
    for s, i in pairs:
        w = work_of.get(i, "")
        best[w] = max(best.get(w, -1.0), s)
    top = sorted(best.items(), key=lambda kv: -kv[1])[:2]  # the two closest works suffice
    out = {}
    for _, i in pairs:
        w = work_of.get(i, "")
        other = next((v for x, v in top if x != w), None)
        if other is not None:
            out[i] = other
    return out


def counted(raw: list[Hit], fp: Fingerprint, rules: Mapping[str, Rule],
            disabled: Collection[str] = ()) -> list[Hit]:
    """The raw hits that count, by each signal's rule: it fires, it measures something, the
    query frame has the detail it needs (quality_from), and its `requires` fired on the same pair
    (unless that signal is switched off). E.g. pHash counts only beside PDQ: alone it confuses
    dark, sparse pictures (the dev set's nebulae match at distance 2-4 where PDQ is 90+ bits
    apart)."""
    firing = [h for h in raw if h.signal in rules and rules[h.signal].fires(h.value)
              and rules[h.signal].counts and h.signal not in disabled]
    seen = {(h.signal, h.query, h.frame_id) for h in firing}
    out = []
    for h in firing:
        rule = rules[h.signal]
        if rule.quality_from is not None:
            quality = fp.quality.get(rule.quality_from)
            if quality is not None and quality[h.query] < rule.min_quality:
                continue
        if (rule.requires is not None and rule.requires not in disabled
                and (rule.requires, h.query, h.frame_id) not in seen):
            continue
        out.append(h)
    return out


def _settled(hits: list[Hit], rules: Mapping[str, Rule], settings: Settings
             ) -> set[tuple[int, int]]:
    """(clip frame, work frame) pairs that a strong hit of a signal that decides alone settles:
    no geometric check and no crops needed there."""
    return {(h.query, h.frame_id) for h in hits
            if rules[h.signal].decides_alone
            and rules[h.signal].evidence(h.value) >= settings.settle_evidence}


def candidate_pairs(index: FrameIndex, fp: Fingerprint, hits: list[Hit], found: Found,
                    settled: set[tuple[int, int]], active: Mapping[str, Signal],
                    settings: Settings, disabled: Collection[str]) -> list[Candidate]:
    """The pairs the geometric check runs on, in order: weak hits that count (at most
    orb_confirm_candidates a frame, in slots of their own), then the proposals of each frame (at
    most orb_max_candidates), taken round-robin over frames, at most orb_max_checks in all."""
    done: set[tuple[int, int]] = set(settled)
    confirm: dict[int, list[Candidate]] = {}
    for h in sorted(hits, key=lambda h: -active[h.signal].evidence(h.value)
                    if h.signal in active else 0.0):
        key = (h.query, h.frame_id)
        if key in done or len(confirm.get(h.query, [])) >= settings.orb_confirm_candidates:
            continue
        done.add(key)
        confirm.setdefault(h.query, []).append((h.query, h.frame_id, _mirror_of(h), h.region))

    proposals: dict[int, list[Candidate]] = {}

    def propose(c: Candidate) -> None:
        if (c[0], c[1]) in done or len(proposals.get(c[0], [])) >= settings.orb_max_candidates:
            return
        done.add((c[0], c[1]))
        proposals.setdefault(c[0], []).append(c)

    # Hash hits that fire but do not count (a frame too flat for the hash, a pHash without
    # PDQ beside it), closest first.
    counting = {(h.signal, h.query, h.frame_id) for h in hits}
    for h in sorted((h for h in found.hits if h.raw is None and h.signal in active
                     and (h.signal, h.query, h.frame_id) not in counting),
                    key=lambda h: h.value):
        propose((h.query, h.frame_id, h.mirrored, None))
    # Float signals' nearest below the threshold: the best per work on each frame and crop.
    for h in _nearest_below(found.hits, active):
        propose((h.query, h.frame_id, _mirror_of(h), h.region))
    for q, f, m, _ in sorted(found.near, key=lambda n: n[3]):  # hash near misses, closest first
        propose((q, f, m, None))

    order = [c for cs in confirm.values() for c in cs]
    queues = [list(cs) for cs in proposals.values()]
    while queues and len(order) < settings.orb_max_checks:
        for qs in queues:
            if qs and len(order) < settings.orb_max_checks:
                order.append(qs.pop(0))
        queues = [qs for qs in queues if qs]
    return order


def _mirror_of(h: Hit) -> bool | None:
    """Which view of the clip frame the check uses: a hash hit knows (its mirror-image row
    matched or not); a learned descriptor sees a mirror image as the same picture, so both."""
    return h.mirrored if h.raw is None else None


def _nearest_below(raw: list[Hit], active: Mapping[str, Signal]) -> list[Hit]:
    """Per clip frame and signal, the float hits below the threshold whose score is at least the
    signal's candidate floor: the signal's `proposals` closest by raw cosine (it ranks the true
    work first more often than the normalised score, whose per-row background term differs between
    crops) and as many best by normalised score, for the whole frame and again for its regions
    (one per work frame), closest first by raw cosine."""
    best: dict[tuple[str, int, bool, int], Hit] = {}
    for h in raw:
        signal = active.get(h.signal)
        if (signal is None or signal.kind != "float" or not signal.counts
                or signal.fires(h.value) or signal.candidate_floor is None
                or h.value < signal.candidate_floor):
            continue
        key = (h.signal, h.query, h.region is not None, h.frame_id)
        if key not in best or (h.raw or 0.0) > (best[key].raw or 0.0):
            best[key] = h
    per_frame: dict[tuple[str, int, bool], list[Hit]] = {}
    for h in best.values():
        per_frame.setdefault((h.signal, h.query, h.region is not None), []).append(h)
    chosen: list[Hit] = []
    for (name, _, _), hs in per_frame.items():
        n = active[name].proposals
        by_raw = sorted(hs, key=lambda h: -(h.raw or h.value))[:n]
        # And the best by normalised score: a picture pasted over generic texture (smooth noise,
        # sky) is out-scored in raw cosine by that texture's look-alikes among the works, whose
        # normalisation takes them far below it.
        by_score = sorted(hs, key=lambda h: -h.value)[:n]
        chosen += by_raw + [h for h in by_score if h not in by_raw]
    return sorted(chosen, key=lambda h: -(h.raw or h.value))


def _geometric_hits(index: FrameIndex, fp: Fingerprint, candidates: list[Candidate],
                    features: Callable[[list[int]], Mapping[int, Features]],
                    settings: Settings) -> list[Hit]:
    """ORB + RANSAC on each candidate: the clip frame's features (of the crop that proposed it,
    if one did; of its mirror image for a mirrored pair; both views when the proposer cannot
    tell) against the reference frame's stored ones. Each pair's outcome is kept on the
    fingerprint, by index snapshot, so searching one fingerprint several ways (the quality bench's
    ablations) checks a pair once."""
    def key(q: int, f: int, view: bool, box: Any) -> tuple:
        return (index.epoch, index.version, q, f, view, box, settings.orb_min_inliers)

    def views(mirrored: bool | None) -> tuple[bool, ...]:
        return (False, True) if mirrored is None else (mirrored,)

    # Only the reference frames of pairs not checked before are read from storage.
    need = sorted({f for q, f, m, box in candidates for view in views(m)
                   if key(q, f, view, box) not in fp.verified})
    stored = features(need) if need else {}
    out = []
    for q, f, mirrored, box in candidates:
        for view in views(mirrored):
            k = key(q, f, view, box)
            if k not in fp.verified:
                work = stored.get(f)
                if work is None:  # no stored features: nothing to check
                    break
                v = verify(fp.local(q, mirrored=view, box=box), work,
                           min_inliers=settings.orb_min_inliers)
                if v is None and box is not None:  # the crop may have cut the copy: whole frame
                    v = verify(fp.local(q, mirrored=view), work,
                               min_inliers=settings.orb_min_inliers)
                fp.verified[k] = v
            v = fp.verified[k]
            if v is not None:
                out.append(Hit(q, f, "orb", float(v.inliers), v.region, mirrored=view))
                break
    return out

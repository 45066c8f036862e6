"""Which release is this copy whose manifest was stripped? By the watermark in its frames first
(compliance.watermark), then by its pictures: the released clips as an index of their own, with
the same FrameIndex, signals, rules and matcher as the gate (index.match_index), over the frames
recorded at release time (release_frames) instead of the protected works.

Release frames are only ever added, so each process keeps its index and adds the frames released
since it last looked: a cheap query per lookup, never a rebuild.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import index
from clipgate import db
from clipgate.settings import Settings
from compliance import store, watermark
from compliance.verify import read_manifest

# Share of the copy's informative frames (those with enough detail for a hash to count) that must
# match one release's frames.
MIN_FRAME_SHARE = 0.5

_lock = threading.Lock()
# -> (index, the highest frame id in it, how many frames it holds)
_indexes: dict[tuple, tuple[index.FrameIndex, int, int]] = {}


@dataclass(frozen=True)
class FoundRelease:
    release_id: str
    frames_matched: int  # informative frames of the copy that match the release's frames
    frames: int  # informative frames of the copy
    confidence: float  # 0.5..1, the best matched frame's evidence
    confirmed: int = 0  # of frames_matched, those the geometric check matched (none whole)


def _released_index(settings: Settings) -> index.FrameIndex:
    active = index.active(settings)
    key = (str(settings.data_dir), db.database_url(settings),
           tuple((n, s.version) for n, s in active.items()))
    with _lock:
        current, last, count = _indexes.get(key, (None, 0, 0))
        with db.connection(settings) as conn:
            top, total = store.release_frames_state(conn)
            if current is not None and (top < last or total < count):
                current, last, count = None, 0, 0  # rows went away (a restored backup): anew
            rows = store.release_frame_rows(conn, after_id=last, signals=active)
        if current is None:
            current = index.FrameIndex.build(active, 0, "releases", rows)
        elif len(rows):
            current = current.copy()  # a lookup running now keeps the one it has
            current.add(rows)
        if len(rows):
            last = int(rows.ids.max())
        _indexes[key] = (current, last, count + len(rows))
        return current


def find_release(fp: index.Fingerprint, settings: Settings, *,
                 regions: bool = True, confirm: bool = True) -> FoundRelease | None:
    """The release whose frames best match the query fingerprint fp, or None. A frame matches a
    release when any signal's hit counts by the gate's rules; the release must match at least
    half the copy's informative frames (and two, when it has two). regions: also search crops
    of frames nothing matched whole (a copy inset small; slow: ~19 crops a frame). confirm:
    when no release gets enough frames whole, the geometric check (ORB + RANSAC) may confirm
    the release SSCD ranks first on enough of them (_confirm)."""
    informative = np.asarray(fp.detail) >= index.MIN_HASH_QUALITY
    if not informative.any():
        return None
    released = _released_index(settings)
    found = index.match_index(released, fp, settings, features=None,
                              disabled=() if regions else ("regions",))
    rules = index.rules(settings)
    frames: dict[str, set[int]] = {}
    evidence: dict[str, float] = {}
    for h in found.hits:
        if h.frame_id not in released.meta or not informative[h.query]:
            continue
        release_id = released.meta[h.frame_id][0]
        frames.setdefault(release_id, set()).add(h.query)
        evidence[release_id] = max(evidence.get(release_id, 0.0),
                                   rules[h.signal].evidence(h.value))
    n = int(informative.sum())
    needed = max(min(settings.block_min_frames, n), math.ceil(MIN_FRAME_SHARE * n))
    ranked = sorted(((len(f), evidence[r], r) for r, f in frames.items()), reverse=True)
    if ranked and ranked[0][0] >= needed:
        count, conf, release_id = ranked[0]
        return FoundRelease(release_id, count, n, round(conf, 4))
    if not confirm:
        return None
    return _confirm(fp, released, found.raw, informative, frames, evidence, needed, settings)


# A copy cropped a little (a 10% centre crop) keeps SSCD's raw cosine to its release high
# (0.84-0.97), but its normalised score (the cosine less that of the nearest other release,
# 0.5-0.8 for clips of one generator) falls under the gate's threshold on some frames, and the
# copy under half its frames. Lowering the threshold is no cure: never-released clips of the same
# generator reach 0.17-0.19 on three frames of one release. ORB + RANSAC against the release's
# own frames tells them apart: the copies agree on 15-240 keypoints, those clips on none.
CONFIRM_REFERENCES = 2  # release frames tried per copy frame, closest by raw cosine first


def _confirm(fp: index.Fingerprint, released: index.FrameIndex, raw: list[index.Hit],
             informative: np.ndarray, frames: dict[str, set[int]], evidence: dict[str, float],
             needed: int, settings: Settings) -> FoundRelease | None:
    """The gate's "SSCD proposes, geometry confirms" for the released clips, whose frames have
    no stored local features: the release SSCD ranks first (above the background and every other
    release) on enough informative frames is checked frame by frame against its frames decoded
    from its stored file. None when no release is proposed on enough frames, its file is gone,
    or too few frames agree."""
    rules = index.rules(settings)
    floor = getattr(rules.get("sscd"), "candidate_floor", None)
    if floor is None or fp.frames is None:
        return None
    best: dict[int, index.Hit] = {}  # copy frame -> its best SSCD hit
    for h in raw:
        if (h.signal == "sscd" and h.region is None and informative[h.query]
                and h.frame_id in released.meta
                and (h.query not in best or h.value > best[h.query].value)):
            best[h.query] = h
    proposed: dict[str, set[int]] = {}
    for q, h in best.items():
        if h.value >= floor:
            proposed.setdefault(released.meta[h.frame_id][0], set()).add(q)
    if not proposed:
        return None
    release_id = max(proposed, key=lambda r: len(proposed[r] | frames.get(r, set())))
    matched = set(frames.get(release_id, set()))
    todo = sorted(proposed[release_id] - matched)
    if len(matched) + len(todo) < needed:
        return None
    # Each copy frame's closest frames of that release, by raw cosine.
    refs: dict[int, list[tuple[float, int]]] = {}
    for h in raw:
        if (h.signal == "sscd" and h.region is None and h.query in todo
                and h.frame_id in released.meta and released.meta[h.frame_id][0] == release_id):
            refs.setdefault(h.query, []).append((h.raw or h.value, h.frame_id))
    refs = {q: [f for _, f in sorted(set(r), reverse=True)[:CONFIRM_REFERENCES]]
            for q, r in refs.items()}
    with db.connection(settings) as conn:
        release = store.get_release(conn, release_id=release_id)
    path = Path(release["path"]) if release else None
    if path is None or not path.is_file():
        return None
    ids = sorted({f for fs in refs.values() for f in fs})
    try:
        pictures = index.frames_at(path, [released.meta[f][1] for f in ids])
    except index.MediaError:
        return None
    decoded = dict(zip(ids, pictures))
    reference: dict[int, Any] = {}

    def features(f: int) -> Any:  # on first use: the checks often stop before every frame
        if f not in reference:
            reference[f] = index.extract_features(decoded[f])
        return reference[f]

    orb = rules["orb"]
    conf = evidence.get(release_id, 0.0)
    confirmed = 0
    for i, q in enumerate(todo):
        if len(matched) >= needed or len(matched) + len(todo) - i < needed:
            break  # settled either way: no more checks
        fit = geometric_fit(fp, q, refs.get(q, []), features, settings.orb_min_inliers)
        if fit is not None:
            matched.add(q)
            confirmed += 1
            conf = max(conf, orb.evidence(fit))
    if len(matched) < needed:
        return None
    return FoundRelease(release_id, len(matched), int(informative.sum()), round(conf, 4),
                        confirmed)


def geometric_fit(fp: index.Fingerprint, q: int, references: list[int],
                  features: Callable[[int], Any], min_inliers: int) -> int | None:
    """Inliers of the first reference frame (features(frame id): index.extract_features) that copy
    frame q matches geometrically, as it is, then mirrored (SSCD sees a mirror image as the same
    picture); None when none does."""
    for view in (False, True):
        for ref in references:
            v = index.verify_features(fp.local(q, mirrored=view), features(ref),
                                      min_inliers=min_inliers)
            if v is not None:
                return v.inliers
    return None


@dataclass(frozen=True)
class Recovered:
    """The release a copy without a valid manifest was traced to."""

    release: dict[str, Any]  # the release record (store row)
    by: str  # "watermark" | "fingerprint"
    confidence: float  # 0..1; watermark: how far its bits lean; fingerprint: the best frame's evidence
    manifest: dict[str, Any] | None  # the manifest it was signed with, as stored at release
    frames_matched: int | None = None  # fingerprint: copy frames that match the release's
    frames: int | None = None  # fingerprint: informative frames of the copy


# The lookup samples fewer frames than the gate (which wants every shot): a copy is one release's
# frames throughout, and a few agreeing frames name it; this keeps a 10 s clip under a second.
LOOKUP_SAMPLE_FPS = 0.5


def lookup_settings(settings: Settings) -> Settings:
    """The settings a provenance lookup fingerprints with (fewer frames than the gate)."""
    return settings.model_copy(update={"sample_fps": min(settings.sample_fps, LOOKUP_SAMPLE_FPS)})


def recover(path: Path, settings: Settings, *, by: tuple[str, ...] = ("watermark", "fingerprint"),
            trust_anchor_pem: bytes | None = None) -> Recovered | None:
    """Trace a copy to its release by its pixels: the watermark's key first, then the frames
    against the released clips. None when neither names a release (a key that decodes to no
    release is no error: the fingerprint is tried next). BadInput for what is not media."""
    path = Path(path)
    if "watermark" in by:
        read = watermark.read_watermark(path)
        if read is not None:
            with db.connection(settings) as conn:
                release = store.release_by_watermark(conn, key=read.key)
            if release is not None:
                return Recovered(release, "watermark", read.confidence,
                                 _manifest(release, settings, trust_anchor_pem))
    if "fingerprint" in by:
        lookup = lookup_settings(settings)
        # Whole frames only: the copies verify meets (re-encoded, scaled, cropped a little,
        # mirrored, captioned) match whole, and crops would cost seconds a clip.
        found = find_release(index.fingerprint_file(path, lookup, query=True), lookup,
                             regions=False)
        if found is not None:
            with db.connection(settings) as conn:
                release = store.get_release(conn, release_id=found.release_id)
            if release is not None:
                return Recovered(release, "fingerprint", found.confidence,
                                 _manifest(release, settings, trust_anchor_pem),
                                 found.frames_matched, found.frames)
    return None


def _manifest(release: dict[str, Any], settings: Settings,
              trust_anchor_pem: bytes | None) -> dict[str, Any] | None:
    """The release's manifest as stored at release; for a release made before it was stored,
    read from its signed file (None if that is gone)."""
    with db.connection(settings) as conn:
        stored = store.release_manifest(conn, release_id=str(release["id"]))
    if stored is not None:
        return stored
    signed = Path(release["path"])
    if not signed.is_file():
        return None
    try:
        return read_manifest(signed, trust_anchor_pem).manifest
    except ValueError:
        return None

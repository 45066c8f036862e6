"""The process's live FAISS index, kept at the database's index version.

Every search first reads the version from PostgreSQL (one tiny query). If the in-memory index is
behind, it is reloaded from the saved file when that file is at the right version, and rebuilt
from the database otherwise. So any number of API processes and workers agree on what matches.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np
import psycopg

from clipgate import db
from clipgate.errors import Unavailable
from clipgate.settings import Settings, get_settings
from index import store
from index.faiss_index import FrameIndex, FrameRows, Hit
from index.features import Features, verify
from index.fingerprint import Fingerprint, embedder_for
from index.signals import MIN_HASH_QUALITY

log = logging.getLogger(__name__)

INDEX_FILE = "frames.npz"
SIGNALS = ("clip", "pdq", "phash", "orb")

_lock = threading.Lock()
_live: dict[str, FrameIndex] = {}  # keyed by index file path, so tests with several data dirs work


@dataclass
class SearchResult:
    index_version: int
    embedder: str
    hits: list[Hit]
    # frame id -> (work id, seconds into the work), for every frame id in hits
    frames: dict[int, tuple[str, float]]
    # work id -> {id, owner, title, policy, kind}, only works still active
    works: dict[str, dict[str, Any]]


def check_embedder(state: dict[str, Any], embedder_id: str, *, frames: int) -> None:
    """Vectors from two CLIP models (or weights) are not comparable: refuse to mix them while the
    index holds any (`frames` > 0)."""
    if frames and state["embedder"] and state["embedder"] != embedder_id:
        raise Unavailable(
            f"the index holds CLIP embeddings from {state['embedder']}, but this process embeds "
            f"with {embedder_id}; set CLIPGATE_CLIP_MODEL / CLIPGATE_CLIP_CHECKPOINT to match, "
            "or run `clipgate index rebuild --reembed`"
        )


def sync(settings: Settings | None = None) -> FrameIndex:
    """The live index, at the database's current version."""
    settings = settings or get_settings()
    path = settings.index_dir / INDEX_FILE
    key = str(path)
    try:
        with db.connection(settings) as conn:
            state = store.index_state(conn)
    except psycopg.Error as e:
        raise db.unreachable(e) from e
    want = (int(state["version"]), state["epoch"])
    with _lock:
        current = _live.get(key)
        if current is not None and (current.version, current.epoch) == want:
            return current
        if path.exists():
            try:
                loaded = FrameIndex.load(path)
                if (loaded.version, loaded.epoch) == want:
                    _live[key] = loaded
                    return loaded
            except Exception as e:  # any damage to a cache file means: rebuild it
                log.warning("index file %s unreadable (%s); rebuilding from the database", path, e)
        _live[key] = _build(settings)
        return _live[key]


def apply_change(
    settings: Settings, version: int, *, added: FrameRows | None = None, removed: str | None = None
) -> None:
    """Apply a change this process just committed, if the live index is exactly one version
    behind; otherwise leave it, and the next sync reloads. The saved file is only a cache, so it is
    not rewritten for every change."""
    with _lock:
        key = str(settings.index_dir / INDEX_FILE)
        current = _live.get(key)
        if current is None or current.version != version - 1:
            return
        changed = current.copy()  # searches running now keep the old one, untouched
        if added is not None:
            changed.add(added)
        if removed is not None:
            changed.remove_work(removed)
        changed.version = version
        _live[key] = changed


def rebuild(settings: Settings | None = None) -> dict[str, Any]:
    """Rebuild the index from the database and save it. Returns what was built."""
    settings = settings or get_settings()
    t0 = time.perf_counter()
    with _lock:
        index = _build(settings)
        _live[str(settings.index_dir / INDEX_FILE)] = index
    return {
        "version": index.version,
        "works": len(index.work_ids),
        "frames": index.frames,
        "seconds": round(time.perf_counter() - t0, 3),
    }


def _build(settings: Settings) -> FrameIndex:
    embedder = embedder_for(settings)
    with db.connection(settings) as conn:
        # One snapshot: the frames and the version we tag them with must agree.
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        state = store.index_state(conn)
        check_embedder(state, embedder.info.id, frames=store.count_frames(conn))
        rows = store.all_active_frames(conn, dim=embedder.info.dim)
        feats = store.frame_features(conn, frame_ids=rows.ids.tolist())
    empty = np.zeros((0, 32), np.uint8)
    rows.descriptors = [feats[i].descriptors if i in feats else empty for i in rows.ids.tolist()]
    index = FrameIndex.for_rows(embedder.info.dim, int(state["version"]), embedder.info.id,
                                state["epoch"], rows)
    try:
        index.save(settings.index_dir / INDEX_FILE)
    except OSError as e:  # the file is only a cache: serve from memory, say so
        log.warning("could not save the index to %s: %s", settings.index_dir, e)
    log.info("index built at version %d: %d frames", index.version, index.frames)
    return index


def search(
    fp: Fingerprint, settings: Settings | None = None, *, disabled: Collection[str] = ()
) -> SearchResult:
    """Search every sampled frame of fp against the live index.

    disabled: signals switched off (any of SIGNALS): they neither fire nor propose candidates for
    the geometric check. For ablations in the quality benchmark; the gate switches none off.
    """
    settings = settings or get_settings()
    unknown = set(disabled) - set(SIGNALS)
    if unknown:
        raise ValueError(f"unknown signals {sorted(unknown)}; choose from {', '.join(SIGNALS)}")
    index = sync(settings)
    check_embedder({"embedder": index.embedder}, fp.embedder.id, frames=index.frames)
    n = len(fp)
    # Mirror-image PDQ codes ride along as extra query rows n..2n-1.
    pdq = fp.pdq if fp.pdq_mirrored is None else np.concatenate([fp.pdq, fp.pdq_mirrored])
    phash = fp.phash if fp.pdq_mirrored is None else np.concatenate([fp.phash, fp.phash])
    clip = fp.clip if fp.pdq_mirrored is None else np.concatenate([fp.clip, fp.clip])
    raw, near = index.search(
        clip, pdq, phash,
        clip_k=settings.clip_search_k,
        pdq_max_distance=settings.pdq_max_distance,
        phash_max_distance=settings.phash_max_distance,
        pdq_candidate_distance=settings.pdq_candidate_distance,
    )
    hits = counted_hits(raw, n, disabled)
    # Weak hash hits are confirmed in slots of their own. Then descriptor votes: PDQ near misses
    # of look-alike pictures (dark nebulae) would take every slot of a frame before the work its
    # keypoints actually agree with.
    settled = _settled(hits, fp.pdq_quality, settings)
    confirm: list[tuple[int, int, bool]] = []
    proposals: list[tuple[int, int, bool]] = []
    if "orb" not in disabled:
        confirm = _weak_hash_hits(hits, settled, settings)
        proposals += _voted(index, fp, settings)
    if "pdq" not in disabled:
        proposals += [(q % n, f, q >= n) for q, f in near]
    if "clip" not in disabled:
        proposals += _clip_nearest(hits, settings)
    with db.connection(settings) as conn:
        if "orb" not in disabled:
            hits += _geometric_hits(conn, fp, settled, confirm, proposals, settings)
        frames = {h.frame_id: index.meta[h.frame_id] for h in hits if h.frame_id in index.meta}
        works = store.active_works(conn, work_ids=sorted({w for w, _ in frames.values()}))
    return SearchResult(index.version, index.embedder, hits, frames, works)


def counted_hits(raw: list[Hit], n: int, disabled: Collection[str] = ()) -> list[Hit]:
    """The raw index hits that count, for a query of n frames whose mirror-image PDQ codes rode
    along as rows n..2n-1: signals switched off drop out, mirror rows count only for PDQ, and
    pHash counts only beside PDQ on the same pair (unless PDQ is off). pHash alone confuses
    dark, sparse pictures: the dev set's nebulae match at distance 2-4 where PDQ is 90+ bits
    apart."""
    pdq_seen = {(h.query % n, h.frame_id) for h in raw if h.signal == "pdq"}
    hits = []
    for h in raw:
        mirrored = h.query >= n
        if h.signal in disabled or mirrored and h.signal != "pdq":
            continue
        if h.signal == "phash" and "pdq" not in disabled and (h.query, h.frame_id) not in pdq_seen:
            continue
        hits.append(Hit(h.query % n, h.frame_id, h.signal, h.value, mirrored=mirrored))
    return hits


def _voted(index: FrameIndex, fp: Fingerprint, settings: Settings) -> list[tuple[int, int, bool]]:
    """Candidates from ORB descriptor votes, of the frames and (for a query) of their mirrors."""
    k = settings.orb_vote_descriptors
    views: list[tuple[list[Features], bool]] = [(fp.features, False)]
    if fp.features_mirrored is not None:
        views.append((fp.features_mirrored, True))
    out = []
    for feats, mirrored in views:
        found = index.vote([f.descriptors[:k] for f in feats],
                           max_distance=settings.orb_vote_max_distance,
                           min_votes=settings.orb_vote_min,
                           per_query=settings.orb_vote_candidates)
        out += [(q, f, mirrored, v) for q, f, v in found]
    out.sort(key=lambda c: -c[3])  # most votes first, whichever view they came from
    # At most orb_vote_candidates per clip frame over both views: the rest of the frame's
    # orb_max_candidates slots stay for PDQ near misses and CLIP's nearest (weak hash hits being
    # confirmed have slots of their own).
    return _per_frame([(q, f, m) for q, f, m, _ in out], settings.orb_vote_candidates)


def _weak_hash_hits(hits: list[Hit], settled: set[tuple[int, int]], settings: Settings
                    ) -> list[tuple[int, int, bool]]:
    """PDQ hits that do not settle their pair (_settled), closest first, at most
    orb_confirm_candidates per clip frame: the geometric check confirms them (a caption or a
    recolour moves PDQ 40-60 bits, and a match that rests on such a hash alone stays weak) and
    says where in the frame the copy sits."""
    weak = sorted((h for h in hits if h.signal == "pdq" and (h.query, h.frame_id) not in settled),
                  key=lambda h: h.value)
    return _per_frame([(h.query, h.frame_id, h.mirrored) for h in weak],
                      settings.orb_confirm_candidates)


def _settled(hits: list[Hit], quality: np.ndarray, settings: Settings) -> set[tuple[int, int]]:
    """(clip frame, work frame) pairs a close PDQ hit settles, so the geometric check can skip
    them. Not on a frame whose PDQ quality is too low for its hash to count (a dark nebula): there
    the hit is only a candidate."""
    return {(h.query, h.frame_id) for h in hits
            if h.signal == "pdq" and h.value <= settings.orb_confirm_pdq_distance
            and quality[h.query] >= MIN_HASH_QUALITY}


def _clip_nearest(hits: list[Hit], settings: Settings) -> list[tuple[int, int, bool]]:
    ranked = sorted((h for h in hits if h.signal == "clip"), key=lambda h: -h.value)
    return _per_frame([(h.query, h.frame_id, False) for h in ranked],
                      settings.orb_clip_candidates)


def _per_frame(candidates: list[tuple[int, int, bool]], limit: int) -> list[tuple[int, int, bool]]:
    """The first `limit` (clip frame, work frame, mirrored) candidates of each clip frame, in
    order."""
    taken: dict[int, int] = {}
    out = []
    for c in candidates:
        if taken.get(c[0], 0) < limit:
            taken[c[0]] = taken.get(c[0], 0) + 1
            out.append(c)
    return out


def _geometric_hits(
    conn: psycopg.Connection,
    fp: Fingerprint,
    settled: set[tuple[int, int]],
    confirm: list[tuple[int, int, bool]],
    proposals: list[tuple[int, int, bool]],
    settings: Settings,
) -> list[Hit]:
    """ORB + RANSAC on candidate (clip frame, work frame, mirrored) pairs not already settled
    (_settled): every weak hash hit to confirm, then the proposals in order (descriptor votes,
    PDQ near misses, CLIP's nearest), at most orb_max_candidates of those per clip frame. A
    mirrored candidate is checked with the features of the clip frame's mirror image."""
    per_query: dict[int, list[tuple[int, bool]]] = {}
    taken: dict[int, int] = {}  # clip frame -> proposals chosen
    for source, limited in ((confirm, False), (proposals, True)):
        for q, f, m in source:
            chosen = per_query.setdefault(q, [])
            if (q, f) in settled or (f, m) in chosen:
                continue
            if limited:
                if taken.get(q, 0) >= settings.orb_max_candidates:
                    continue
                taken[q] = taken.get(q, 0) + 1
            chosen.append((f, m))
    wanted = sorted({f for fs in per_query.values() for f, _ in fs})
    stored = store.frame_features(conn, frame_ids=wanted)
    out = []
    for q, chosen in per_query.items():
        for f, mirrored in chosen:
            if f not in stored or mirrored and fp.features_mirrored is None:
                continue
            query = fp.features_mirrored[q] if mirrored else fp.features[q]
            v = verify(query, stored[f], min_inliers=settings.orb_min_inliers)
            if v is not None:
                out.append(Hit(q, f, "orb", float(v.inliers), v.region, mirrored=mirrored))
    return out


def health(settings: Settings | None = None) -> dict[str, Any]:
    try:
        index = sync(settings)
        return {
            "ok": True,
            "version": index.version,
            "frames": index.frames,
            "works": len(index.work_ids),
            "embedder": index.embedder,
        }
    except Exception as e:  # health reports, never raises
        return {"ok": False, "error": str(e)}

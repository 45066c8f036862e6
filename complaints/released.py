"""Which release is this uploaded clip? By its C2PA manifest, or, when that was stripped, by its
frames' hashes against the index of released clips (release_frames, written at release time).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import compliance
import index
from clipgate import db
from clipgate.errors import NotFound, TooLarge
from clipgate.settings import Settings

log = logging.getLogger(__name__)

# Below this PDQ quality a frame is flat (one colour): its hashes match any other flat frame.
MIN_HASH_QUALITY = 40
# Share of the upload's informative frames that must match one release's frames.
MIN_FRAME_SHARE = 0.5
_CHUNK = 4000
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


@dataclass
class Identified:
    release: dict[str, Any]
    how: str  # "manifest" | "fingerprint"
    upload: dict[str, Any]  # name, sha256, size of the uploaded copy
    frames_matched: int | None = None


def identify_clip(path: Path, *, name: str | None = None,
                  settings: Settings) -> Identified:
    """The release an uploaded clip is a copy of. Raises BadInput for what is not media,
    TooLarge past the upload limit, NotFound when clipgate never released it."""
    path = Path(path)
    name = name or path.name
    if path.is_file() and path.stat().st_size > settings.max_upload_bytes:
        raise TooLarge(f"{name}: over the upload limit of {settings.max_upload_bytes} bytes")
    report = compliance.verify_clip(path, settings=settings)  # BadInput for non-media
    upload = {"name": name, "sha256": report["sha256"], "size": path.stat().st_size}
    # Only a manifest signed by clipgate's own signer is taken at its word.
    if report["release"] and report["state"] == "Trusted":
        release = compliance.get_release(report["release"]["release_id"], settings=settings)
        return Identified(release, "manifest", upload)
    fp = index.fingerprint_file(path, settings)
    found = find_by_frames(fp.pdq, fp.pdq_quality, fp.phash, settings=settings)
    if found is None:
        raise NotFound(f"{name}: this clip is not one clipgate released (it carries no clipgate "
                       "manifest and its frames match no released clip); give the release id "
                       "instead if you have it")
    release_id, frames = found
    release = compliance.get_release(release_id, settings=settings)
    return Identified(release, "fingerprint", upload, frames)


def find_by_frames(pdq: np.ndarray, pdq_quality: np.ndarray, phash: np.ndarray, *,
                   settings: Settings) -> tuple[str, int] | None:
    """(release id, matched frames) of the released clip whose frames best match these, or None.

    pdq: (q, 32) uint8, pdq_quality: (q,), phash: (q, 8) uint8. A query frame matches a release
    when one of its frames is within the gate's PDQ or pHash distance (flat frames never count).
    The release must match at least half the query's informative frames.
    """
    good = np.asarray(pdq_quality) >= MIN_HASH_QUALITY
    if not good.any():
        return None
    q_pdq, q_phash = np.asarray(pdq)[good], np.asarray(phash)[good]
    hits: dict[str, np.ndarray] = {}  # release id -> (q,) bool, query frames matched
    best_dist: dict[str, float] = {}
    with db.connection(settings) as conn, conn.cursor(name="release_frames_scan") as cur:
        cur.itersize = _CHUNK
        cur.execute("SELECT release_id, pdq, phash FROM release_frames "
                    "WHERE pdq_quality >= %s ORDER BY release_id", (MIN_HASH_QUALITY,))
        while rows := cur.fetchmany(_CHUNK):
            _score_chunk(rows, q_pdq, q_phash, settings, hits, best_dist)
    needed = max(min(settings.block_min_frames, len(q_pdq)),
                 int(np.ceil(MIN_FRAME_SHARE * len(q_pdq))))
    ranked = sorted(((int(h.sum()), -best_dist[r], r) for r, h in hits.items()), reverse=True)
    if not ranked or ranked[0][0] < needed:
        return None
    count, _, release_id = ranked[0]
    return release_id, count


def _score_chunk(rows: list[dict[str, Any]], q_pdq: np.ndarray, q_phash: np.ndarray,
                 settings: Settings, hits: dict[str, np.ndarray],
                 best_dist: dict[str, float]) -> None:
    r_pdq = np.frombuffer(b"".join(r["pdq"] for r in rows), np.uint8).reshape(-1, 32)
    r_phash = np.frombuffer(b"".join(r["phash"] for r in rows), np.uint8).reshape(-1, 8)
    d_pdq = _hamming(q_pdq, r_pdq)  # (q, n)
    d_phash = _hamming(q_phash, r_phash)
    near = (d_pdq <= settings.pdq_max_distance) | (d_phash <= settings.phash_max_distance)
    touched = np.flatnonzero(near.any(axis=0))
    if not len(touched):  # the common case: nothing in this chunk is near
        return
    ids = np.array([str(r["release_id"]) for r in rows])
    for rid in np.unique(ids[touched]):
        cols = ids == rid
        matched = near[:, cols].any(axis=1)
        if not matched.any():
            continue
        hits[rid] = hits.get(rid, np.zeros(len(q_pdq), bool)) | matched
        d = float(d_pdq[:, cols].min(axis=1)[matched].mean())
        best_dist[rid] = min(best_dist.get(rid, 1e9), d)


def _hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(q, k) x (n, k) packed bits -> (q, n) Hamming distances."""
    return _POPCOUNT[a[:, None, :] ^ b[None, :, :]].sum(axis=2, dtype=np.int32)

"""The released clips as an index of their own: which release is this copy whose manifest was
stripped? The same FrameIndex, signals, rules and matcher as the gate (index.match_index), over
the frames recorded at release time (release_frames) instead of the protected works.

Release frames are only ever added, so each process keeps its index and adds the frames released
since it last looked: a cheap query per lookup, never a rebuild.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

import index
from clipgate import db
from clipgate.settings import Settings
from compliance import store

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


def find_release(fp: index.Fingerprint, settings: Settings) -> FoundRelease | None:
    """The release whose frames best match the query fingerprint fp, or None. A frame matches a
    release when any signal's hit counts by the gate's rules; the release must match at least
    half the copy's informative frames (and two, when it has two)."""
    informative = np.asarray(fp.detail) >= index.MIN_HASH_QUALITY
    if not informative.any():
        return None
    released = _released_index(settings)
    found = index.match_index(released, fp, settings, features=None)
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
    if not ranked or ranked[0][0] < needed:
        return None
    count, conf, release_id = ranked[0]
    return FoundRelease(release_id, count, n, round(conf, 4))

"""The map from an indexed frame's id to (work id, seconds into the work), as numpy arrays.

A Python dict of int -> (str, float) costs about 250 bytes a frame: 2.5 GB at 10M frames, beside
an index of 600. Here the frames are sorted int64 ids with an int32 work number and float64
seconds (20 bytes a frame), and each work's id is kept once (as UTF-8 bytes); a lookup is a
binary search.

A version of the index (faiss_index.py) is its main indexes, a small delta of frames added since
and tombstones of frames removed since. Its map has the same layers: the main map (made at a
build or a compaction, never changed afterwards, so versions share it), the delta's frames, and
the tombstones. A change therefore costs the size of the delta, not a copy of every frame.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

import numpy as np


class FrameMap(Mapping[int, tuple[str, float]]):
    """frame id -> (work id, seconds): main arrays, plus delta frames, less dead frames.

    A FrameMap is never changed in place; the methods that change something return a new one.
    """

    def __init__(self, ids: np.ndarray, work: np.ndarray, t_s: np.ndarray, works: np.ndarray,
                 *, delta: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
                 dead: np.ndarray | None = None) -> None:
        """ids (n,) int64 sorted and unique; work (n,) int32 rows of works; t_s (n,) float64;
        works (w,) bytes (UTF-8 work ids), sorted and unique; delta: (ids, work ids as str,
        seconds) of frames added on top, not among the live main frames; dead: frame ids of the
        main arrays removed."""
        self._ids, self._work, self._t, self._works = ids, work, t_s, works
        if delta is None:
            delta = (np.zeros(0, np.int64), np.zeros(0, "U36"), np.zeros(0, np.float64))
        order = np.argsort(delta[0], kind="stable")
        self._d_ids = np.asarray(delta[0], np.int64)[order]
        self._d_work = np.asarray(delta[1]).astype(str)[order]
        self._d_t = np.asarray(delta[2], np.float64)[order]
        dead = np.unique(np.asarray(dead if dead is not None else [], np.int64))
        self._dead = dead[_member(dead, ids)]  # only main frames can be dead
        self._len = len(ids) - len(self._dead) + len(self._d_ids)
        self._work_count: int | None = None  # computed once: the map never changes

    # -- building ---------------------------------------------------------------------------
    @classmethod
    def empty(cls) -> FrameMap:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float64),
                   np.zeros(0, "S1"))

    @classmethod
    def of(cls, ids: np.ndarray, work_ids: np.ndarray, t_s: np.ndarray) -> FrameMap:
        """A map without layers from (n,) int64 ids, (n,) str work ids and (n,) seconds. An id
        given twice keeps its first entry."""
        ids = np.asarray(ids, np.int64)
        ids, first = np.unique(ids, return_index=True)
        works, work = np.unique(np.asarray(work_ids).astype(str)[first], return_inverse=True)
        return cls(ids, work.astype(np.int32), np.asarray(t_s, np.float64)[first],
                   _encode(works))

    @classmethod
    def from_arrays(cls, ids: np.ndarray, work: np.ndarray, t_s: np.ndarray, works: np.ndarray
                    ) -> FrameMap:
        """What arrays() gave (a saved index)."""
        works, work = np.asarray(works, "S"), np.asarray(work, np.int32)
        if len(works) > 1 and not (works[1:] > works[:-1]).all():  # lookups need them sorted
            works, again = np.unique(works, return_inverse=True)
            work = again[work].astype(np.int32)
        return cls(np.asarray(ids, np.int64), work, np.asarray(t_s, np.float64), works)

    def arrays(self) -> dict[str, np.ndarray]:
        """The folded map as arrays to save: ids, work (rows of works), t_s, works (bytes)."""
        m = self.folded()
        return {"ids": m._ids, "work": m._work, "t_s": m._t, "works": m._works}

    def layered(self, delta: tuple[np.ndarray, np.ndarray, np.ndarray], dead: np.ndarray
                ) -> FrameMap:
        """This map's main arrays with other layers: delta (ids, work ids, seconds) on top and
        the main frames in dead removed (the layers of this map are replaced, not added to)."""
        return FrameMap(self._ids, self._work, self._t, self._works, delta=delta, dead=dead)

    def folded(self) -> FrameMap:
        """The same content as main arrays only (what a compaction makes): O(n)."""
        if not len(self._dead) and not len(self._d_ids):
            return self
        keep = ~_member(self._ids, self._dead)
        d_works, d_work = np.unique(self._d_work, return_inverse=True)
        works = np.concatenate([self._works.astype("O"), _encode(d_works).astype("O")])
        work = np.concatenate([self._work[keep], d_work.astype(np.int32) + len(self._works)])
        # Drop works no frame refers to any more, and a work both in main and delta once.
        used, work = np.unique(work, return_inverse=True)
        works, again = np.unique(works[used].astype("S"), return_inverse=True)
        ids = np.concatenate([self._ids[keep], self._d_ids])
        t = np.concatenate([self._t[keep], self._d_t])
        order = np.argsort(ids, kind="stable")
        return FrameMap(ids[order], again[work].astype(np.int32)[order], t[order], works)

    def plus(self, ids: np.ndarray, work_ids: np.ndarray, t_s: np.ndarray) -> FrameMap:
        """This map with frames added, folded (frames already in, or given twice, keep their
        first entry)."""
        ids = np.asarray(ids, np.int64)
        unique, first = np.unique(ids, return_index=True)
        new = first[~self.contains(unique)]
        return self.folded().layered((ids[new], np.asarray(work_ids)[new], np.asarray(t_s)[new]),
                                     np.zeros(0, np.int64)).folded()

    def minus(self, ids: np.ndarray) -> FrameMap:
        """This map with these frames removed, folded."""
        base = self.folded()
        return base.layered((np.zeros(0, np.int64), np.zeros(0, "U36"), np.zeros(0)),
                            np.asarray(ids, np.int64)).folded()

    # -- reading ----------------------------------------------------------------------------
    def contains(self, ids: np.ndarray) -> np.ndarray:
        """(shape of ids) bool: which frame ids are in the map."""
        ids = np.asarray(ids, np.int64)
        return (_member(ids, self._ids) & ~_member(ids, self._dead)) | _member(ids, self._d_ids)

    def works_at(self, ids: np.ndarray) -> np.ndarray:
        """(shape of ids) str: each frame's work id, "" where the frame is not in the map. One
        binary search for the lot: a search asks this for every row's k nearest frames, and
        one lookup at a time (__getitem__) cost 20-40 ms a clip."""
        return self._at(ids)[0]

    def entries(self, ids: Iterable[int]) -> dict[int, tuple[str, float]]:
        """{frame id: (work id, seconds)} for those of ids in the map, looked up together."""
        ids = np.fromiter(ids, np.int64)
        works, t_s = self._at(ids)
        found = works != ""
        return dict(zip(ids[found].tolist(), zip(works[found].tolist(), t_s[found].tolist())))

    def _at(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ids = np.asarray(ids, np.int64)
        width = max(1, self._works.itemsize, self._d_work.dtype.itemsize // 4)  # chars
        works = np.full(ids.shape, "", dtype=f"U{width}")
        t_s = np.zeros(ids.shape, np.float64)
        if len(self._ids):
            at = np.minimum(np.searchsorted(self._ids, ids), len(self._ids) - 1)
            main = (self._ids[at] == ids) & ~_member(ids, self._dead)
            works[main] = np.char.decode(self._works[self._work[at[main]]], "utf-8")
            t_s[main] = self._t[at[main]]
        if len(self._d_ids):
            at = np.minimum(np.searchsorted(self._d_ids, ids), len(self._d_ids) - 1)
            delta = self._d_ids[at] == ids
            works[delta] = self._d_work[at[delta]]
            t_s[delta] = self._d_t[at[delta]]
        return works, t_s

    def frames_of(self, work_id: str) -> np.ndarray:
        """Sorted int64 ids of a work's frames in the map."""
        row = self._work_row(work_id)
        main = self._ids[self._work == row] if row is not None else np.zeros(0, np.int64)
        main = main[~_member(main, self._dead)]
        return np.union1d(main, self._d_ids[self._d_work == work_id])

    def work_ids(self) -> set[str]:
        """The works with at least one frame in the map."""
        main = {w.decode() for w in self._works[self._live_works()].tolist()}
        return main | set(self._d_work.tolist())

    def work_count(self) -> int:
        """How many works have a frame in the map (work_ids' size, without making a set of
        every work id: a million of them at 10M frames took seconds)."""
        if self._work_count is None:
            live = self._live_works()
            rows = [self._work_row(w) for w in np.unique(self._d_work).tolist()]
            self._work_count = len(live) + sum(1 for r in rows if r is None or not _has(live, r))
        return self._work_count

    def _work_row(self, work_id: str) -> int | None:
        """The row of works holding work_id (binary search: works are sorted), or None."""
        key = work_id.encode()
        at = int(np.searchsorted(self._works, key))
        return at if at < len(self._works) and self._works[at] == key else None

    def _live_works(self) -> np.ndarray:
        """Rows of works with a live frame in the main arrays: frames counted per work (O(n),
        no sort), less the dead ones."""
        counts = np.bincount(self._work, minlength=len(self._works))
        if len(self._dead):
            counts -= np.bincount(self._work[np.searchsorted(self._ids, self._dead)],
                                  minlength=len(self._works))
        return np.flatnonzero(counts)

    def __getitem__(self, frame_id: int) -> tuple[str, float]:
        i = int(frame_id)
        at = int(np.searchsorted(self._d_ids, i))
        if at < len(self._d_ids) and self._d_ids[at] == i:
            return str(self._d_work[at]), float(self._d_t[at])
        at = int(np.searchsorted(self._ids, i))
        if at < len(self._ids) and self._ids[at] == i and not _has(self._dead, i):
            return self._works[self._work[at]].decode(), float(self._t[at])
        raise KeyError(frame_id)

    def __contains__(self, frame_id: object) -> bool:
        if not isinstance(frame_id, (int, np.integer)):
            return False
        i = int(frame_id)
        return _has(self._d_ids, i) or (_has(self._ids, i) and not _has(self._dead, i))

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[int]:
        main = self._ids[~_member(self._ids, self._dead)] if len(self._dead) else self._ids
        yield from main.tolist()
        yield from self._d_ids.tolist()

    def nbytes(self) -> int:
        """Bytes its arrays hold (what it costs in memory, give or take the object)."""
        return sum(a.nbytes for a in (self._ids, self._work, self._t, self._works, self._d_ids,
                                      self._d_work, self._d_t, self._dead))


def _encode(works: np.ndarray) -> np.ndarray:
    """(w,) str -> (w,) bytes, sized to the longest id (a UUID: 36 bytes, not 144 as str)."""
    if not len(works):
        return np.zeros(0, "S1")
    return np.array([w.encode() for w in np.asarray(works).tolist()], dtype="S")


def _member(values: np.ndarray, sorted_ids: np.ndarray) -> np.ndarray:
    """(shape of values) bool: which values are in sorted_ids (binary search, no sort of values:
    values may be 10M main ids and sorted_ids a few tombstones, or the other way round)."""
    values = np.asarray(values, np.int64)
    if not len(sorted_ids) or not values.size:
        return np.zeros(values.shape, bool)
    at = np.minimum(np.searchsorted(sorted_ids, values), len(sorted_ids) - 1)
    return sorted_ids[at] == values


def _has(sorted_ids: np.ndarray, i: int) -> bool:
    at = int(np.searchsorted(sorted_ids, i))
    return at < len(sorted_ids) and int(sorted_ids[at]) == i

"""A file's fingerprint: its sampled frames, each described by every active signal, and (for a work)
its local features.

A query (a clip to check) keeps its sampled frames: crops of them are described only where the
whole frame settled nothing, and local features are extracted only for frames that have a
candidate to verify (`local`), so the gate's cost follows what there is to check.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from clipgate.errors import TooLarge
from clipgate.files import sha256_file
from clipgate.settings import Settings
from index import signals
from index.features import Features, extract, extract_region, extract_work
from index.media import MediaError, MediaInfo, iter_sampled_frames, probe
from index.signals import MIN_HASH_QUALITY, QueryRows, Signal


@dataclass
class Fingerprint:
    """Per sampled frame i: t_s[i] seconds; for each signal s, vectors[s][i] (float32 (d,)
    L2-normalised, or packed uint8 bits) and, for signals that rate frames, quality[s][i] 0..100.
    versions[s] names the vector space of vectors[s]."""

    path: Path
    info: MediaInfo
    sha256: str
    size_bytes: int
    t_s: np.ndarray
    vectors: dict[str, np.ndarray]
    quality: dict[str, np.ndarray]
    versions: dict[str, str]
    signals: dict[str, dict[str, Any]]  # what each signal says about itself (model, counts)
    features: list[Features]  # a work's ORB keypoints per frame (a query's: see `local`)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    # A query's searched rows per signal (whole frames and extra views), and its sampled frames.
    rows: dict[str, QueryRows] | None = None
    frames: list[np.ndarray] | None = None
    orb_features: int = 1000
    _local: dict[tuple, Features] = field(default_factory=dict, repr=False)
    _regions: dict[tuple, QueryRows | None] = field(default_factory=dict, repr=False)
    # Geometric checks done on this query: (index epoch, version, frame, work frame, mirrored,
    # crop, min inliers) -> the fit or None; see index.search._geometric_hits.
    verified: dict[tuple, Any] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.t_s)

    @property
    def detail(self) -> np.ndarray:
        """(n,) how much detail each frame has, as PDQ rates it (100 where PDQ is off)."""
        return self.quality.get("pdq", np.full(len(self), 100, np.int32))

    def local(self, i: int, *, mirrored: bool = False,
              box: tuple[float, float, float, float] | None = None) -> Features:
        """Frame i's ORB features (of its mirror image, or of one crop of it, in frame pixels),
        extracted on first use. Only for queries, which keep their frames."""
        key = (i, mirrored, box)
        if key not in self._local:
            if self.frames is None:
                raise ValueError("only a query keeps its frames for local features")
            t0 = time.perf_counter()
            rgb = self.frames[i]
            self._local[key] = (extract(rgb, mirrored=mirrored, n_features=self.orb_features)
                                if box is None else
                                extract_region(rgb, box, mirrored=mirrored,
                                               n_features=self.orb_features // 2))
            self.timings["features"] = self.timings.get("features", 0.0) + (
                time.perf_counter() - t0)
        return self._local[key]

    def regions(self, signal: Signal, which: list[int]) -> QueryRows | None:
        """The signal's rows for regions (crops) of the frames `which`, made on first use (the
        quality bench searches one fingerprint several ways)."""
        key = (signal.name, signal.version, tuple(which))
        if key not in self._regions:
            if self.frames is None:
                raise ValueError("only a query keeps its frames for regions")
            t0 = time.perf_counter()
            self._regions[key] = signal.regions(self.frames, which)
            spent = time.perf_counter() - t0
            # Part of describing the clip: counted in its signal's stage, and shown apart too.
            self.timings[signal.stage] = self.timings.get(signal.stage, 0.0) + spent
            self.timings["regions"] = self.timings.get("regions", 0.0) + spent
        return self._regions[key]

    def distinctive(self, min_inliers: int) -> bool:
        """Whether any frame has enough detail for a hash to count or keypoints to place a copy
        (a work whose every frame is flat could never match)."""
        return bool((self.detail >= MIN_HASH_QUALITY).any()) or any(
            len(f.descriptors) >= min_inliers for f in self.features)


def fingerprint_file(path: Path, settings: Settings, *, query: bool = False) -> Fingerprint:
    """Decode, sample and describe one image or video. Raises BadInput subclasses on bad media,
    Unavailable when a signal's model cannot be loaded.

    A query (a clip to check, not a work to register) is searched with extra rows (mirror-image
    hashes) and keeps its frames for crops and local features; a work gets its local features at
    once (they are stored for the geometric check of later queries)."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(f"{path}: no such file")
    size = path.stat().st_size
    if size > settings.max_upload_bytes:
        raise TooLarge(
            f"{path.name}: {size} bytes is over the limit of {settings.max_upload_bytes} "
            "(CLIPGATE_MAX_UPLOAD_BYTES)"
        )
    if size == 0:
        raise MediaError(f"{path.name}: the file is empty")
    active = signals.active(settings)  # loads models first: a broken one fails before decoding
    described = {name: s.describe() for name, s in active.items()}
    timings: dict[str, float] = {"sample": 0.0, "embed": 0.0, "hash": 0.0, "features": 0.0}

    t0 = time.perf_counter()
    info = probe(path, max_frame_pixels=settings.max_frame_pixels)
    frames = list(
        iter_sampled_frames(
            path,
            info,
            sample_fps=settings.sample_fps,
            shot_change_threshold=settings.shot_change_threshold,
            max_duration_s=settings.max_duration_s,
            timings=timings,
            skip_threshold=settings.sample_skip_threshold,
            max_gap_s=settings.sample_max_gap_s,
        )
    )
    timings["decode"] = time.perf_counter() - t0 - timings["sample"]
    if not frames:
        raise MediaError(f"{path.name}: no frames could be sampled")
    rgb = [f.rgb for f in frames]

    vectors: dict[str, np.ndarray] = {}
    quality: dict[str, np.ndarray] = {}
    rows: dict[str, QueryRows] = {}
    for name, signal in active.items():
        t0 = time.perf_counter()
        if query:
            computed, rows[name] = signal.compute_query(rgb)
        else:
            computed = signal.compute(rgb)
        timings[signal.stage] = timings.get(signal.stage, 0.0) + time.perf_counter() - t0
        vectors[name] = computed.vectors
        if computed.quality is not None:
            quality[name] = computed.quality

    features: list[Features] = []
    if not query:
        t0 = time.perf_counter()
        features = [extract_work(f) for f in rgb]
        timings["features"] = time.perf_counter() - t0

    return Fingerprint(
        path=path,
        info=info,
        sha256=sha256_file(path),
        size_bytes=size,
        t_s=np.array([f.t_s for f in frames], dtype=np.float64),
        vectors=vectors,
        quality=quality,
        versions={name: s.version for name, s in active.items()},
        signals=described,
        features=features,
        timings=timings,
        rows=rows if query else None,
        frames=rgb if query else None,
        orb_features=settings.orb_query_features,
    )

"""A file's fingerprint: its sampled frames, each with a CLIP embedding and perceptual hashes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from clipgate.errors import TooLarge
from clipgate.files import sha256_file
from clipgate.settings import Settings
from index.features import Features, extract_both, extract_work
from index.embedder import ClipEmbedder, EmbedderInfo, get_embedder
from index.media import MediaError, MediaInfo, iter_sampled_frames, probe
from index.signals import hash_frame


@dataclass
class Fingerprint:
    """Per sampled frame i: t_s[i] seconds, clip[i] (d,) float32 L2-normalised,
    pdq[i] (32,) uint8, pdq_quality[i], phash[i] (8,) uint8."""

    path: Path
    info: MediaInfo
    sha256: str
    size_bytes: int
    t_s: np.ndarray
    clip: np.ndarray
    pdq: np.ndarray
    pdq_quality: np.ndarray
    phash: np.ndarray
    embedder: EmbedderInfo
    features: list[Features]  # ORB keypoints per sampled frame
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage
    # A query's extras (None for a work): ORB of each frame's mirror image, and its PDQ (q, 32).
    features_mirrored: list[Features] | None = None
    pdq_mirrored: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.t_s)


def embedder_for(settings: Settings) -> ClipEmbedder:
    return get_embedder(
        settings.clip_model, settings.clip_checkpoint, settings.clip_device, settings.clip_batch_size
    )


def fingerprint_file(path: Path, settings: Settings, *, query: bool = False) -> Fingerprint:
    """Decode, sample, embed and hash one image or video. Raises BadInput subclasses on bad media.

    A query (a clip to check, not a work to register) also gets what finds mirrored and small
    copies: mirror-image hashes and features, and more keypoints per frame."""
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
    embedder = embedder_for(settings)
    timings: dict[str, float] = {"sample": 0.0}

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

    t0 = time.perf_counter()
    clip = embedder.embed([f.rgb for f in frames])
    timings["embed"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    hashes = [hash_frame(f.rgb, mirrored=query) for f in frames]
    timings["hash"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    mirrored = None
    if query:
        both = [extract_both(f.rgb, n_features=settings.orb_query_features) for f in frames]
        features, mirrored = [b[0] for b in both], [b[1] for b in both]
    else:
        features = [extract_work(f.rgb) for f in frames]
    timings["features"] = time.perf_counter() - t0

    return Fingerprint(
        path=path,
        info=info,
        sha256=sha256_file(path),
        size_bytes=size,
        t_s=np.array([f.t_s for f in frames], dtype=np.float64),
        clip=clip,
        pdq=np.frombuffer(b"".join(h.pdq for h in hashes), np.uint8).reshape(-1, 32),
        pdq_quality=np.array([h.pdq_quality for h in hashes], dtype=np.int32),
        phash=np.frombuffer(b"".join(h.phash for h in hashes), np.uint8).reshape(-1, 8),
        embedder=embedder.info,
        features=features,
        timings=timings,
        features_mirrored=mirrored,
        pdq_mirrored=(np.frombuffer(b"".join(h.pdq_mirrored for h in hashes), np.uint8)
                      .reshape(-1, 32) if query else None),
    )

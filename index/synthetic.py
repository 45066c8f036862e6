"""Synthetic catalogues for benchmarks: works whose frames carry vectors of every active signal
(float signals: vectors shaped like real ones, see `VectorModel`; hashes: random bits) and no
local features.

They stand in for a large catalogue where registering real media would take days: what they
measure is the index's cost (loading, memory, search, recall of a compressed or distributed
index, how changes propagate), not matching quality; no real clip matches them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from clipgate import db
from clipgate.settings import Settings, get_settings
from index import live, signals, store

log = logging.getLogger(__name__)

OWNER = "synthetic"
# Pictures that ship in scikit-image (no download), described with a few augmentations each.
_PICTURES = ("astronaut", "camera", "cat", "coffee", "coins", "horse", "hubble_deep_field",
             "immunohistochemistry", "moon", "page", "rocket", "text", "colorwheel", "logo",
             "retina", "brick", "grass", "gravel")


@dataclass
class VectorModel:
    """Vectors that look like a float signal's real ones: the mean and principal directions
    (with their spreads) of the signal's vectors of real pictures and their augmentations.

    A work's centre is drawn from that Gaussian (so catalogues have real vectors' anisotropy: a
    few directions carry most of the variance, which is what compressed indexes exploit or trip
    on), plus a little isotropic noise; its frames scatter around the centre by `spread` of the
    same structure, as a shot's frames do. Random unit vectors, by contrast, are the worst case
    for product quantisation and unlike any real descriptor."""

    mean: np.ndarray  # (d,)
    basis: np.ndarray  # (r, d) principal directions, scaled by their standard deviations
    iso: float  # isotropic noise per dimension
    spread: float = 0.35

    @property
    def dim(self) -> int:
        return len(self.mean)

    def sample(self, n: int, rng: np.random.Generator, *, frames_per_work: int = 10
               ) -> np.ndarray:
        """(n, d) float32 L2-normalised vectors, frames_per_work consecutive rows per work."""
        works = -(-n // frames_per_work)
        centres = self._draw(works, rng)
        frames = np.repeat(centres, frames_per_work, axis=0)[:n]
        frames += self.spread * self._draw(n, rng, centred=True)
        frames /= np.linalg.norm(frames, axis=1, keepdims=True)
        return frames.astype(np.float32)

    def _draw(self, n: int, rng: np.random.Generator, *, centred: bool = False) -> np.ndarray:
        z = rng.standard_normal((n, len(self.basis)), dtype=np.float32)
        out = z @ self.basis + self.iso * rng.standard_normal((n, self.dim), dtype=np.float32)
        return out if centred else out + self.mean

    @classmethod
    def of_random(cls, dim: int) -> VectorModel:
        """Random directions: for a signal that cannot describe real pictures here."""
        return cls(np.zeros(dim, np.float32), np.zeros((0, dim), np.float32),
                   float(1 / np.sqrt(dim)), spread=0.35)


def vector_model(signal: Any, settings: Settings) -> VectorModel:
    """The VectorModel of a float signal, from its vectors of scikit-image's pictures and their
    augmentations (cached in settings.cache_dir by the signal's version); a random model where
    the signal cannot compute them."""
    key = hashlib.sha256(signal.version.encode()).hexdigest()[:16]
    path = settings.cache_dir / f"synthetic-{signal.name}-{key}.npy"
    try:
        real = np.load(path) if path.exists() else None
        if real is None:
            real = signal.compute(_augmented_pictures()).vectors.astype(np.float32)
            path.parent.mkdir(parents=True, exist_ok=True)
            # Written whole under a name of this process's, then renamed: another process
            # reading the cache meanwhile sees no file or all of it.
            tmp = path.with_suffix(f".{os.getpid()}.tmp.npy")
            np.save(tmp, real)
            tmp.replace(path)
    except Exception as e:  # a benchmark still runs, on the worst case
        log.warning("no real %s vectors for synthetic catalogues (%s); random ones", signal.name, e)
        return VectorModel.of_random(signal.dim)
    mean = real.mean(axis=0)
    _, s, vt = np.linalg.svd(real - mean, full_matrices=False)
    sd = s / np.sqrt(max(1, len(real) - 1))
    # What the few real pictures cannot span: a floor at the smallest spread they show.
    iso = float(sd[min(len(sd) - 1, 64)])
    return VectorModel(mean.astype(np.float32), (vt * sd[:, None]).astype(np.float32), iso)


def _augmented_pictures() -> list[np.ndarray]:
    """scikit-image's pictures as RGB, each also cropped, mirrored, darkened and tinted."""
    import skimage.data  # only synthetic catalogues need it

    out = []
    for name in _PICTURES:
        try:
            img = np.asarray(getattr(skimage.data, name)())
        except Exception:  # a picture this scikit-image lacks or would download
            continue
        img = np.stack([img] * 3, axis=-1) if img.ndim == 2 else img[..., :3]
        h, w = img.shape[:2]
        out += [img, img[:, ::-1], img[h // 4:3 * h // 4, w // 4:3 * w // 4],
                img[: h * 2 // 3, w // 3:], (img * 0.6).astype(np.uint8),
                np.clip(img.astype(np.int16) + [30, 0, -30], 0, 255).astype(np.uint8),
                img[::2, ::2], img[h // 8:, : w * 7 // 8]]
    return [np.ascontiguousarray(i, np.uint8) for i in out]


def seed_synthetic(
    settings: Settings | None = None, *, frames: int, frames_per_work: int = 10, seed: int = 0,
    chunk: int = 20_000, progress: Callable[[int, int], None] = lambda done, total: None,
) -> dict[str, Any]:
    """Add synthetic works until the catalogue holds at least `frames` frames, `chunk` frames a
    transaction. Each chunk moves the index version as a wholesale change ("rebuild" in the
    change log): processes rebuild rather than apply it. Returns the frames before and after."""
    settings = settings or get_settings()
    active = signals.active(settings)
    versions = {n: s.version for n, s in active.items()}
    with db.connection(settings) as conn:
        before = store.count_frames(conn)
    done = before
    rng = np.random.default_rng(seed + before)
    models = {n: vector_model(s, settings) for n, s in active.items() if s.kind == "float"}
    while done < frames:
        n = min(chunk, frames - done)
        n_works = -(-n // frames_per_work)
        per_work = np.full(n_works, frames_per_work)
        per_work[-1] = n - frames_per_work * (n_works - 1)
        works = [{"id": uuid.uuid4(), "owner": OWNER, "title": f"synthetic work {done + i}",
                  "policy": "block", "kind": "video", "filename": "synthetic.mp4",
                  "sha256": uuid.uuid4().hex * 2, "size_bytes": 0} for i in range(n_works)]
        t_s = np.concatenate([np.arange(k, dtype=np.float64) for k in per_work])
        vectors = {}
        for name, signal in active.items():
            if signal.kind == "float":
                v = models[name].sample(n, rng, frames_per_work=frames_per_work)
            else:
                v = rng.integers(0, 256, (n, signal.dim // 8), dtype=np.uint8)
            vectors[name] = (signal.version, v)
        with db.connection(settings) as conn:
            store.index_state(conn, lock=True)
            live.check_versions(conn, versions)
            done += store.insert_synthetic(conn, works=works, t_s=t_s, per_work=per_work,
                                           vectors=vectors)
            live.record_versions(conn, versions)
            store.bump_version(conn, kind="rebuild", keep=settings.index_change_log_keep)
        progress(done, frames)
    if done > before:
        with db.connection(settings) as conn:
            store.analyse(conn)
    return {"frames_before": before, "frames": done}

"""A background of unprotected pictures, for score normalisation (as the SSCD paper and the 2021
Image Similarity Challenge do): a query row's similarity to its nearest background picture is
subtracted from its scores, so a generic-looking frame (a gradient, a star field) needs a closer
match than a distinctive one.

The pictures are of two kinds, each taken whole, mirrored and in crops, sharp and blurred:
- photos that ship inside installed wheels (scikit-image, scikit-learn);
- generic frames made here, of the kinds a generated clip is full of and no one owns: smooth
  colour noise at several scales (clouds, bokeh, textures), gradients (skies, fades) and sparse
  star fields on black.
Any pictures in `CLIPGATE_SSCD_BACKGROUND_DIR` (an operator's own unprotected material, such as a
sample of the generator's past outputs) join them. Their vectors are cached per signal version
in the cache directory.

A background picture that is itself a protected work would cancel that work's matches, so the
index leaves out every picture (all its views) with a view close to a work frame
(`EXCLUDE_NEAR`): a resized copy is 0.9 or more, while generic frames of one kind (two smooth
noise fields) stay under 0.85.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageFilter

if TYPE_CHECKING:
    from index.signals.base import Signal

log = logging.getLogger(__name__)

# Bump when the pictures or views below change: the cached vectors are their result.
VERSION = 3
IMAGE_EXT = {".jpg", ".jpeg", ".png", ".webp"}
# A background picture with a view this close (raw cosine) to a work frame is left out.
EXCLUDE_NEAR = 0.88
VIEWS = 14  # rows per picture: views() of it sharp, then blurred (an out-of-focus shot)
_SKIMAGE = ("astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "coffee.png",
            "coins.png", "color.png", "grass.png", "gravel.png", "horse.png",
            "hubble_deep_field.jpg", "ihc.png", "moon.png", "motorcycle_left.png", "page.png",
            "retina.jpg", "rocket.jpg", "text.png", "clock_motion.png", "microaneurysms.png")
_memo: dict[str, np.ndarray] = {}
_lock = threading.Lock()


def _package_dir(name: str) -> Path | None:
    """Where an installed package's folder is, without importing it: only its data files are
    wanted, and importing scikit-learn took 2-3 s of a process's first check or lookup."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def installed_pictures() -> list[Path]:
    """Photos that ship inside installed wheels."""
    out: list[Path] = []
    skimage = _package_dir("skimage")
    if skimage is not None:
        out += [skimage / "data" / n for n in _SKIMAGE if (skimage / "data" / n).is_file()]
    sklearn = _package_dir("sklearn")
    if sklearn is not None:
        out += sorted((sklearn / "datasets" / "images").glob("*.jpg"))
    return out


def pictures(extra_dir: Path | None) -> list[Path]:
    out = installed_pictures()
    if extra_dir is not None and extra_dir.is_dir():
        out += sorted(p for p in extra_dir.rglob("*") if p.suffix.lower() in IMAGE_EXT)
    return out


def views(rgb: np.ndarray) -> list[np.ndarray]:
    """A picture whole, mirrored, and in five crops (four corners at 60%, the centre at 50%)."""
    h, w = rgb.shape[:2]
    out = [rgb, np.ascontiguousarray(rgb[:, ::-1])]
    ch, cw = int(h * 0.6), int(w * 0.6)
    for y, x in ((0, 0), (0, w - cw), (h - ch, 0), (h - ch, w - cw)):
        out.append(np.ascontiguousarray(rgb[y:y + ch, x:x + cw]))
    out.append(np.ascontiguousarray(rgb[h // 4:h // 4 + h // 2, w // 4:w // 4 + w // 2]))
    return out


def generic_frames(seed: int = 0) -> list[np.ndarray]:
    """640x360 frames no one owns: smooth colour noise at six scales, gradients, star fields."""
    rng = np.random.default_rng(seed)
    out = []
    for cells in ((4, 3), (8, 5), (12, 7), (17, 10), (32, 18), (64, 36)):
        for _ in range(4):
            small = rng.integers(0, 255, (cells[1], cells[0], 3), dtype=np.uint8)
            out.append(np.asarray(Image.fromarray(small).resize((640, 360), Image.BICUBIC)))
    y, x = np.mgrid[0:360, 0:640].astype(np.float32)
    for _ in range(8):
        a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        angle = rng.uniform(0, np.pi)
        t = (np.cos(angle) * x / 640 + np.sin(angle) * y / 360)
        t = (t - t.min()) / max(1e-6, t.max() - t.min())
        out.append((a + (b - a) * t[..., None]).astype(np.uint8))
    for _ in range(6):
        sky = np.zeros((360, 640, 3), np.uint8)
        n = int(rng.integers(40, 400))
        ys, xs = rng.integers(0, 360, n), rng.integers(0, 640, n)
        sky[ys, xs] = rng.integers(120, 255, (n, 1))
        out.append(np.asarray(Image.fromarray(sky).filter(ImageFilter.GaussianBlur(0.8))))
    return out


def vectors(signal: Signal, *, cache_dir: Path, extra_dir: Path | None = None) -> np.ndarray:
    """(b, d) float32 background vectors of a float signal, VIEWS consecutive rows per picture,
    from the cache when it has them."""
    paths = pictures(extra_dir)
    key = hashlib.sha256(
        f"{VERSION}|{signal.version}|".encode()
        + "|".join(f"{p}:{p.stat().st_size}" for p in paths).encode()).hexdigest()[:20]
    with _lock:
        if key in _memo:
            return _memo[key]
        cached = cache_dir / "background" / f"{signal.name}-{key}.npy"
        try:
            out = np.load(cached)
        except (OSError, ValueError):
            out = _compute(signal, paths)
            try:
                cached.parent.mkdir(parents=True, exist_ok=True)
                # Its own temporary name: processes sharing the cache (API and workers, or test
                # workers) may compute the same vectors at once.
                tmp = cached.with_suffix(f".{os.getpid()}.tmp.npy")
                np.save(tmp, out)
                tmp.replace(cached)
            except OSError as e:  # only a cache: say so and carry on
                log.warning("could not cache background vectors in %s: %s", cached.parent, e)
        _memo[key] = out
        return out


def _compute(signal: Signal, paths: list[Path]) -> np.ndarray:
    pictures: list[Image.Image] = []
    for p in paths:
        try:
            with Image.open(p) as im:
                im = im.convert("RGB")
                im.thumbnail((1024, 1024))
                pictures.append(im)
        except OSError as e:
            log.warning("background picture %s unreadable: %s", p, e)
    pictures += [Image.fromarray(rgb) for rgb in generic_frames()]
    frames: list[np.ndarray] = []
    for im in pictures:
        blurred = im.filter(ImageFilter.GaussianBlur(max(im.size) / 60))
        frames += views(np.asarray(im)) + views(np.asarray(blurred))
    log.info("computing %d %s background vectors", len(frames), signal.name)
    return signal.compute(frames).vectors.astype(np.float32)


def kept(background: np.ndarray, near: np.ndarray) -> np.ndarray:
    """The background rows to keep: every picture's VIEWS rows, unless one of them is within
    EXCLUDE_NEAR of a work frame. near: (b,) each row's highest cosine to any work frame."""
    groups = np.asarray(near).reshape(-1, VIEWS).max(axis=1) < EXCLUDE_NEAR
    return np.repeat(groups, VIEWS)

"""Media made in the tests: images of real photos from scikit-image, videos encoded with PyAV.

Encoding is a large share of the suite's time and many tests make the very same clip, so each
process keeps what it made: a photo once decoded and resized, and each encoded video by the hash
of its frames. A test always gets its own copy of the file (it may damage or delete it).
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import shutil
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

import av
import numpy as np
from PIL import Image
from skimage import data as skdata

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")


def photo(name: str, size: tuple[int, int] = (640, 360)) -> np.ndarray:
    """A real photo from scikit-image, resized to size (w, h), as RGB uint8 (the caller's own copy)."""
    return _photo(name, tuple(size)).copy()


@functools.lru_cache(maxsize=64)
def _photo(name: str, size: tuple[int, int]) -> np.ndarray:
    img = Image.fromarray(getattr(skdata, name)()).convert("RGB").resize(size, Image.BICUBIC)
    arr = np.asarray(img)
    arr.setflags(write=False)
    return arr


@functools.lru_cache(maxsize=1)
def _cache_dir() -> Path:
    """This process's store of encoded videos, removed when it exits."""
    d = Path(tempfile.mkdtemp(prefix="clipgate-test-media-"))
    atexit.register(shutil.rmtree, d, True)
    return d


def write_image(path: Path, rgb: np.ndarray, fmt: str | None = None) -> Path:
    Image.fromarray(rgb).save(path, format=fmt)
    return path


def noise_frame(seed: int, size: tuple[int, int] = (640, 360)) -> np.ndarray:
    """Smooth coloured noise: textured, and unlike any photo."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (size[1] // 40 + 1, size[0] // 40 + 1, 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(small).resize(size, Image.BICUBIC))


def write_video(
    path: Path,
    frames: Iterable[np.ndarray] | Callable[[int], np.ndarray],
    *,
    fps: int = 12,
    n: int | None = None,
    codec: str = "libx264",
) -> Path:
    """Encode RGB frames (or frame_fn(i) for i < n) as an H.264 MP4 (or another container by
    suffix). The same frames, rate, codec and container again are copied from this process's
    first encoding of them."""
    if callable(frames):
        frames = (frames(i) for i in range(n or 0))
    frames = [np.ascontiguousarray(f) for f in frames]
    digest = hashlib.blake2b(f"{fps}|{codec}|{Path(path).suffix.lower()}".encode())
    for rgb in frames:
        digest.update(f"{rgb.shape}{rgb.dtype}".encode())
        digest.update(rgb.data)
    cached = _cache_dir() / f"{digest.hexdigest()}{Path(path).suffix.lower()}"
    if cached.exists():
        shutil.copyfile(cached, path)
        return path
    _encode(path, frames, fps=fps, codec=codec)
    shutil.copyfile(path, cached)
    return path


def video_of(path: Path, key: tuple, make_frames: Callable[[], Iterable[np.ndarray]], *,
             fps: int = 12) -> Path:
    """write_video(path, make_frames()), with the frames made only the first time this process
    asks for key (what describes them: the same key must mean the same frames)."""
    cached = _keyed.get((key, fps, Path(path).suffix.lower()))
    if cached is None or not cached.exists():
        write_video(path, make_frames(), fps=fps)
        cached = _cache_dir() / f"key-{len(_keyed)}{Path(path).suffix.lower()}"
        shutil.copyfile(path, cached)
        _keyed[(key, fps, Path(path).suffix.lower())] = cached
        return path
    shutil.copyfile(cached, path)
    return path


_keyed: dict[tuple, Path] = {}


def _encode(path: Path, frames: list[np.ndarray], *, fps: int, codec: str) -> None:
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p"
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def pan(rgb: np.ndarray, i: int, n: int, max_crop: float = 0.06) -> np.ndarray:
    """Frame i of n of a slow zoom into rgb, cropping up to max_crop of each side's length."""
    h, w = rgb.shape[:2]
    c = max_crop * i / max(1, n - 1)
    dx, dy = int(w * c / 2), int(h * c / 2)
    crop = rgb[dy : h - dy, dx : w - dx]
    return np.asarray(Image.fromarray(crop).resize((w, h), Image.BILINEAR))

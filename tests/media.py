"""Media made in the tests: images of real photos from scikit-image, videos encoded with PyAV."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

import av
import numpy as np
from PIL import Image
from skimage import data as skdata

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")


def photo(name: str, size: tuple[int, int] = (640, 360)) -> np.ndarray:
    """A real photo from scikit-image, resized to size (w, h), as RGB uint8."""
    img = Image.fromarray(getattr(skdata, name)()).convert("RGB").resize(size, Image.BICUBIC)
    return np.asarray(img)


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
    """Encode RGB frames (or frame_fn(i) for i < n) as an H.264 MP4 (or another container by suffix)."""
    if callable(frames):
        frames = (frames(i) for i in range(n or 0))
    frames = iter(frames)
    first = next(frames)
    h, w = first.shape[:2]
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p"
        for rgb in [first, *frames]:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def pan(rgb: np.ndarray, i: int, n: int, max_crop: float = 0.06) -> np.ndarray:
    """Frame i of n of a slow zoom into rgb, cropping up to max_crop of each side's length."""
    h, w = rgb.shape[:2]
    c = max_crop * i / max(1, n - 1)
    dx, dy = int(w * c / 2), int(h * c / 2)
    crop = rgb[dy : h - dy, dx : w - dx]
    return np.asarray(Image.fromarray(crop).resize((w, h), Image.BILINEAR))

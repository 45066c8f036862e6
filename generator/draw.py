"""Small vectorised drawing helpers shared by the procedural shots and the protected sample short.

Frames here are float32 (height, width, 3) in [0, 255] until the last step converts to uint8.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image


@lru_cache(maxsize=64)
def glow_sprite(radius: int) -> np.ndarray:
    """A soft round glow, (2r+1, 2r+1) float32 peaking at 1.0 in the centre."""
    axis = np.arange(-radius, radius + 1, dtype=np.float32) / max(radius, 1)
    d2 = axis[None, :] ** 2 + axis[:, None] ** 2
    return np.exp(-4.0 * d2).astype(np.float32)


@lru_cache(maxsize=16)
def sparkle_sprite(radius: int) -> np.ndarray:
    """A four-pointed star: thin bright cross plus a small core, (2r+1, 2r+1) float32 in [0, 1]."""
    axis = np.arange(-radius, radius + 1, dtype=np.float32)
    ax, ay = np.abs(axis[None, :]), np.abs(axis[:, None])
    ray = np.exp(-(np.minimum(ax, ay) ** 2) / 0.8) * np.clip(1.0 - np.maximum(ax, ay) / (radius + 1), 0, 1)
    core = np.exp(-(ax**2 + ay**2) / 3.0)
    return np.clip(ray + core, 0, 1).astype(np.float32)


def add_sprite(frame: np.ndarray, sprite: np.ndarray, cx: float, cy: float, colour: np.ndarray) -> None:
    """Additively blend sprite * colour (RGB, 0-255 scale) centred at (cx, cy), clipped to the frame. In place."""
    h, w = frame.shape[:2]
    r = sprite.shape[0] // 2
    x0, y0 = int(round(cx)) - r, int(round(cy)) - r
    fx0, fy0 = max(x0, 0), max(y0, 0)
    fx1, fy1 = min(x0 + sprite.shape[1], w), min(y0 + sprite.shape[0], h)
    if fx0 >= fx1 or fy0 >= fy1:
        return
    patch = sprite[fy0 - y0 : fy1 - y0, fx0 - x0 : fx1 - x0]
    frame[fy0:fy1, fx0:fx1] += patch[:, :, None] * colour[None, None, :]


def vignette(height: int, width: int, strength: float = 0.35) -> np.ndarray:
    """Multiplier (height, width, 1) float32: 1.0 in the centre, 1 - strength in the corners."""
    y = np.linspace(-1, 1, height, dtype=np.float32)[:, None]
    x = np.linspace(-1, 1, width, dtype=np.float32)[None, :]
    return (1.0 - strength * np.clip((x**2 + y**2) / 2.0, 0, 1))[:, :, None]


def to_uint8(frame: np.ndarray) -> np.ndarray:
    return np.clip(frame, 0, 255).astype(np.uint8)


def crop_resize(image: Image.Image, box: tuple[float, float, float, float], size: tuple[int, int]) -> np.ndarray:
    """Resample the sub-pixel box (left, top, right, bottom) of image to size (width, height); RGB float32."""
    return np.asarray(image.resize(size, Image.Resampling.BILINEAR, box=box), dtype=np.float32)


def limit_size(image: Image.Image, width: int, height: int) -> Image.Image:
    """Shrink image (keeping aspect) so it is at most twice (width, height): resampling stays cheap."""
    scale = min(1.0, 2 * width / image.width, 2 * height / image.height)
    if scale >= 1.0:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def smoothstep(u: float) -> float:
    u = min(max(u, 0.0), 1.0)
    return u * u * (3 - 2 * u)

"""The protected animated short: a still photo brought to life, rendered the same way every time.

A slow push-in that pans across the photo, a night grade, a headlight sweep crossing the frame and
dust drifting upward. frame(t) is a pure function of t, so any frame rate can sample it and the
procedural backend's "memorised" excerpt is pixel-for-pixel what the protected video shows.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from generator import draw

SECONDS = 6.0
FPS = 24
WIDTH, HEIGHT = 640, 360
FADE_S = 0.5
_MOTES = 48


class AnimatedShort:
    """Renders frames of the short made from one still; frame(t) -> (HEIGHT, WIDTH, 3) uint8 RGB."""

    def __init__(self, still: Image.Image, seed: int = 0) -> None:
        self._still = _night_grade(draw.limit_size(still.convert("RGB"), WIDTH, HEIGHT))
        rng = np.random.default_rng(seed)
        self._mote_xy = rng.random((_MOTES, 2)) * (WIDTH, HEIGHT)
        self._mote_speed = rng.uniform(6, 28, _MOTES)  # pixels per second, upward
        self._mote_sway = rng.uniform(0, 2 * math.pi, _MOTES)
        self._mote_radius = rng.integers(2, 7, _MOTES)
        self._mote_colour = np.array([255, 200, 140], np.float32) * rng.uniform(0.25, 0.7, (_MOTES, 1))
        yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
        angle = math.radians(-20)
        # Projection onto the sweep's direction: the headlight band is a Gaussian in this coordinate.
        self._sweep_axis = xx * math.cos(angle) + yy * math.sin(angle)
        self._vignette = draw.vignette(HEIGHT, WIDTH, 0.55)

    def frame(self, t: float) -> np.ndarray:
        t = min(max(t, 0.0), SECONDS)
        out = draw.crop_resize(self._still, self._camera_box(t), (WIDTH, HEIGHT))
        self._add_sweep(out, t)
        self._add_motes(out, t)
        out *= self._vignette
        if t < FADE_S:
            out *= t / FADE_S
        return draw.to_uint8(out)

    def _camera_box(self, t: float) -> tuple[float, float, float, float]:
        """Push in from the full 16:9 crop to 80% of it while panning left to right."""
        u = draw.smoothstep(t / SECONDS)
        sw, sh = self._still.size
        full_w = min(sw, sh * WIDTH / HEIGHT)
        w = full_w * (1.0 - 0.2 * u)
        h = w * HEIGHT / WIDTH
        cx = w / 2 + (0.15 + 0.7 * u) * (sw - w)
        cy = h / 2 + (0.55 - 0.1 * u) * (sh - h)
        return (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)

    def _add_sweep(self, out: np.ndarray, t: float) -> None:
        lo, hi = float(self._sweep_axis.min()), float(self._sweep_axis.max())
        centre = lo - 150 + (hi - lo + 300) * ((t / 2.5) % 1.0)
        band = np.exp(-(((self._sweep_axis - centre) / 70.0) ** 2))
        out += band[:, :, None] * np.array([90, 70, 40], np.float32)

    def _add_motes(self, out: np.ndarray, t: float) -> None:
        xs = self._mote_xy[:, 0] + 12 * np.sin(self._mote_sway + 0.8 * t)
        ys = (self._mote_xy[:, 1] - self._mote_speed * t) % HEIGHT
        for x, y, r, c in zip(xs, ys, self._mote_radius, self._mote_colour, strict=True):
            draw.add_sprite(out, draw.glow_sprite(int(r)), x, y, c)


def _night_grade(image: Image.Image) -> Image.Image:
    """Teal shadows, warm highlights, a little darker: the short's look, distinct from the still."""
    a = np.asarray(image, dtype=np.float32) / 255.0
    luma = a @ np.array([0.299, 0.587, 0.114], np.float32)
    shadow = (1.0 - luma)[:, :, None] * np.array([-0.06, 0.02, 0.10], np.float32)
    highlight = luma[:, :, None] * np.array([0.08, 0.02, -0.06], np.float32)
    graded = np.clip(a * 0.85 + shadow + highlight, 0, 1) ** 1.1
    return Image.fromarray((graded * 255).astype(np.uint8))

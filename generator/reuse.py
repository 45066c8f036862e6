"""Memorised shots: how a model that overfit its training data regurgitates a sample work.

A still comes back large (stretched to fill the frame, as models trained at one aspect ratio do),
with a slow Ken Burns pan and zoom of at most ~10% crop and a light overlay (a caption band and a
few sparkles, under 15% of the frame). A video comes back as an excerpt of the protected short,
rescaled to the output size, with a small corner sparkle.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from generator import draw, short
from generator.samples import SampleWork, animated_short

MAX_CROP = 0.10  # fraction of each side the Ken Burns window may lose
CAPTION_BAND = 0.08  # fraction of the frame height


class ImageReuse:
    """A sample still, panned and zoomed over the shot, with a caption band and sparkles."""

    def __init__(self, work: SampleWork, rng: np.random.Generator, width: int, height: int, frames: int, fps: int):
        self.w, self.h, self.frames, self.fps = width, height, frames, fps
        self.image = draw.limit_size(work.load_image(), width, height)
        tight = 1.0 - rng.uniform(0.04, 0.07)
        self.zoom = (1.0, tight) if rng.random() < 0.5 else (tight, 1.0)
        self.pan = rng.uniform(0.3, 0.7, (2, 2))  # (start, end) x (x, y), as fractions of the free margin
        self.band_top = height - max(2, round(CAPTION_BAND * height))
        self.caption = _caption_glyphs(rng, width, height - self.band_top)
        self.sparkles = [
            (rng.uniform(0.05, 0.95) * width, rng.uniform(0.05, 0.8) * height, rng.uniform(0, 2 * math.pi))
            for _ in range(int(rng.integers(3, 7)))
        ]
        self.sparkle = draw.sparkle_sprite(max(3, round(height / 60)))

    def frame(self, i: int) -> np.ndarray:
        s = draw.smoothstep(i / max(self.frames - 1, 1))
        f = self.zoom[0] + (self.zoom[1] - self.zoom[0]) * s
        iw, ih = self.image.size
        bw, bh = iw * f, ih * f
        ux, uy = self.pan[0] + (self.pan[1] - self.pan[0]) * s
        left, top = ux * (iw - bw), uy * (ih - bh)
        out = draw.crop_resize(self.image, (left, top, left + bw, top + bh), (self.w, self.h))
        band = out[self.band_top :]
        band *= 0.55
        band += self.caption
        t = i / self.fps
        white = np.array([255, 250, 235], np.float32)
        for x, y, phase in self.sparkles:
            draw.add_sprite(out, self.sparkle, x, y, white * (0.5 + 0.5 * math.sin(3 * t + phase)))
        return draw.to_uint8(out)


class VideoReuse:
    """frames of the protected short starting at start_s, rescaled, with a sparkle in one corner."""

    def __init__(self, work: SampleWork, width: int, height: int, frames: int, fps: int):
        self.film = animated_short(work)
        self.w, self.h, self.fps = width, height, fps
        self.start_s = max(0.0, (short.SECONDS - frames / fps) / 2)  # the middle of the short
        self.sparkle = draw.sparkle_sprite(max(3, round(height / 45)))

    def frame(self, i: int) -> np.ndarray:
        t = self.start_s + i / self.fps
        image = self.film.frame(t)
        if (self.w, self.h) != (short.WIDTH, short.HEIGHT):
            image = np.asarray(Image.fromarray(image).resize((self.w, self.h), Image.Resampling.BILINEAR))
        out = image.astype(np.float32)
        glow = 0.6 + 0.4 * math.sin(4 * i / self.fps)
        draw.add_sprite(out, self.sparkle, self.w * 0.93, self.h * 0.1, np.array([255, 245, 220], np.float32) * glow)
        return draw.to_uint8(out)


def _caption_glyphs(rng: np.random.Generator, width: int, band_h: int) -> np.ndarray:
    """Light word-shaped bars on one line: a caption's look without any text. (band_h, width, 3) float32."""
    glyphs = np.zeros((band_h, width, 3), np.float32)
    y0, y1 = round(band_h * 0.35), max(round(band_h * 0.65), round(band_h * 0.35) + 1)
    x, end = round(width * 0.05), round(width * rng.uniform(0.45, 0.8))
    while x < end:
        word = int(rng.integers(3, 10)) * max(2, width // 160)
        glyphs[y0:y1, x : min(x + word, end)] = 200
        x += word + max(3, width // 80)
    return glyphs

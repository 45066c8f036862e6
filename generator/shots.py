"""Original (non-memorised) shots: abstract animated textures coloured by a palette from the prompt.

Each style is one class: __init__ precomputes what it can (noise textures, coordinate grids,
particles), frame(i) renders frame i of the shot as (height, width, 3) uint8 RGB with a few
whole-array numpy operations, no per-pixel Python.
"""

from __future__ import annotations

import colorsys
import hashlib
import math
import re

import numpy as np
from PIL import Image

from generator import draw

STYLES = ("flow", "waves", "bokeh", "rings")

_STOPWORDS = frozenset(
    "a an and the of with in on at to from into over under by for is are its it this that as".split()
)
# Words that pick a palette outright; any other word hashes to one colour.
_NAMED: dict[str, tuple[tuple[int, int, int], ...]] = {
    "red": ((200, 30, 40),), "orange": ((245, 140, 30),), "yellow": ((245, 215, 60),),
    "green": ((50, 170, 80),), "blue": ((40, 90, 220),), "purple": ((130, 60, 190),),
    "pink": ((240, 120, 180),), "white": ((235, 235, 240),), "black": ((15, 15, 20),),
    "gold": ((220, 170, 50),), "silver": ((190, 195, 205),),
    "ocean": ((5, 30, 70), (0, 110, 160), (90, 200, 210)),
    "sea": ((5, 40, 80), (20, 120, 150), (170, 225, 220)),
    "sunset": ((40, 20, 70), (200, 60, 90), (250, 150, 60)),
    "forest": ((10, 40, 20), (40, 110, 50), (150, 190, 90)),
    "fire": ((40, 5, 5), (200, 40, 10), (255, 170, 40)),
    "night": ((5, 5, 25), (30, 30, 90), (120, 100, 200)),
    "neon": ((20, 10, 40), (255, 40, 200), (40, 240, 255)),
    "snow": ((120, 140, 170), (200, 215, 235), (245, 248, 255)),
    "desert": ((120, 70, 30), (210, 160, 90), (245, 220, 170)),
    "sky": ((40, 90, 170), (90, 150, 230), (190, 220, 250)),
    "storm": ((20, 25, 35), (80, 90, 110), (200, 210, 230)),
    "city": ((20, 20, 30), (240, 180, 60), (60, 80, 120)),
    "autumn": ((90, 30, 10), (200, 90, 20), (230, 180, 60)),
}


def prompt_palette(prompt: str) -> np.ndarray:
    """Colour stops (n, 3) float32 in 0-255 from the prompt's words; same prompt, same palette."""
    stops: list[tuple[float, float, float]] = []
    for word in re.findall(r"[a-z0-9]+", prompt.lower()):
        if word in _STOPWORDS:
            continue
        stops.extend(_NAMED.get(word) or (_word_colour(word),))
        if len(stops) >= 5:
            break
    if not stops:
        stops.append(_word_colour(prompt))
    while len(stops) < 3:  # too few words: add hue-rotated companions
        h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in stops[-1]))
        stops.append(tuple(255 * c for c in colorsys.hsv_to_rgb((h + 0.31) % 1, s, max(v, 0.6))))
    stops.append(tuple(0.15 * c for c in stops[0]))  # a dark stop keeps contrast in every palette
    return np.array(stops[:6], dtype=np.float32)


def palette_lut(stops: np.ndarray, shift: int = 0) -> np.ndarray:
    """A cyclic 256-entry lookup table (256, 3) float32, cosine-interpolated between stops, rolled by shift."""
    n = len(stops)
    pos = np.arange(256, dtype=np.float32) * n / 256
    lo = np.floor(pos).astype(int)
    frac = (1 - np.cos((pos - lo) * math.pi)) / 2
    lut = stops[lo % n] * (1 - frac)[:, None] + stops[(lo + 1) % n] * frac[:, None]
    return np.roll(lut, shift, axis=0).astype(np.float32)


_SHADE_LEVELS, _SHADE_MAX = 128, 1.25


class ShadedPalette:
    """A palette LUT pre-multiplied by 128 brightness levels, so colouring and shading a frame is one
    uint8 gather instead of float arithmetic over (height, width, 3)."""

    def __init__(self, lut: np.ndarray):
        gains = np.linspace(0, _SHADE_MAX, _SHADE_LEVELS, dtype=np.float32)
        self.table = draw.to_uint8(gains[:, None, None] * lut[None, :, :]).reshape(-1, 3)

    def __call__(self, idx: np.ndarray, shade: np.ndarray) -> np.ndarray:
        """idx (h, w) int palette positions (taken mod 256), shade (h, w) brightness in [0, 1.25] -> RGB uint8."""
        level = np.minimum((shade * ((_SHADE_LEVELS - 1) / _SHADE_MAX)).astype(np.int32), _SHADE_LEVELS - 1)
        np.maximum(level, 0, out=level)
        return np.take(self.table, (level << 8) | (idx & 255), axis=0)  # much faster than fancy indexing


def _word_colour(word: str) -> tuple[float, float, float]:
    d = hashlib.sha256(word.encode("utf-8")).digest()
    rgb = colorsys.hsv_to_rgb(d[0] / 255, 0.45 + 0.45 * d[1] / 255, 0.5 + 0.5 * d[2] / 255)
    return tuple(255 * c for c in rgb)


def _half_grid(width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates (in full-resolution pixels) of a half-resolution grid: x (1, w/2), y (h/2, 1)."""
    x = (np.arange((width + 1) // 2, dtype=np.float32) * 2 + 0.5)[None, :]
    y = (np.arange((height + 1) // 2, dtype=np.float32) * 2 + 0.5)[:, None]
    return x, y


def _upsample(field: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear upsampling of a smooth half-resolution field to (height, width) float32.

    Smooth fields lose nothing visible at half resolution and cost a quarter of the arithmetic.
    """
    image = Image.fromarray(np.ascontiguousarray(field, dtype=np.float32))
    return np.asarray(image.resize((width, height), Image.Resampling.BILINEAR))


def _ping_pong(x: float, span: int) -> int:
    """Map a growing offset onto 0..span and back, so long shots never run off a finite texture."""
    if span <= 0:
        return 0
    x = abs(x) % (2 * span)
    return int(x if x <= span else 2 * span - x)


class Flow:
    """Fractal value noise whose octaves drift in different directions, through a cycling palette."""

    def __init__(self, rng: np.random.Generator, lut: np.ndarray, width: int, height: int, frames: int, fps: int):
        self.paint, self.w, self.h = ShadedPalette(lut), width, height
        self.vig = draw.vignette(height, width, 0.4)[:, :, 0]
        self.octaves = []
        for o in range(4):
            speed = rng.uniform(10, 30) * (1 + 0.5 * o) / fps  # pixels per frame
            angle = rng.uniform(0, 2 * math.pi)
            vx, vy = speed * math.cos(angle), speed * math.sin(angle)
            mx, my = (min(math.ceil(abs(v) * frames) + 1, 480) for v in (vx, vy))
            cell = max(width, height) / (2.5 * 2**o)
            grid = rng.random((math.ceil((height + my) / cell) + 2, math.ceil((width + mx) / cell) + 2))
            tex = Image.fromarray(grid.astype(np.float32)).resize(
                (width + mx, height + my), Image.Resampling.BICUBIC
            )
            self.octaves.append((np.asarray(tex, np.float32), vx, vy, mx, my, 0.55**o))
        self.norm = sum(o[5] for o in self.octaves)
        self.bands = rng.uniform(1.0, 2.0) * 256
        self.cycle = rng.uniform(10, 30) / fps * float(rng.choice((-1, 1)))

    def frame(self, i: int) -> np.ndarray:
        acc = np.zeros((self.h, self.w), np.float32)
        for tex, vx, vy, mx, my, weight in self.octaves:
            x0, y0 = _ping_pong(vx * i, mx - 1), _ping_pong(vy * i, my - 1)
            acc += weight * tex[y0 : y0 + self.h, x0 : x0 + self.w]
        field = np.clip((acc / self.norm - 0.5) * 2.2 + 0.5, 0, 1)
        idx = (field * self.bands + self.cycle * i).astype(np.int32)
        return self.paint(idx, (0.45 + 0.65 * field) * self.vig)


class Waves:
    """Interference of circular waves from sources wandering on Lissajous paths."""

    def __init__(self, rng: np.random.Generator, lut: np.ndarray, width: int, height: int, frames: int, fps: int):
        self.paint, self.w, self.h, self.fps = ShadedPalette(lut), width, height, fps
        self.x, self.y = _half_grid(width, height)
        self.vig = draw.vignette(height, width, 0.45)[:, :, 0]
        k = int(rng.integers(2, 4))
        self.sources = [
            (rng.uniform(0.05, 0.25, 2), rng.uniform(0, 2 * math.pi, 2), rng.uniform(0.08, 0.2) * max(width, height),
             rng.uniform(1.0, 2.5))
            for _ in range(k)
        ]  # (path rates rad/s, path phases, wavelength px, wave speed rad/s)
        self.bands = rng.uniform(0.6, 1.2) * 256
        self.cycle = rng.uniform(8, 24) / fps

    def frame(self, i: int) -> np.ndarray:
        t = i / self.fps
        field = np.zeros((self.y.shape[0], self.x.shape[1]), np.float32)
        for rates, phases, wavelength, speed in self.sources:
            cx = self.w * (0.5 + 0.3 * math.sin(rates[0] * t + phases[0]))
            cy = self.h * (0.5 + 0.3 * math.sin(rates[1] * t + phases[1]))
            dist = np.sqrt((self.x - cx) ** 2 + (self.y - cy) ** 2)
            field += np.sin(dist * (2 * math.pi / wavelength) - speed * t)
        field = _upsample(field / len(self.sources), self.w, self.h)
        idx = ((field * 0.5 + 0.5) * self.bands + self.cycle * i).astype(np.int32)
        return self.paint(idx, (0.7 + 0.3 * field) * self.vig)


class Bokeh:
    """Soft glowing discs drifting over a slowly shifting vertical gradient."""

    def __init__(self, rng: np.random.Generator, lut: np.ndarray, width: int, height: int, frames: int, fps: int):
        self.lut, self.w, self.h, self.fps = lut, width, height, fps
        n = 36
        scale = min(width, height) / 360
        self.radius = (rng.uniform(8, 46, n) * scale).astype(int) + 1
        self.xy = rng.random((n, 2)) * (width, height)
        angle = rng.uniform(0, 2 * math.pi) + rng.normal(0, 0.5, n)  # a shared drift with spread
        speed = rng.uniform(10, 50, n) * scale
        self.v = np.stack([np.cos(angle), np.sin(angle)], 1) * speed[:, None]
        self.colour = lut[rng.integers(0, 256, n)] * rng.uniform(0.35, 0.9, (n, 1))
        self.twinkle = rng.uniform(0, 2 * math.pi, n)
        self.row = np.linspace(0, 90, height, dtype=np.float32)
        self.offset = rng.uniform(0, 256)
        self.drift = rng.uniform(8, 24) / fps

    def frame(self, i: int) -> np.ndarray:
        t = i / self.fps
        idx = (self.row + self.offset + self.drift * i).astype(np.int32) & 255
        out = np.repeat((self.lut[idx] * 0.45)[:, None, :], self.w, axis=1)
        span = np.array([self.w, self.h], np.float32)
        pos = (self.xy + self.v * t) % (span + 2 * self.radius[:, None]) - self.radius[:, None]
        glow = 0.75 + 0.25 * np.sin(1.7 * t + self.twinkle)
        for (x, y), r, c, g in zip(pos, self.radius, self.colour, glow, strict=True):
            draw.add_sprite(out, draw.glow_sprite(int(r)), x, y, c * g)
        return draw.to_uint8(out)


class Rings:
    """A kaleidoscope: n-fold angular petals times expanding rings around a fixed centre."""

    def __init__(self, rng: np.random.Generator, lut: np.ndarray, width: int, height: int, frames: int, fps: int):
        self.paint, self.w, self.h, self.fps = ShadedPalette(lut), width, height, fps
        cx, cy = width * rng.uniform(0.35, 0.65), height * rng.uniform(0.35, 0.65)
        x, y = _half_grid(width, height)
        x, y = x - cx, y - cy
        self.theta = np.arctan2(y, x).astype(np.float32)
        self.r = np.sqrt(x**2 + y**2).astype(np.float32)
        self.petals = int(rng.integers(3, 9))
        self.spin = rng.uniform(0.15, 0.5) * float(rng.choice((-1, 1)))
        self.ring_k = 2 * math.pi / (rng.uniform(0.08, 0.2) * max(width, height))
        self.ring_w = rng.uniform(0.8, 2.5)
        self.vig = draw.vignette(height, width, 0.5)[:, :, 0]
        self.cycle = rng.uniform(10, 30) / fps

    def frame(self, i: int) -> np.ndarray:
        t = i / self.fps
        petals = np.sin(self.petals * self.theta + self.spin * t + 0.004 * self.r * math.sin(0.7 * t))
        rings = np.cos(self.r * self.ring_k - self.ring_w * t)
        field = _upsample(0.5 * petals + 0.5 * rings, self.w, self.h)
        rings = _upsample(rings.astype(np.float32), self.w, self.h)
        idx = ((field * 0.5 + 0.5) * 256 + self.cycle * i).astype(np.int32)
        return self.paint(idx, (0.65 + 0.35 * rings) * self.vig)


_STYLE_CLASSES = {"flow": Flow, "waves": Waves, "bokeh": Bokeh, "rings": Rings}


def original_shot(style: str, rng: np.random.Generator, lut: np.ndarray, width: int, height: int,
                  frames: int, fps: int):
    """The renderer for one original shot of `frames` frames; call .frame(i) for i in range(frames)."""
    return _STYLE_CLASSES[style](rng, lut, width, height, frames, fps)

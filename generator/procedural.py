"""The CPU stand-in backend: a prompt becomes 1-3 abstract shots with hard cuts, or, when the prompt
names a sample work, a clip that regurgitates it the way a model that memorised its data would.

Deterministic in (prompt, seed): the seed drives every random choice, the palette comes from the
prompt's words, and frames stream straight into the encoder.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from generator import encode, short
from generator.base import GeneratedClip, GenerationRequest, prompt_sha256
from generator.reuse import ImageReuse, VideoReuse
from generator.samples import SampleWork, sample_works
from generator.shots import STYLES, original_shot, palette_lut, prompt_palette

MIN_REUSE_S = 2.0
MAX_IMAGE_REUSE_S = 3.0
MIN_ORIGINAL_S = 1.0  # shortest original shot when the clip has several
MIN_GAP_S = 0.5  # shortest original stretch placed around a reused shot


@dataclass(frozen=True)
class Shot:
    """Frames [start, end) of the clip: original (work None, with a style) or a reuse of work."""

    start: int
    end: int
    work: SampleWork | None = None
    style: str | None = None

    @property
    def frames(self) -> int:
        return self.end - self.start


class ProceduralGenerator:
    """Backend "procedural": vectorised numpy shots encoded to H.264 on the CPU."""

    name = "clipgate-procedural"
    version = "0.1.0"
    device = "cpu"

    def generate(self, request: GenerationRequest, out_path: Path) -> GeneratedClip:
        """Render request to an MP4 at out_path (replaced atomically) and describe it."""
        started = time.perf_counter()
        seed = request.effective_seed()
        rng = np.random.default_rng(seed)
        works = memorised_works(request.prompt)
        plan = plan_shots(request.frames, request.fps, works, rng)
        frames = _render(plan, request, prompt_palette(request.prompt), seed)
        count = encode.write_mp4(frames, Path(out_path), fps=request.fps)
        fps = request.fps
        return GeneratedClip(
            path=Path(out_path),
            model=self.name,
            version=self.version,
            prompt_sha256=prompt_sha256(request.prompt),
            duration_s=count / fps,
            width=request.width,
            height=request.height,
            fps=fps,
            frames=count,
            device=self.device,
            wall_s=time.perf_counter() - started,
            gpu_seconds=0.0,
            seed=seed,
            memorised=[w.key for w in works],
            reuse_spans=[(s.work.key, s.start / fps, s.end / fps) for s in plan if s.work is not None],
        )


def memorised_works(prompt: str) -> list[SampleWork]:
    """Sample works whose aliases appear in prompt as whole words (case-insensitive), in prompt order."""
    tokens = re.findall(r"[a-z0-9]+", prompt.lower())
    found: list[tuple[int, int, SampleWork]] = []
    for order, work in enumerate(sample_works()):
        positions = [p for alias in work.aliases if (p := _find_phrase(tokens, alias.split())) >= 0]
        if positions:
            found.append((min(positions), order, work))
    return [work for _, _, work in sorted(found, key=lambda f: f[:2])]


def _find_phrase(tokens: list[str], phrase: list[str]) -> int:
    n = len(phrase)
    return next((i for i in range(len(tokens) - n + 1) if tokens[i : i + n] == phrase), -1)


def plan_shots(n_frames: int, fps: int, works: list[SampleWork], rng: np.random.Generator) -> list[Shot]:
    """Cut n_frames into shots. Each work gets one contiguous reused shot of >= 2 s (when the clip is
    long enough), spread evenly between original stretches, so a single work sits mid-clip."""
    styles = [str(s) for s in rng.permutation(STYLES)]
    if not works:
        return _original_shots(0, n_frames, fps, rng, styles)
    lengths = [_reuse_frames(w, n_frames / fps, len(works), fps) for w in works]
    if sum(lengths) > n_frames:  # too short to give each 2 s: share the clip between them
        lengths = [n_frames // len(works)] * len(works)
        lengths[-1] += n_frames - sum(lengths)
    rest = n_frames - sum(lengths)
    gaps = [0] * (len(works) + 1)
    if rest >= len(gaps) * math.ceil(MIN_GAP_S * fps):
        gaps = [rest // len(gaps)] * len(gaps)
        gaps[len(gaps) // 2] += rest - sum(gaps)
    else:
        gaps[-1] = rest
    plan: list[Shot] = []
    cursor = 0
    for gap, work, length in zip(gaps, [*works, None], [*lengths, 0], strict=True):
        if gap:
            plan.append(Shot(cursor, cursor + gap, style=styles[len(plan) % len(styles)]))
            cursor += gap
        if work is not None and length:
            plan.append(Shot(cursor, cursor + length, work=work))
            cursor += length
    return plan


def _reuse_frames(work: SampleWork, seconds: float, n_works: int, fps: int) -> int:
    if work.kind == "video":
        return min(math.ceil(MIN_REUSE_S * fps), math.floor(short.SECONDS * fps))
    share = min(max(0.5 * seconds / n_works, MIN_REUSE_S), MAX_IMAGE_REUSE_S)
    return math.ceil(share * fps)


def _original_shots(start: int, n_frames: int, fps: int, rng: np.random.Generator, styles: list[str]) -> list[Shot]:
    """1-3 original shots with hard cuts, each at least MIN_ORIGINAL_S long."""
    min_len = max(1, round(MIN_ORIGINAL_S * fps))
    count = int(rng.integers(1, min(3, max(1, n_frames // min_len)) + 1))
    spare = n_frames - count * min_len
    extra = np.floor(rng.dirichlet(np.ones(count)) * spare).astype(int) if spare > 0 else np.zeros(count, int)
    lengths = [min_len + int(e) for e in extra] if spare > 0 else [n_frames // count] * count
    lengths[-1] += n_frames - sum(lengths)
    shots, cursor = [], start
    for k, length in enumerate(lengths):
        shots.append(Shot(cursor, cursor + length, style=styles[k % len(styles)]))
        cursor += length
    return shots


def _render(plan: list[Shot], request: GenerationRequest, stops: np.ndarray, seed: int) -> Iterator[np.ndarray]:
    w, h, fps = request.width, request.height, request.fps
    for index, shot in enumerate(plan):
        # Each shot has its own stream, so changing one shot's length never reshuffles another's look.
        rng = np.random.default_rng([seed, index])
        if shot.work is None:
            lut = palette_lut(stops, int(rng.integers(0, 256)))
            renderer = original_shot(shot.style, rng, lut, w, h, shot.frames, fps)
        elif shot.work.kind == "video":
            renderer = VideoReuse(shot.work, w, h, shot.frames, fps)
        else:
            renderer = ImageReuse(shot.work, rng, w, h, shot.frames, fps)
        for i in range(shot.frames):
            yield renderer.frame(i)

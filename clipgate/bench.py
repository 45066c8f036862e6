"""`clipgate bench perf`: the gate's cost, stage by stage, on a 10 s 640x360 clip.

It runs against its own data directory and embedded database (never the operator's), holding at
least `works` protected works, kept between runs so only the first run pays for registering them.
The figure of merit is the ratio of the gate's whole time to (decode + embed) of the same clip:
everything the gate adds on top of looking at the frames once.
"""

from __future__ import annotations

import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from clipgate.settings import Settings

# "features" is ORB extraction; "search" includes the geometric check of candidates.
STAGES = (
    "decode", "sample", "embed", "hash", "features", "search", "aggregate", "decide", "record", "sign",
)


def synthetic_work(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A distinct textured image: smooth colour noise with a few random shapes on it."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (size[1] // 24 + 2, size[0] // 24 + 2, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize(size, Image.BICUBIC)
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = rng.integers(0, size[0]), rng.integers(0, size[1])
        x1, y1 = x0 + rng.integers(10, 120), y0 + rng.integers(10, 120)
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x1, y1], fill=colour)
    return img


def ensure_works(settings: Settings, count: int, progress: Callable[[int, int], None]) -> int:
    """Register synthetic works until the bench index holds at least `count`."""
    import index

    have = len(index.list_works(settings=settings))
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(have, count):
            path = Path(tmp) / f"work{i}.png"
            synthetic_work(10_000 + i).save(path)
            index.register_work(path, owner="bench", title=f"synthetic work {i}", policy="block",
                                settings=settings)
            progress(i + 1, count)
    return max(have, count)


def run_perf(
    settings: Settings,
    *,
    works: int = 1000,
    runs: int = 3,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> dict[str, Any]:
    import index
    from compliance import release_clip
    from generator import GenerationRequest, get_generator

    t0 = time.perf_counter()
    total_works = ensure_works(settings, works, progress)
    setup_s = time.perf_counter() - t0
    index.rebuild(settings)

    with tempfile.TemporaryDirectory() as tmp:
        clip = get_generator("procedural").generate(
            GenerationRequest("a quiet abstract evening over rolling hills", seconds=10.0,
                              width=640, height=360, fps=24),
            Path(tmp) / "bench.mp4",
        )
        ident = clip.identity()
        release_clip(clip.path, generator=ident, source="bench", settings=settings)  # warm-up
        per_run: list[dict[str, float]] = []
        verdicts = []
        for _ in range(runs):
            outcome = release_clip(clip.path, generator=ident, source="bench", settings=settings)
            verdicts.append(outcome.check.verdict)
            per_run.append({s: outcome.check.timings.get(s, 0.0) for s in STAGES})
            if outcome.release:
                Path(outcome.release["path"]).unlink(missing_ok=True)  # keep the bench dir small
        frames_sampled = outcome.check.frames_sampled
        clip_weights = outcome.check.clip["weights"]

    stages = {s: round(statistics.median(r[s] for r in per_run), 4) for s in STAGES}
    total = round(sum(stages.values()), 4)
    base = stages["decode"] + stages["embed"]
    health = index.health(settings)
    return {
        "clip": {"seconds": 10.0, "width": 640, "height": 360, "fps": 24,
                 "frames_sampled": frames_sampled},
        "index": {"works": total_works, "frames": health.get("frames")},
        "clip_model": settings.clip_model,
        "clip_weights": clip_weights,
        "device": settings.clip_device,
        "runs": runs,
        "verdicts": verdicts,
        "stages_s": stages,
        "total_s": total,
        "ratio_total_to_decode_plus_embed": round(total / base, 3) if base else None,
        "target_ratio": 1.3,
        "setup_s": round(setup_s, 1),
        "machine": f"{platform.machine()} {platform.processor() or ''} cores={_cores()}".strip(),
    }


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

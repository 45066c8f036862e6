"""`clipgate bench perf`: the gate's cost, stage by stage, on a 10 s 640x360 clip, and what the
issue's GPU targets are measured by: frames per second through the whole gate, the embedding's
frames per second, index search latency (p50, p99) and the gate's GPU-seconds over the
generation's for the same clip.

It runs against its own data directory and embedded database (never the operator's), holding at
least `works` protected works, kept between runs so only the first run pays for registering them.
`--device cpu` and `--device cuda` print the same report; on the CPU the GPU-seconds are 0.
"""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

import index
from clipgate.settings import Settings
from compliance import release_clip
from generator import GenerationRequest, get_generator

# "embed" is the learned descriptors (SSCD, its crops included; CLIP where it runs), "features" ORB
# extraction (for a query: only of frames with a candidate), "search" the index searches and the
# geometric check of candidates.
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
    seconds: float = 10.0,
    backend: str = "procedural",
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> dict[str, Any]:
    index.use_device(settings.clip_device)
    t0 = time.perf_counter()
    total_works = ensure_works(settings, works, progress)
    setup_s = time.perf_counter() - t0
    index.rebuild(settings)

    with tempfile.TemporaryDirectory() as tmp:
        request = GenerationRequest("a quiet abstract evening over rolling hills", seconds=seconds,
                                    width=640, height=360, fps=24)
        clip = get_generator(backend, settings).generate(request, Path(tmp) / "bench.mp4")
        ident = clip.identity()
        release_clip(clip.path, generator=ident, source="bench", settings=settings)  # warm-up
        per_run: list[dict[str, float]] = []
        walls: list[float] = []
        verdicts = []
        for _ in range(runs):
            w0 = time.perf_counter()
            outcome = release_clip(clip.path, generator=ident, source="bench", settings=settings)
            walls.append(time.perf_counter() - w0)
            verdicts.append(outcome.check.verdict)
            per_run.append({s: outcome.check.timings.get(s, 0.0) for s in STAGES})
            if outcome.release:
                Path(outcome.release["path"]).unlink(missing_ok=True)  # keep the bench dir small
        frames_sampled = outcome.check.frames_sampled
        signals = outcome.check.signals
        clip_mode = outcome.check.clip

    stages = {s: round(statistics.median(r[s] for r in per_run), 4) for s in STAGES}
    total = round(sum(stages.values()), 4)
    wall = statistics.median(walls)
    base = stages["decode"] + stages["embed"]
    health = index.health(settings)
    on_gpu = index.search_backend() != "cpu"
    gate_gpu_s = round(wall, 4) if on_gpu else 0.0  # the GPU is held for the whole gate
    return {
        "clip": {"seconds": seconds, "width": 640, "height": 360, "fps": 24,
                 "frames": clip.frames, "frames_sampled": frames_sampled, "backend": backend},
        "index": {"works": total_works, "frames": health.get("frames")},
        "signals": signals,
        "clip_mode": clip_mode,
        "device": settings.clip_device,
        "search_backend": index.search_backend(),
        "runs": runs,
        "verdicts": verdicts,
        "stages_s": stages,
        "total_s": total,
        "gate_wall_s": round(wall, 4),
        "gate_frames_per_s": round(clip.frames / wall, 1),
        "gate_sampled_frames_per_s": round(frames_sampled / wall, 1),
        "embed": embed_throughput(settings),
        "search_latency_ms": search_latency(settings),
        "gpu_seconds": {
            "gate": gate_gpu_s,
            "generation": clip.gpu_seconds,
            "gate_to_generation": (round(gate_gpu_s / clip.gpu_seconds, 6)
                                   if clip.gpu_seconds else None),
            "note": None if clip.gpu_seconds else
            f"the {backend} backend used no GPU time, so there is no ratio; run with "
            "--backend diffusers and CLIPGATE_DIFFUSERS_MODEL_DIR on a GPU",
        },
        "targets": {"gate_frames_per_s": 2000, "gate_to_generation": 0.001,
                    "ratio_total_to_decode_plus_embed": 1.3},
        "ratio_total_to_decode_plus_embed": round(total / base, 3) if base else None,
        "setup_s": round(setup_s, 1),
        "machine": _machine(),
    }


def embed_throughput(settings: Settings, batch: int | None = None, repeats: int = 3
                     ) -> dict[str, Any]:
    """The learned descriptor (SSCD) over a batch of 640x360 frames, resized as the gate does:
    frames per second (median of repeats), on the provider onnxruntime uses (CUDA where there is
    one). None when SSCD is off."""
    signal = index.active(settings).get("sscd")
    if not isinstance(signal, index.SscdSignal):
        return {"signal": None}
    model = signal.model
    on_gpu = "CUDAExecutionProvider" in model.providers
    batch = batch or (512 if on_gpu else 32)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (360, 640, 3), dtype=np.uint8) for _ in range(batch)]
    signal.compute(frames[: min(8, batch)])  # warm-up (kernels, allocator)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        signal.compute(frames)
        times.append(time.perf_counter() - t0)
    t = statistics.median(times)
    return {"signal": "sscd", "model": model.name, "providers": model.providers,
            "input_long_side": settings.sscd_size, "batch": batch,
            "frames_per_s": round(batch / t, 1)}


def search_latency(settings: Settings, queries: int = 200, frames_per_query: int = 12
                   ) -> dict[str, Any]:
    """Latency of searching the live index with every active signal for a query of
    frames_per_query frames (about one gated clip's sampled frames; no crops, no geometric
    check): p50 and p99 in milliseconds."""
    idx = index.sync(settings)
    signals = {n: s for n, s in index.active(settings).items() if n in idx.native}
    rng = np.random.default_rng(1)
    lat = []
    for _ in range(queries):
        batch = {}
        for name, s in signals.items():
            if s.kind == "float":
                v = rng.standard_normal((frames_per_query, s.dim)).astype(np.float32)
                batch[name] = v / np.linalg.norm(v, axis=1, keepdims=True)
            else:
                batch[name] = rng.integers(0, 255, (frames_per_query, s.dim // 8), np.uint8)
        t0 = time.perf_counter()
        for name, s in signals.items():
            if s.kind == "float":
                idx.nearest(name, batch[name], s.search_k)
                idx.bias(name, batch[name])
            else:
                idx.within(name, batch[name], int(max(s.threshold, s.candidate_distance or 0)))
        lat.append((time.perf_counter() - t0) * 1000)
    lat.sort()
    return {"frames_indexed": idx.frames, "frames_per_query": frames_per_query,
            "signals": sorted(signals), "queries": queries, "p50": round(lat[len(lat) // 2], 3),
            "p99": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 3)}


def _machine() -> str:
    out = f"{platform.machine()} {platform.processor() or ''} cores={_cores()}".strip()
    try:
        import torch  # heavy: only to name the GPU

        if torch.cuda.is_available():
            out += f" gpu={torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return out


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

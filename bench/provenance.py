"""`clipgate bench provenance`: does verify trace a copy back to its release once the manifest is
gone? Released clips (generated procedurally, nothing downloaded) are stripped, re-encoded,
scaled, cropped, retimed, cut, mirrored and captioned; each copy is looked up by watermark alone,
fingerprint alone and both (watermark first, as verify does), and clips never released are looked
up to count false recoveries.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

import compliance
from clipgate.settings import Settings
from generator import GenerationRequest, get_generator

WIDTH, HEIGHT, FPS = 640, 360, 12
COPY_CRF = 23  # the re-encode of every transformed copy but the CRF ones

# Words the prompts are made of: each clip's palette and shots follow from its prompt and seed.
_WORDS = ("amber", "azure", "crimson", "forest", "harbour", "desert", "glacier", "neon", "dusk",
          "storm", "meadow", "canyon", "coral", "ember", "violet", "silver", "lagoon", "orchard")


def prompt_for(i: int) -> str:
    """A distinct prompt for clip i."""
    rng = np.random.default_rng([7, i])
    return " ".join(rng.choice(_WORDS, 3, replace=False)) + f" scene {i}"


def generate(i: int, out: Path, *, seconds: float, settings: Settings,
             seed_base: int = 0) -> Path:
    """Clip i: seconds long, 640x360 at 12 fps, from the procedural generator."""
    request = GenerationRequest(prompt_for(i + seed_base), seconds=seconds, width=WIDTH,
                                height=HEIGHT, fps=FPS, seed=seed_base + i)
    get_generator("procedural", settings).generate(request, out)
    return out


# -- transformations: src -> dst, each with PyAV ----------------------------------------------

def _rewrite(src: Path, dst: Path, frame_fn: Callable[[np.ndarray], np.ndarray], *,
             crf: int = COPY_CRF, fps: float | None = None, start_s: float = 0.0,
             end_s: float | None = None) -> Path:
    """Decode src, map each kept RGB frame through frame_fn, encode H.264 (no manifest survives:
    the container is new). fps: resample to this rate by picking the nearest frames; start_s,
    end_s: keep only that span."""
    with av.open(str(src)) as inp:
        stream = inp.streams.video[0]
        rate = float(stream.average_rate or FPS)
        frames = []
        for frame in inp.decode(stream):
            t = float(frame.time) if frame.time is not None else len(frames) / rate
            if t + 1e-6 >= start_s and (end_s is None or t < end_s - 1e-6):
                frames.append(frame.to_ndarray(format="rgb24"))
    if fps is not None:  # nearest source frame for each output instant
        n = max(1, round(len(frames) * fps / rate))
        frames = [frames[min(len(frames) - 1, round(k * rate / fps))] for k in range(n)]
    out_rate = Fraction(fps or rate).limit_denominator(1001)
    with av.open(str(dst), "w") as out:
        vs = out.add_stream("libx264", rate=out_rate)
        first = frame_fn(frames[0])
        vs.width, vs.height = first.shape[1] // 2 * 2, first.shape[0] // 2 * 2
        vs.pix_fmt = "yuv420p"
        vs.options = {"crf": str(crf), "preset": "veryfast"}
        for rgb in frames:
            img = np.ascontiguousarray(frame_fn(rgb)[: vs.height, : vs.width])
            for p in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
    return dst


def strip(src: Path, dst: Path) -> Path:
    """The same video packets in a new MP4: the C2PA manifest (a box of the old file) is gone."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        vin = inp.streams.video[0]
        vout = out.add_stream_from_template(vin)
        for packet in inp.demux(vin):
            if packet.dts is None:
                continue
            packet.stream = vout
            out.mux(packet)
    return dst


def _scale(f: float) -> Callable[[np.ndarray], np.ndarray]:
    return lambda rgb: cv2.resize(rgb, (int(rgb.shape[1] * f), int(rgb.shape[0] * f)),
                                  interpolation=cv2.INTER_AREA)


def _crop(share: float) -> Callable[[np.ndarray], np.ndarray]:
    """Keep the centre, losing share of each dimension (half on each side)."""
    def crop(rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        dy, dx = int(h * share / 2), int(w * share / 2)
        return rgb[dy: h - dy, dx: w - dx]
    return crop


def _caption(rgb: np.ndarray) -> np.ndarray:
    """A subtitle band with text over the lower fifth."""
    out = rgb.copy()
    h, w = out.shape[:2]
    cv2.rectangle(out, (0, int(h * 0.8)), (w, h), (0, 0, 0), -1)
    cv2.putText(out, "you will not believe this clip", (int(w * 0.05), int(h * 0.93)),
                cv2.FONT_HERSHEY_SIMPLEX, h / 450, (255, 255, 255), 2, cv2.LINE_AA)
    return out


def _same(rgb: np.ndarray) -> np.ndarray:
    return rgb


TRANSFORMS: dict[str, Callable[[Path, Path], Path]] = {
    "stripped": strip,
    "crf28": lambda s, d: _rewrite(s, d, _same, crf=28),
    "crf35": lambda s, d: _rewrite(s, d, _same, crf=35),
    "scale75": lambda s, d: _rewrite(s, d, _scale(0.75)),
    "scale50": lambda s, d: _rewrite(s, d, _scale(0.5)),
    "crop10": lambda s, d: _rewrite(s, d, _crop(0.10)),
    "fps": lambda s, d: _rewrite(s, d, _same, fps=FPS * 5 / 6),  # 12 -> 10 fps
    "excerpt3s": lambda s, d: _rewrite(s, d, _same, start_s=1.0, end_s=4.0),
    "mirror": lambda s, d: _rewrite(s, d, lambda rgb: rgb[:, ::-1]),
    "caption": lambda s, d: _rewrite(s, d, _caption),
}


# -- lookups -------------------------------------------------------------------------------

def _lookup(path: Path, settings: Settings, by: str) -> tuple[str | None, float]:
    """(release id recovered or None, seconds) by one method alone."""
    t0 = time.perf_counter()
    found = compliance.recover(path, settings, by=(by,))
    return (str(found.release["id"]) if found else None), time.perf_counter() - t0


def _score(rows: list[dict[str, Any]], method: str) -> dict[str, Any]:
    n = len(rows)
    ok = sum(r[method] == r["truth"] for r in rows)
    wrong = sum(r[method] is not None and r[method] != r["truth"] for r in rows)
    times = [r[f"{method}_s"] for r in rows]
    return {"recovered": round(ok / n, 4) if n else None, "wrong": round(wrong / n, 4) if n else None,
            "n": n, "s_per_clip_median": round(statistics.median(times), 3) if times else None,
            "s_per_clip_max": round(max(times), 3) if times else None}


def run_provenance(
    settings: Settings,
    *,
    clips: int = 50,
    negatives: int = 200,
    seconds: float = 10.0,
    transforms: tuple[str, ...] = tuple(TRANSFORMS),
    progress: Callable[[str, int, int], None] = lambda stage, done, total: None,
) -> dict[str, Any]:
    """Release `clips` generated clips, look up each transformed copy by watermark, fingerprint
    and both, and `negatives` never-released clips; the figures as a dict."""
    unknown = set(transforms) - set(TRANSFORMS)
    if unknown:
        raise ValueError(f"unknown transforms {sorted(unknown)}; choose from {', '.join(TRANSFORMS)}")
    t_start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    negative_rows: list[dict[str, Any]] = []
    release_s: list[float] = []
    marks: list[Any] = []
    with tempfile.TemporaryDirectory(prefix="clipgate-provenance-") as tmp:
        work = Path(tmp)
        released: list[tuple[str, Path]] = []
        for i in range(clips):
            src = generate(i, work / f"clip{i}.mp4", seconds=seconds, settings=settings)
            t0 = time.perf_counter()
            outcome = compliance.release_clip(src, source="bench", settings=settings,
                                              generator=compliance.generator_identity(
                                                  model="bench-provenance", version="1"))
            release_s.append(time.perf_counter() - t0)
            if outcome.mark is not None:
                marks.append(outcome.mark)
            if not outcome.released:
                raise RuntimeError(f"bench clip {i} was not released ({outcome.check.verdict}): "
                                   "the bench needs an index of no works")
            released.append((str(outcome.release["id"]), Path(outcome.release["path"])))
            progress("releasing", i + 1, clips)
        psnr = _release_psnr(work, released[: min(5, len(released))], seconds, settings)
        psnr["watermark_db_mean"] = (round(statistics.mean(m.psnr_db for m in marks), 2)
                                     if marks else None)
        psnr["watermark_db_min"] = min((m.psnr_db for m in marks), default=None)
        psnr["embed_ms_per_frame_median"] = (round(statistics.median(m.ms_per_frame for m in marks), 1)
                                             if marks else None)
        total = len(released) * len(transforms)
        for i, (release_id, signed) in enumerate(released):
            for name in transforms:
                copy = TRANSFORMS[name](signed, work / f"copy-{name}.mp4")
                row: dict[str, Any] = {"clip": i, "transform": name, "truth": release_id}
                for method in ("watermark", "fingerprint"):
                    row[method], row[f"{method}_s"] = _lookup(copy, settings, method)
                # Combined, as verify runs it: the fingerprint only when the watermark found none.
                row["combined"] = row["watermark"] or row["fingerprint"]
                row["combined_s"] = row["watermark_s"] + (0.0 if row["watermark"]
                                                         else row["fingerprint_s"])
                rows.append(row)
                progress("looking up copies", len(rows), total)
        for j in range(negatives):
            clip = generate(j, work / "negative.mp4", seconds=seconds, settings=settings,
                            seed_base=100_000)
            row = {"clip": j, "truth": None}
            for method in ("watermark", "fingerprint"):
                row[method], row[f"{method}_s"] = _lookup(clip, settings, method)
            row["combined"] = row["watermark"] or row["fingerprint"]
            negative_rows.append(row)
            progress("never-released clips", j + 1, negatives)

    methods = ("watermark", "fingerprint", "combined")
    per_transform = {name: {m: _score([r for r in rows if r["transform"] == name], m)
                            for m in methods} for name in transforms}
    transformed = [r for r in rows if r["transform"] != "stripped"]
    return {
        "clips": clips, "seconds": seconds, "size": f"{WIDTH}x{HEIGHT}", "fps": FPS,
        "overall": {m: _score(rows, m) for m in methods},
        "transformed": {m: _score(transformed, m) for m in methods},
        "per_transform": per_transform,
        "never_released": {
            "n": len(negative_rows),
            **{f"false_{m}": sum(r[m] is not None for r in negative_rows) for m in methods},
            "s_per_clip_median": {m: round(statistics.median(r[f"{m}_s"] for r in negative_rows), 3)
                                  for m in ("watermark", "fingerprint")} if negative_rows else None,
        },
        "release_s_median": round(statistics.median(release_s), 2) if release_s else None,
        "watermark_psnr_db": psnr,
        "targets": {"combined_transformed": 0.95, "stripped": 1.0, "wrong": 0,
                    "false_recoveries": 0, "lookup_s_per_10s_clip": 1.0},
        "wall_s": round(time.perf_counter() - t_start, 1),
    }


def _release_psnr(work: Path, released: list[tuple[str, Path]], seconds: float,
                  settings: Settings) -> dict[str, Any]:
    """PSNR of released files against the clips they came from (frame by frame): what the
    watermark and its re-encode cost."""
    values = []
    for i, (_, signed) in enumerate(released):
        src = generate(i, work / "again.mp4", seconds=seconds, settings=settings)
        with av.open(str(src)) as a, av.open(str(signed)) as b:
            for fa, fb in zip(a.decode(video=0), b.decode(video=0)):
                x, y = fa.to_ndarray(format="rgb24"), fb.to_ndarray(format="rgb24")
                mse = float(np.mean((x.astype(np.float32) - y.astype(np.float32)) ** 2))
                values.append(99.0 if mse == 0 else 10 * np.log10(255.0**2 / mse))
    if not values:
        return {"file_db_mean": None}
    return {"file_db_mean": round(float(np.mean(values)), 2),
            "file_db_min": round(float(np.min(values)), 2), "clips": len(released)}


def provenance_table(result: dict[str, Any]) -> str:
    """The figures as a Markdown table (for people, and the README)."""
    lines = ["| copy | watermark | fingerprint | combined | wrong (combined) |",
             "| --- | --- | --- | --- | --- |"]

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.0f}%"

    for name, by in result["per_transform"].items():
        lines.append(f"| {name} | {pct(by['watermark']['recovered'])} | "
                     f"{pct(by['fingerprint']['recovered'])} | {pct(by['combined']['recovered'])} | "
                     f"{pct(by['combined']['wrong'])} |")
    for label, key in (("all transformed", "transformed"), ("all", "overall")):
        by = result[key]
        lines.append(f"| **{label}** | {pct(by['watermark']['recovered'])} | "
                     f"{pct(by['fingerprint']['recovered'])} | {pct(by['combined']['recovered'])} | "
                     f"{pct(by['combined']['wrong'])} |")
    by = result["overall"]
    lines.append(f"| s per clip (median / max) | {by['watermark']['s_per_clip_median']} / "
                 f"{by['watermark']['s_per_clip_max']} | {by['fingerprint']['s_per_clip_median']} / "
                 f"{by['fingerprint']['s_per_clip_max']} | {by['combined']['s_per_clip_median']} / "
                 f"{by['combined']['s_per_clip_max']} | |")
    neg = result["never_released"]
    lines.append(f"| never released: false recoveries of {neg['n']} | {neg['false_watermark']} | "
                 f"{neg['false_fingerprint']} | {neg['false_combined']} | |")
    return "\n".join(lines)

"""`clipgate demo`: the whole release path once, on the sample works, with a report.

It registers the generator's sample works as protected works, generates a dozen clips (some of
which regurgitate a sample work, as a model that memorised its training data would), gates each,
signs and verifies the releases, tampers with one signed copy to show it fails, and writes
report.json plus index.html (with thumbnails) to the output folder.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, select_autoescape
from PIL import Image, ImageDraw

import index
from clipgate.errors import BadInput, Conflict
from clipgate.settings import Settings
from compliance import public_release, release_clip, verify_clip
from generator import GenerationRequest, get_generator, render_sample_video, sample_works

log = logging.getLogger(__name__)

PROMPTS = (
    "an astronaut drifting above the clouds, cinematic light",
    "a tabby cat watching the rain from a window sill",
    "rocket liftoff at dawn, smoke billowing",
    "a biker racing through neon streets at night",
    "latte art poured in slow motion",
    "a close-up of a human retina, glowing veins",
    "an espresso cup beside a rocket on the launchpad",
    "ocean waves at sunset in pastel colours",
    "abstract neon particles dancing to music",
    "a forest stream in autumn, leaves drifting",
    "northern lights rippling over a frozen lake",
    "paper lanterns floating over a quiet river",
)
THUMB_W = 192


@dataclass
class DemoClip:
    prompt: str
    file: str
    reused: list[str]  # the generator's ground truth: sample works it copied
    verdict: str
    check: dict[str, Any]
    release: dict[str, Any] | None
    verification: dict[str, Any] | None
    thumbs: list[str]
    evidence_thumbs: list[dict[str, Any]]


def register_samples(settings: Settings, workdir: Path) -> list[dict[str, Any]]:
    """Register each sample work once; later runs find them already there."""
    existing = {(w["owner"], w["title"]): w for w in index.list_works(settings=settings)}
    works = []
    for sample in sample_works():
        if (sample.owner, sample.title) in existing:
            works.append(existing[(sample.owner, sample.title)])
            continue
        if sample.kind == "video":
            path = render_sample_video(sample, workdir / f"{sample.key}.mp4")
        else:
            path = workdir / f"{sample.key}.png"
            sample.load_image().save(path)
        try:
            works.append(index.register_work(path, owner=sample.owner, title=sample.title,
                                             policy=sample.policy, settings=settings))
        except Conflict as e:  # the same file was registered under another name: use that
            works.append(index.get_work(e.existing_id, settings=settings))
    return works


def _thumb(rgb: np.ndarray, path: Path, region: list[float] | None = None) -> str:
    img = Image.fromarray(rgb)
    if region:  # (x0, y0, x1, y1) as fractions of the frame
        w, h = img.size
        box = [region[0] * w, region[1] * h, region[2] * w, region[3] * h]
        ImageDraw.Draw(img).rectangle(box, outline=(255, 40, 40), width=max(2, w // 160))
    img.thumbnail((THUMB_W, THUMB_W))
    img.save(path, quality=85)
    return path.name


def _clip_thumbs(clip: Path, thumbs: Path, stem: str, duration: float) -> list[str]:
    times = [duration * f for f in (0.05, 0.35, 0.65, 0.95)]
    frames = index.frames_at(clip, times)
    return [_thumb(f, thumbs / f"{stem}-{i}.jpg") for i, f in enumerate(frames)]


def _evidence_thumbs(clip: Path, check: dict[str, Any], thumbs: Path, stem: str,
                     settings: Settings) -> list[dict[str, Any]]:
    """For each match, the clip frame and the work frame of its best pair, side by side."""
    out = []
    for k, m in enumerate(check["matches"]):
        # Prefer a pair whose region is known, so the picture shows where the copy sits.
        best = max(m["pairs"], key=lambda p: (p["region"] is not None or p["crop"] is not None,
                                              max(p["signals"].values())))
        region = best["region"] or best["crop"]
        media = Path(index.get_work(m["work_id"], settings=settings)["media_path"])
        out.append({
            "title": m["title"],
            "work_kind": m["kind"],
            "clip_t": best["clip_t"],
            "work_t": best["work_t"],
            "region": region,
            "placed_by": ("where the local features place the copy" if best["region"]
                          else "the crop of the clip frame that matched"),
            "clip": _thumb(index.frames_at(clip, [best["clip_t"]])[0], thumbs / f"{stem}-m{k}c.jpg",
                           region),
            "work": _thumb(index.frames_at(media, [best["work_t"]])[0],
                           thumbs / f"{stem}-m{k}w.jpg"),
        })
    return out


def run_demo(
    settings: Settings, out: Path, *, progress: Callable[[str], None] = lambda msg: None
) -> dict[str, Any]:
    t_start = time.perf_counter()
    if out.exists() and any(out.iterdir()) and not (out / "report.json").exists():
        # The demo empties its clips/ and thumbs/ folders: never in a folder that isn't its own.
        raise BadInput(f"{out} is not empty and holds no earlier demo report; "
                       "choose a new folder with --out")
    out.mkdir(parents=True, exist_ok=True)
    clips_dir, thumbs = out / "clips", out / "thumbs"
    for d in (clips_dir, thumbs):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
    with tempfile.TemporaryDirectory() as tmp:
        progress("registering sample works")
        register_samples(settings, Path(tmp))
    # Report every work the gate ran against: the data directory may hold more than the samples.
    works = index.list_works(settings=settings)
    gen = get_generator(settings.generator_backend)
    results: list[DemoClip] = []
    for i, prompt in enumerate(PROMPTS):
        progress(f"clip {i + 1}/{len(PROMPTS)}: {prompt}")
        clip = gen.generate(GenerationRequest(prompt, seconds=6.0), clips_dir / f"clip{i:02d}.mp4")
        outcome = release_clip(clip.path, generator=clip.identity(), source="demo",
                               settings=settings)
        check = outcome.check.to_dict()
        release = verification = None
        if outcome.release:
            release = public_release(outcome.release)
            verification = verify_clip(Path(outcome.release["path"]), settings=settings)
            shutil.copyfile(outcome.release["path"], clips_dir / f"clip{i:02d}.signed.mp4")
        stem = f"clip{i:02d}"
        results.append(DemoClip(
            prompt=prompt, file=f"clips/{clip.path.name}", reused=clip.memorised,
            verdict=check["verdict"], check=check, release=release,
            verification=_verification_summary(verification),
            thumbs=_clip_thumbs(clip.path, thumbs, stem, clip.duration_s),
            evidence_thumbs=_evidence_thumbs(clip.path, check, thumbs, stem, settings),
        ))
    tamper = _tamper_demo(results, clips_dir, settings)
    report = {
        "data_dir": str(settings.data_dir),
        "signals": results[0].check["signals"] if results else {},
        "clip": index.clip_status(settings),
        "warnings": sorted({w for r in results for w in r.check["warnings"]}),
        "works": [{k: str(v) if k == "id" else v for k, v in w.items()
                   if k in ("id", "title", "owner", "policy", "kind", "frames")} for w in works],
        "clips": [r.__dict__ for r in results],
        "tamper_test": tamper,
        "counts": {v: sum(r.verdict == v for r in results) for v in ("release", "block", "review")},
        "seconds": round(time.perf_counter() - t_start, 1),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str))
    env = Environment(loader=PackageLoader("bench", "templates"),
                      autoescape=select_autoescape(["html"]))
    (out / "index.html").write_text(env.get_template("report.html").render(report=report))
    return report


def _verification_summary(v: dict[str, Any] | None) -> dict[str, Any] | None:
    if v is None:
        return None
    return {
        "state": v["state"],
        "release_status": v["release"]["status"] if v["release"] else None,
        "assertions": sorted(v["assertions"]),
        "validation_errors": v["validation_errors"],
    }


def _tamper_demo(results: list[DemoClip], clips_dir: Path, settings: Settings) -> dict | None:
    """Flip one byte in the middle of a signed copy: verification must say Invalid."""
    signed = next((clips_dir / (Path(r.file).stem + ".signed.mp4") for r in results if r.release),
                  None)
    if signed is None:
        return None
    tampered = clips_dir / "tampered.mp4"
    data = bytearray(signed.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered.write_bytes(bytes(data))
    v = verify_clip(tampered, settings=settings)
    return {"file": f"clips/{tampered.name}", "from": f"clips/{signed.name}", "state": v["state"],
            "validation_errors": v["validation_errors"]}

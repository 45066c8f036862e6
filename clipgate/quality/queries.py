"""Query clips: positives that reuse registered works under each transformation family (alone, in
pairs and in triples), and negatives made only of unregistered media, hard negatives included.

Every clip is 640x360 H.264 at QUERY_FPS, written with PyAV (a `lowres` clip at half that size and
a high CRF). A plan is drawn from a seeded RNG, so two runs with the same seed and corpus gate the
same clips.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

from clipgate.quality import transforms as tf
from clipgate.quality.metrics import Query

QUERY_FPS = 8
CLIP_S = 6.0  # a clip that reuses one work whole
LONG_S = 10.0  # segment, two-work and negative clips: the 10 s the gate's time target is set on
SEGMENT_S = 2.0


@dataclass
class WorkSource:
    work_id: str
    kind: str  # "image" | "video"
    source: tf.Source
    duration_s: float = 0.0
    title: str = ""


@dataclass
class Spec:
    """How to render one query clip."""

    query: Query
    seconds: float
    frame: Callable[[float], np.ndarray]
    edits: list[str] = field(default_factory=list)
    encode: dict[str, Any] | None = None  # {"scale", "crf"} for lowres; None: the default


def load_image(path: Path, max_side: int = 1280) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("RGB")
        im.thumbnail((max_side, max_side))
        return np.asarray(im)


def load_video(path: Path, max_s: float = 30.0) -> tuple[list[np.ndarray], float]:
    """Frames at QUERY_FPS, at their own aspect within 640x360."""
    out: list[np.ndarray] = []
    with av.open(str(path)) as c:
        for frame in c.decode(c.streams.video[0]):
            t = float(frame.time or 0.0)
            if t > max_s:
                break
            if t * QUERY_FPS >= len(out) - 1e-6:
                out.append(tf.fit(frame.to_ndarray(format="rgb24"),
                                  tf.frame_size(frame.width, frame.height)))
    return out, len(out) / QUERY_FPS


def _filler(rng: random.Random, unregistered: list[np.ndarray],
            size: tuple[int, int] = (tf.W, tf.H)) -> tf.Source:
    """Unrelated footage: a pan across an unregistered photo, framed at size (w, h)."""
    rgb = rng.choice(unregistered)
    return tf.still(rgb, drift=rng.uniform(0.1, 0.3), size=size)


def plan(works: list[WorkSource], unregistered: list[np.ndarray], hard: list[np.ndarray], *,
         per_family: int, per_pair: int, negatives: int, seed: int) -> list[Spec]:
    """The query clips of a run."""
    rng = random.Random(seed)
    images = [w for w in works if w.kind == "image"]
    videos = [w for w in works if w.kind == "video"]
    specs: list[Spec] = []

    def reuse(family: str, edits: list[str], n: int) -> None:
        for i in range(n):
            pool = videos if "speed" in edits or (videos and i % 5 == 4) else images
            w = rng.choice(pool or images)
            chosen = [tf.Edit(e, tf.sample_params(e, rng)) for e in edits]
            bg = _filler(rng, unregistered)
            face = _filler(rng, unregistered) if "reaction" in edits else None
            qid = f"{family}-{i}"
            if "segment" in edits:
                specs.append(_segment(qid, family, w, chosen, rng, unregistered))
                continue
            src = w.source
            specs.append(Spec(Query(qid, family, (w.work_id,)), CLIP_S,
                              lambda t, s=src, c=chosen, b=bg, f=face: tf.render(s, c, b, t, f),
                              edits, tf.encode_options(chosen)))

    for family in tf.FIRST_FAMILIES:
        if family == "speed" and not videos:
            continue
        reuse(family, [family], per_family)
    for a, b in tf.PAIRS:
        reuse(f"{a}+{b}", [a, b], per_pair)
    for i in range(max(1, per_family // 2)):
        a, b = rng.sample(images, 2)
        specs.append(Spec(Query(f"two_works-{i}", "two_works", (a.work_id, b.work_id)), LONG_S,
                          lambda t, a=a.source, b=b.source: tf.fit(a(t) if t < LONG_S / 2
                                                                   else b(t))))
    # Drawn after the first families, pairs and two-work clips, which keep the queries they had
    # before the harder families came (same seed, same corpus: same clips).
    for family in tf.HARDER_FAMILIES:
        reuse(family, [family], per_family)
    for chain in tf.TRIPLES:
        reuse("+".join(chain), list(chain), per_pair)
    specs += _negatives(negatives, unregistered, hard, rng)
    return specs


def _segment(qid: str, family: str, w: WorkSource, edits: list[tf.Edit], rng: random.Random,
             unregistered: list[np.ndarray]) -> Spec:
    """The copy as a 2 s shot inside a 10 s clip of other content."""
    start = round(rng.uniform(2.0, LONG_S - SEGMENT_S - 2.0), 2)
    first = w.source(0.0)
    size = (first.shape[1], first.shape[0])
    before, after = _filler(rng, unregistered, size), _filler(rng, unregistered, size)
    offset = rng.uniform(0, max(0.0, w.duration_s - SEGMENT_S))

    def frame(t: float) -> np.ndarray:
        if t < start:
            return before(t)
        if t < start + SEGMENT_S:
            return tf.render(lambda tt: w.source(tt + offset), edits, before, t - start)
        return after(t)

    return Spec(Query(qid, family, (w.work_id,), (start, start + SEGMENT_S)), LONG_S, frame,
                [e.family for e in edits])


def _negatives(n: int, unregistered: list[np.ndarray], hard: list[np.ndarray],
               rng: random.Random) -> list[Spec]:
    """Clips of unregistered media only: edited photos, slideshows, look-alike nebulae."""
    out = []
    for i in range(n):
        kind = i % 4
        if kind == 0 and hard:  # a look-alike of the registered nebulae
            src = tf.still(rng.choice(hard), drift=0.1)
            frame = src
        elif kind == 1:  # a slideshow of three unregistered photos
            shots = [_filler(rng, unregistered) for _ in range(3)]
            frame = (lambda t, s=shots: s[min(2, int(t / (LONG_S / 3)))](t))
        elif kind == 2:  # an unregistered photo under a random edit
            fam = rng.choice(tf.FRAME_FAMILIES)
            edit = [tf.Edit(fam, tf.sample_params(fam, rng))]
            src, bg = _filler(rng, unregistered), _filler(rng, unregistered)
            frame = (lambda t, s=src, e=edit, b=bg: tf.render(s, e, b, t))
        else:  # one unregistered photo pasted small over another
            edit = [tf.Edit("pip", tf.sample_params("pip", rng))]
            src, bg = _filler(rng, unregistered), _filler(rng, unregistered)
            frame = (lambda t, s=src, e=edit, b=bg: tf.render(s, e, b, t))
        out.append(Spec(Query(f"negative-{i}", "negative", ()), LONG_S, frame))
    return out


def write(spec: Spec, path: Path) -> Path:
    """Encode the clip (H.264, yuv420p, QUERY_FPS): CRF 23 at the frames' size, or as
    spec.encode says (lowres: {"scale": 0.5, "crf": 38-45}, each side scaled, kept even)."""
    n = int(round(spec.seconds * QUERY_FPS))
    first = spec.frame(0.0)
    size, crf = (first.shape[1], first.shape[0]), 23
    if spec.encode:
        scale = spec.encode["scale"]
        size = (max(2, round(size[0] * scale / 2) * 2), max(2, round(size[1] * scale / 2) * 2))
        crf = spec.encode["crf"]
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=QUERY_FPS)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "veryfast", "crf": str(crf)}
        for i in range(n):
            rgb = np.ascontiguousarray(spec.frame(i / QUERY_FPS))
            if spec.encode and (rgb.shape[1], rgb.shape[0]) != size:
                rgb = np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR))
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path

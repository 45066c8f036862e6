"""Query clips: positives that reuse registered works under each transformation family (alone, in
pairs and in triples), and negatives made only of unregistered media, hard negatives included.

Every clip is 640x360 H.264 at QUERY_FPS, written with PyAV (a `lowres` clip at half that size and
a high CRF). A plan is drawn from a seeded RNG, so two runs with the same seed and corpus gate the
same clips.

Negatives come in kinds (NEGATIVE_KINDS): look-alike nebulae; unregistered pictures from the
very packages the works come from, shown plainly (same-topic hard negatives: another Wesnoth
story painting, another wallpaper of the set); and unregistered pictures under each family that a
positive may use (captions, small picture-in-picture, restyles, a reaction layout of two
unregistered photos, a low-bitrate re-encode...). Their pictures are drawn from the source groups
in turn (`Pool`), so that no one source dominates.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import numpy as np
from PIL import Image

from bench.quality import transforms as tf
from bench.quality.metrics import Query

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
    kind: str = ""  # a negative's kind (NEGATIVE_KINDS)
    sources: tuple[str, ...] = ()  # the source groups a negative's pictures come from


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
         per_family: int, per_pair: int, negatives: int, seed: int,
         groups: list[str] | None = None) -> list[Spec]:
    """The query clips of a run. groups: the source group of each unregistered picture (one group
    when None), that negatives spread over."""
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
    pool = Pool(unregistered, groups or ["all"] * len(unregistered), rng)
    specs += _negatives(negatives, pool, hard, rng)
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


# Negative kinds and their weights: at --negatives 300, 15 of each weight unit (nebula 45,
# same_source 60, ...); without nebulae (the quick corpus) the others share their place.
NEGATIVE_KINDS = {
    "nebula": 3,  # a look-alike of the registered nebulae
    "same_source": 4,  # an unregistered picture from a package that works come from, plain
    "edited": 2,  # an unregistered picture under a random frame edit
    "caption": 2,  # ... under captions over a third of the frame
    "restyle": 2,  # ... posterised or cartooned
    "reaction": 2,  # a reaction layout: two unregistered photos (window, face-cam)
    "slideshow": 1,  # three unregistered pictures, one after the other
    "pasted": 1,  # one unregistered picture pasted small (pip) over another
    "pip_small": 1,  # ... at 25-30% of the width
    "tight_crop": 1,  # ... with 60-80% cropped away
    "lowres": 1,  # ... encoded at half size, high CRF
}


def weighted_turns(weights: dict[str, float]) -> Iterator[str]:
    """Keys in turn, each as often as its weight, spread evenly (smooth weighted round robin);
    ties go to the earlier key, so the order is deterministic."""
    current = dict.fromkeys(weights, 0.0)
    total = sum(weights.values())
    while True:
        for k, w in weights.items():
            current[k] += w
        best = max(current, key=lambda k: current[k])
        current[best] -= total
        yield best


class Pool:
    """Unregistered pictures by source group, handed out so that no group dominates: groups take
    turns in proportion to the square root of their size, and each group deals its pictures in a
    shuffled cycle (every picture once before any twice)."""

    def __init__(self, images: list[np.ndarray], groups: list[str], rng: random.Random) -> None:
        by_group: dict[str, list[np.ndarray]] = {}
        for img, g in zip(images, groups, strict=True):
            by_group.setdefault(g, []).append(img)
        self.by_group = dict(sorted(by_group.items()))
        self.rng = rng
        self.decks: dict[str, list[np.ndarray]] = {g: [] for g in self.by_group}
        self.turns = weighted_turns({g: math.sqrt(len(v)) for g, v in self.by_group.items()})

    def draw(self) -> tuple[np.ndarray, str]:
        """One picture and its group."""
        g = next(self.turns)
        if not self.decks[g]:
            self.decks[g] = list(self.by_group[g])
            self.rng.shuffle(self.decks[g])
        return self.decks[g].pop(), g


def _negatives(n: int, pool: Pool, hard: list[np.ndarray], rng: random.Random) -> list[Spec]:
    """Clips of unregistered media only, of each kind in turn (NEGATIVE_KINDS)."""
    weights = {k: w for k, w in NEGATIVE_KINDS.items() if k != "nebula" or hard}
    turns = weighted_turns(weights)
    return [_negative(i, next(turns), pool, hard, rng) for i in range(n)]


# The family each kind edits its picture with (edited: a random frame family; restyle: one of two)
_KIND_FAMILY = {"caption": "caption", "reaction": "reaction", "pasted": "pip",
                "pip_small": "pip_small", "tight_crop": "tight_crop", "lowres": "lowres"}


def _negative(i: int, kind: str, pool: Pool, hard: list[np.ndarray],
              rng: random.Random) -> Spec:
    u = rng.uniform
    if kind == "nebula":
        frame, sources, encode = tf.still(rng.choice(hard), drift=0.1), ("nebulae",), None
    elif kind == "same_source":
        img, g = pool.draw()
        frame, sources, encode = tf.still(img, drift=u(0.04, 0.2)), (g,), None
    elif kind == "slideshow":
        shots = [pool.draw() for _ in range(3)]
        stills = [tf.still(img, drift=u(0.1, 0.3), size=(tf.W, tf.H)) for img, _ in shots]
        frame = (lambda t, s=stills: s[min(2, int(t / (LONG_S / 3)))](t))
        sources, encode = tuple(g for _, g in shots), None
    else:
        family = _KIND_FAMILY.get(kind) or rng.choice(
            tf.FRAME_FAMILIES if kind == "edited" else ("posterise", "cartoon"))
        edit = [tf.Edit(family, tf.sample_params(family, rng))]
        img, g = pool.draw()
        src = tf.still(img, drift=u(0.04, 0.2))
        bg, face, sources = src, None, (g,)  # a frame edit shows one picture
        if family in tf.LAYOUT_FAMILIES:  # pip, pip_small, reaction: over another picture
            more, gb = pool.draw()
            bg, sources = tf.still(more, drift=u(0.1, 0.3), size=(tf.W, tf.H)), (g, gb)
        if family == "reaction":  # and beside a face-cam of a third (its backdrop may be plain)
            more, gf = pool.draw()
            face, sources = tf.still(more, drift=u(0.1, 0.3), size=(tf.W, tf.H)), (*sources, gf)
        frame = (lambda t, s=src, e=edit, b=bg, f=face: tf.render(s, e, b, t, f))
        encode = tf.encode_options(edit)
    return Spec(Query(f"negative-{kind}-{i}", "negative", ()), LONG_S, frame, kind=kind,
                sources=sources, encode=encode)


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

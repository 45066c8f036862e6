"""What every fingerprint signal is: a name and a version, a way to compute vectors for a batch of
frames, the FAISS index that suits them, and the rule from a distance to evidence.

A signal is one subclass of `Signal` in one module, registered with one line
(`index.signals.register`). Storage, the FAISS index, search and alignment treat every signal
alike through this interface, so adding one needs no edit anywhere else and no migration: vectors
are stored by (signal, version), never in a column of their own.

Two kinds of vector:
- "float": (n, dim) float32 rows, L2-normalised, compared by inner product (cosine); the value of
  a hit is its score, larger is closer.
- "binary": (n, dim / 8) uint8 rows of packed bits, compared by Hamming distance; the value of a
  hit is the distance, smaller is closer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal

import faiss
import numpy as np

if TYPE_CHECKING:
    from clipgate.settings import Settings

Kind = Literal["float", "binary", "local"]


@dataclass
class Computed:
    """One signal's vectors for n frames: vectors (n, d) (float32, or packed uint8 bits) and, for
    signals that rate how much detail a frame has, quality (n,) 0..100 (a flat frame is low)."""

    vectors: np.ndarray
    quality: np.ndarray | None = None


@dataclass
class QueryRows:
    """A query's rows for one signal: whole frames first, then any extra views of them (a mirror
    image, a crop). Row r describes frame[r]; mirrored[r] says it is the left-right mirror image;
    box[r] is the crop (x0, y0, x1, y1, in 0..1 of the frame) or NaN for the whole frame; bias[r]
    is added to every float score of the row (score normalisation; 0 by default)."""

    vectors: np.ndarray
    frame: np.ndarray
    mirrored: np.ndarray = field(default=None)  # type: ignore[assignment]
    box: np.ndarray = field(default=None)  # type: ignore[assignment]
    bias: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        m = len(self.vectors)
        self.frame = np.asarray(self.frame, np.int64)
        if self.mirrored is None:
            self.mirrored = np.zeros(m, bool)
        if self.box is None:
            self.box = np.full((m, 4), np.nan, np.float32)
        if self.bias is None:
            self.bias = np.zeros(m, np.float32)

    def __len__(self) -> int:
        return len(self.vectors)

    @classmethod
    def whole(cls, vectors: np.ndarray) -> QueryRows:
        return cls(vectors, np.arange(len(vectors)))

    def concat(self, other: QueryRows) -> QueryRows:
        return QueryRows(np.concatenate([self.vectors, other.vectors]),
                         np.concatenate([self.frame, other.frame]),
                         np.concatenate([self.mirrored, other.mirrored]),
                         np.concatenate([self.box, other.box]),
                         np.concatenate([self.bias, other.bias]))


class Rule(ABC):
    """When a signal's hit counts, and what it is worth. Alignment reads only this; no code
    branches on a signal's name.

    - `threshold`: a float signal fires at a score >= it, a binary one at a distance <= it, and a
      local one (keypoints) at that many agreeing matches;
    - `decides_alone`: False for a signal that only corroborates: it counts only beside
      `requires` on the same frame pair;
    - `quality_from`: the hit counts only on query frames that this signal (often itself) rates
      at `min_quality` or more (a flat frame's hash matches any other flat frame);
    - `group`: signals of one group see the same thing, so on one frame pair they count once;
    - `counts`: False while the signal measures nothing (CLIP without real weights): its hits are
      reported as candidates and never sway a verdict.
    """

    name: ClassVar[str]
    kind: ClassVar[Kind]
    group: ClassVar[str] = "global"
    decides_alone: ClassVar[bool] = True
    requires: ClassVar[str | None] = None
    quality_from: ClassVar[str | None] = None
    min_quality: ClassVar[int] = 0
    # The value at which evidence reaches 1: distance 0 for hashes, a score that leaves no doubt
    # for a learned descriptor.
    perfect: ClassVar[float | None] = None

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def counts(self) -> bool:
        return True

    @property
    @abstractmethod
    def threshold(self) -> float:
        """Where a hit fires: a score at or above it (float), a distance at or below it (binary),
        that many agreeing keypoints (local)."""

    def fires(self, value: float) -> bool:
        return value <= self.threshold if self.kind == "binary" else value >= self.threshold

    def evidence(self, value: float) -> float:
        """The value on the common scale: 0.5 at the threshold, 1 at `perfect` (or beyond)."""
        t = self.threshold
        if self.kind == "binary":
            perfect = 0.0 if self.perfect is None else self.perfect
            margin = (t - value) / max(1e-6, t - perfect)
        else:
            perfect = 1.0 if self.perfect is None else self.perfect
            margin = (value - t) / max(1e-6, perfect - t)
        return 0.5 + 0.5 * min(1.0, max(0.0, margin))

    def similarity(self, value: float) -> float:
        """For people: 0..1, 1 the same picture."""
        return float(value)


class Signal(Rule):
    """A global signal: one vector per frame, searched in a FAISS index. Subclasses set the class
    attributes and implement `version`, `dim`, `threshold` and `compute`."""

    kind: ClassVar[Kind]
    stage: ClassVar[str] = "embed"  # the timing its computation is reported under
    # Float signals: the k nearest frames of each query row are searched. Binary signals: hits
    # farther than the threshold but within candidate_distance go to the geometric check.
    search_k: ClassVar[int] = 8
    candidate_distance: ClassVar[int | None] = None

    @classmethod
    def enabled(cls, settings: Settings) -> bool:
        """Whether this process computes and searches the signal (a setting may turn it off)."""
        return True

    # -- identity ---------------------------------------------------------------------------
    @property
    @abstractmethod
    def version(self) -> str:
        """Identifies the vector space: two processes with the same version compare vectors;
        with different ones they must not (the index refuses, and names `index rebuild
        --reembed`)."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Float: the vector's dimension. Binary: its number of bits."""

    def describe(self) -> dict[str, object]:
        """What results and health say about this signal."""
        return {"version": self.version, "counts": self.counts}

    # -- computing --------------------------------------------------------------------------
    @abstractmethod
    def compute(self, frames: list[np.ndarray]) -> Computed:
        """frames: RGB uint8 (h, w, 3), any size. One row per frame, in order."""

    def compute_query(self, frames: list[np.ndarray]) -> tuple[Computed, QueryRows]:
        """A query's vectors: the whole frames (stored with a release), and the rows searched
        (the whole frames, plus any views a signal adds, such as a mirror image)."""
        computed = self.compute(frames)
        return computed, QueryRows.whole(computed.vectors)

    def regions(self, frames: list[np.ndarray], which: list[int]) -> QueryRows | None:
        """Extra rows for parts of the frames `which` (crops of a frame where a copy may sit
        small), searched after the whole frames, for frames nothing settled. None: no regions."""
        return None

    @property
    def normalises(self) -> bool:
        """Whether query scores are normalised against `background()`."""
        return False

    @property
    def candidate_floor(self) -> float | None:
        """A float signal's nearest frames below the threshold whose score (normalised, for a
        signal that normalises; crops' penalty included) is at least this are proposed for the
        geometric check (None: never)."""
        return None

    @property
    def proposals(self) -> int:
        """How many such nearest frames a clip frame proposes."""
        return 2

    def background(self) -> np.ndarray | None:
        """(b, d) vectors of unprotected pictures that a float signal's query scores are
        normalised against (each row loses its similarity to the nearest); None: no
        normalisation."""
        return None

    # -- the index ----------------------------------------------------------------------------
    def new_index(self) -> faiss.Index | faiss.IndexBinary:
        """An empty index with ids: exact inner product for floats, Hamming for bits."""
        if self.kind == "float":
            return faiss.IndexIDMap2(faiss.IndexFlatIP(self.dim))
        return faiss.IndexBinaryIDMap2(faiss.IndexBinaryFlat(self.dim))

    def row_bytes(self) -> int:
        return 4 * self.dim if self.kind == "float" else self.dim // 8

    def decode(self, raw: bytes, n: int) -> np.ndarray:
        """Stored bytes of n rows back to an (n, d) array."""
        if self.kind == "float":
            return np.frombuffer(raw, np.float32).reshape(n, self.dim)
        return np.frombuffer(raw, np.uint8).reshape(n, self.dim // 8)

    def similarity(self, value: float) -> float:
        """0..1, 1 the same picture: cosine for floats, 1 - distance / bits for hashes."""
        return 1.0 - value / self.dim if self.kind == "binary" else float(value)

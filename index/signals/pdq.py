"""PDQ: Meta's 256-bit perceptual hash. Exact under re-encodes and resizes, blind to crops; a
query also searches with its mirror image's hash, which PDQ's dihedral variant gives for about
the cost of one hash."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pdqhash

from index.signals.base import Computed, Kind, QueryRows, Signal
from index.signals.hashes import MIN_HASH_QUALITY, PDQ_BITS

_DIHEDRAL_MIRROR = 5  # pdqhash.compute_dihedral's order: original, three turns, then the mirror


class PdqSignal(Signal):
    name: ClassVar[str] = "pdq"
    kind: ClassVar[Kind] = "binary"
    stage: ClassVar[str] = "hash"
    quality_from: ClassVar[str | None] = "pdq"
    min_quality: ClassVar[int] = MIN_HASH_QUALITY

    @property
    def version(self) -> str:
        return "pdq/1"

    @property
    def dim(self) -> int:
        return PDQ_BITS

    @property
    def threshold(self) -> float:
        return float(self.settings.pdq_max_distance)

    @property
    def candidate_distance(self) -> int | None:  # type: ignore[override]
        return self.settings.pdq_candidate_distance

    def compute(self, frames: list[np.ndarray]) -> Computed:
        codes, quality = [], []
        for rgb in frames:
            bits, q = pdqhash.compute(np.ascontiguousarray(rgb))
            codes.append(np.packbits(bits.astype(np.uint8)))
            quality.append(int(q))
        return Computed(_stack(codes), np.array(quality, np.int32))

    def compute_query(self, frames: list[np.ndarray]) -> tuple[Computed, QueryRows]:
        codes, mirrored, quality = [], [], []
        for rgb in frames:
            variants, q = pdqhash.compute_dihedral(np.ascontiguousarray(rgb))
            codes.append(np.packbits(variants[0].astype(np.uint8)))
            mirrored.append(np.packbits(variants[_DIHEDRAL_MIRROR].astype(np.uint8)))
            quality.append(int(q))
        n = len(frames)
        computed = Computed(_stack(codes), np.array(quality, np.int32))
        rows = QueryRows(np.concatenate([computed.vectors, _stack(mirrored)]),
                         np.concatenate([np.arange(n), np.arange(n)]),
                         mirrored=np.arange(2 * n) >= n)
        return computed, rows


def _stack(codes: list[np.ndarray]) -> np.ndarray:
    return np.stack(codes) if codes else np.zeros((0, PDQ_BITS // 8), np.uint8)

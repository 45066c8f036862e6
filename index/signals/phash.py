"""pHash: the 64-bit DCT hash (imagehash). It corroborates PDQ and never decides alone: on dark,
sparse pictures (nebulae) it matches at distance 2-4 where PDQ is 90+ bits apart."""

from __future__ import annotations

from typing import ClassVar

import cv2
import imagehash
import numpy as np
from PIL import Image

from index.signals.base import Computed, Kind, Signal
from index.signals.hashes import MIN_HASH_QUALITY, PHASH_BITS

# pHash looks at a 32x32 grey thumbnail. PIL's Lanczos from a whole 640x360 frame costs about 3x a
# box shrink to this width first (3.4 vs 0.9 ms a frame, loaded 2-core box), and on 120 corpus
# pictures the hash came out the same for 110 and 2 bits apart for 10 (the threshold is 5).
SHRINK_TO = 128


class PhashSignal(Signal):
    name: ClassVar[str] = "phash"
    kind: ClassVar[Kind] = "binary"
    stage: ClassVar[str] = "hash"
    decides_alone: ClassVar[bool] = False
    requires: ClassVar[str | None] = "pdq"
    quality_from: ClassVar[str | None] = "pdq"
    min_quality: ClassVar[int] = MIN_HASH_QUALITY

    @property
    def version(self) -> str:
        return "phash/1"

    @property
    def dim(self) -> int:
        return PHASH_BITS

    @property
    def threshold(self) -> float:
        return float(self.settings.phash_max_distance)

    def compute(self, frames: list[np.ndarray]) -> Computed:
        codes = [np.packbits(imagehash.phash(Image.fromarray(_shrunk(rgb)))
                             .hash.flatten().astype(np.uint8)) for rgb in frames]
        return Computed(np.stack(codes) if codes else np.zeros((0, PHASH_BITS // 8), np.uint8))


def _shrunk(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    if w <= SHRINK_TO:
        return np.ascontiguousarray(rgb)
    size = (SHRINK_TO, max(1, round(h * SHRINK_TO / w)))
    return cv2.resize(np.ascontiguousarray(rgb), size, interpolation=cv2.INTER_AREA)

"""Perceptual hashes of one frame, PDQ (256 bits) and pHash (64 bits) packed as bytes, in one call:
what the quality bench's corpus uses to find near-duplicate pictures. The gate's PDQ and pHash
signals (pdq.py, phash.py) share the constants.
"""

from __future__ import annotations

from dataclasses import dataclass

import imagehash
import numpy as np
import pdqhash
from PIL import Image

PDQ_BITS = 256
PHASH_BITS = 64
# Flat frames (black, one colour) have hashes that match any other flat frame: a hash of a frame
# below this PDQ quality is no evidence.
MIN_HASH_QUALITY = 40


# pdqhash.compute_dihedral's order: original, three rotations, then the left-right mirror.
_DIHEDRAL_MIRROR = 5


@dataclass(frozen=True)
class FrameHashes:
    pdq: bytes  # 32 bytes
    pdq_quality: int  # 0..100; low means a flat frame whose hash says little
    phash: bytes  # 8 bytes
    pdq_mirrored: bytes | None = None  # PDQ of the left-right mirror image, when asked for


def hash_frame(rgb: np.ndarray, *, mirrored: bool = False) -> FrameHashes:
    """rgb: (h, w, 3) uint8. With `mirrored`, also the PDQ of the mirror image: PDQ's dihedral
    variant gives it from the same transform, for about the cost of one hash."""
    rgb = np.ascontiguousarray(rgb)
    flipped = None
    if mirrored:
        variants, quality = pdqhash.compute_dihedral(rgb)
        bits = variants[0]
        flipped = np.packbits(variants[_DIHEDRAL_MIRROR].astype(np.uint8)).tobytes()
    else:
        bits, quality = pdqhash.compute(rgb)
    ph = imagehash.phash(Image.fromarray(rgb))
    return FrameHashes(
        pdq=np.packbits(bits.astype(np.uint8)).tobytes(),
        pdq_quality=int(quality),
        phash=np.packbits(ph.hash.flatten().astype(np.uint8)).tobytes(),
        pdq_mirrored=flipped,
    )


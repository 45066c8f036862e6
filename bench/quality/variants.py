"""Is one corpus picture a variant of another? Then they are one work, never a work and a negative.

Packages ship variants that a global hash tells apart: a wallpaper in a light and a dark colour,
a story painting before and after a fire, a crop, a turned view of the same patch of sky. Two
checks find them:

- clipgate's own ORB check at a high bar (NEAR_DUPLICATE_ORB inliers), cheap, run on every pair
  the corpus compares;
- SIFT (another detector and descriptor than the gate's) with RANSAC on a similarity transform,
  run within each source, where packages keep their variants. It sees the repainted half of a
  painting that ORB on a thumbnail misses (trow_intro_01 against trow_intro_02: ORB 19 inliers,
  SIFT 65 over 59% of the picture). Star fields give SIFT many chance "inliers" too, but they
  collapse onto a speck of the other picture, which the spread and scale limits refuse.

SIFT costs about 0.2 s a picture and 10 ms a pair, so its verdicts are kept in the cache folder
(variants.json) and a rerun pays nothing.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

import index

log = logging.getLogger(__name__)

# clipgate's ORB, at 512 px: unrelated pictures stay under 25 inliers.
NEAR_DUPLICATE_ORB = 40
SIFT_SIDE = 640
SIFT_FEATURES = 1000
SIFT_RATIO = 0.75
SIFT_RANSAC_PX = 3.0
# A variant agrees on at least this many SIFT matches of one placement, covering at least this
# share of the other picture, at a plausible scale. On the dev corpus the two real variants found
# agree on 65 and 135 inliers over 59% and 28%; unrelated pairs (star fields included) either
# stay under 30 or cover under 1%.
SIFT_MIN_INLIERS = 30
SIFT_MIN_SPREAD = 0.10
SIFT_SCALES = (0.25, 4.0)
CACHE_VERSION = 1


def thumbnail(im: Image.Image, side: int = 512) -> Image.Image:
    """An RGB copy with its long side at most `side`, decoded at a fraction of a JPEG's size."""
    im.draft("RGB", (side, side))
    small = im.convert("RGB")
    small.thumbnail((side, side))
    return small


class Variants:
    """The pair checks, with each picture's features computed once and SIFT's verdicts cached.

    root: the folder the pictures live under (cache keys are relative to it); cache: the JSON file
    that keeps SIFT's verdicts between builds (None: keep them in memory only)."""

    def __init__(self, root: Path, cache: Path | None = None) -> None:
        self.root = root
        self.cache = cache
        self._orb: dict[Path, Any] = {}
        self._sift: dict[Path, tuple[np.ndarray, np.ndarray | None, tuple[int, int]]] = {}
        self._verdicts: dict[str, list[float]] = {}
        self._dirty = False
        if cache is not None:
            try:
                saved = json.loads(cache.read_text())
                if saved.get("version") == CACHE_VERSION:
                    self._verdicts = dict(saved["pairs"])
            except (OSError, ValueError, AttributeError, KeyError):
                pass  # missing, damaged or from older code: checked again

    def same_orb(self, a: Path, b: Path) -> bool:
        """Do a and b show one picture (or overlapping parts of one scene) to clipgate's ORB, at
        any turn?"""

        return index.verify_features(self._orb_features(a), self._orb_features(b),
                      min_inliers=NEAR_DUPLICATE_ORB, max_rotation_deg=180.0,
                      min_work_spread=0.0, stretch=False) is not None

    def same(self, a: Path, b: Path) -> bool:
        """Is one of a and b a variant of the other, by ORB or by SIFT?"""
        return self.same_orb(a, b) or self.same_sift(a, b)

    def same_sift(self, a: Path, b: Path) -> bool:
        inliers, spread, scale = self.sift_fit(a, b)
        return (inliers >= SIFT_MIN_INLIERS and spread >= SIFT_MIN_SPREAD
                and SIFT_SCALES[0] <= scale <= SIFT_SCALES[1])

    def sift_fit(self, a: Path, b: Path) -> tuple[int, float, float]:
        """SIFT's best similarity placement of a on b: (inliers, the share of b they cover, the
        scale of a on b). Cached by the pair's paths."""
        key = f"{self._rel(a)}|{self._rel(b)}"
        if key not in self._verdicts:
            self._verdicts[key] = list(_sift_fit(self._sift_features(a), self._sift_features(b)))
            self._dirty = True
        inliers, spread, scale = self._verdicts[key]
        return int(inliers), float(spread), float(scale)

    def save(self) -> None:
        """Keep SIFT's verdicts for the next build (atomically: a killed run leaves the old file)."""
        if self.cache is None or not self._dirty:
            return
        tmp = self.cache.with_suffix(".tmp")
        tmp.write_text(json.dumps({"version": CACHE_VERSION, "pairs": self._verdicts}))
        tmp.replace(self.cache)
        self._dirty = False

    def _rel(self, p: Path) -> str:
        try:
            return str(p.relative_to(self.root))
        except ValueError:  # a picture from an installed wheel
            return str(p)

    def _orb_features(self, path: Path) -> Any:

        if path not in self._orb:
            with Image.open(path) as im:
                self._orb[path] = index.extract_features(np.asarray(thumbnail(im)))
        return self._orb[path]

    def _sift_features(self, path: Path) -> tuple[np.ndarray, np.ndarray | None, tuple[int, int]]:
        if path not in self._sift:
            with Image.open(path) as im:
                grey = np.asarray(thumbnail(im, SIFT_SIDE).convert("L"))
            kps, desc = cv2.SIFT_create(nfeatures=SIFT_FEATURES).detectAndCompute(grey, None)
            pts = np.float32([k.pt for k in kps]) if kps else np.zeros((0, 2), np.float32)
            self._sift[path] = (pts, desc, grey.shape)
        return self._sift[path]


def _sift_fit(a: tuple[np.ndarray, np.ndarray | None, tuple[int, int]],
              b: tuple[np.ndarray, np.ndarray | None, tuple[int, int]]) -> tuple[int, float, float]:
    (pa, da, _), (pb, db, shape_b) = a, b
    if da is None or db is None or len(da) < 3 or len(db) < 3:
        return 0, 0.0, 0.0
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(da, db, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < SIFT_RATIO * p[1].distance]
    if len(good) < 3:
        return 0, 0.0, 0.0
    src = pa[[g.queryIdx for g in good]]
    dst = pb[[g.trainIdx for g in good]]
    transform, mask = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC,
                                                  ransacReprojThreshold=SIFT_RANSAC_PX)
    if transform is None or mask is None:
        return 0, 0.0, 0.0
    agreed = dst[mask.ravel().astype(bool)]
    spread = (cv2.contourArea(cv2.convexHull(agreed)) / float(shape_b[0] * shape_b[1])
              if len(agreed) >= 3 else 0.0)
    scale = float(np.sqrt(abs(np.linalg.det(transform[:, :2]))))
    return int(len(agreed)), round(float(spread), 4), round(scale, 4)

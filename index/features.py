"""Local features (ORB) and their geometric check: the signal that survives crops, pans and overlays.

Global hashes see a 10% crop as a different picture. ORB keypoints of the copied region still
match the work's keypoints, and RANSAC on a similarity transform (scale, rotation, shift) keeps
only the matches that agree on one placement, which also tells where in the clip frame the copy
sits. Verification runs only on the candidate pairs the global signals propose.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

N_FEATURES = 500
RATIO = 0.8  # Lowe's ratio test
RANSAC_PX = 4.0

_matcher = cv2.BFMatcher(cv2.NORM_HAMMING)


@dataclass(frozen=True)
class Features:
    """keypoints (n, 2) float32 pixel positions; descriptors (n, 32) uint8; the frame's size."""

    keypoints: np.ndarray
    descriptors: np.ndarray
    width: int
    height: int

    def to_bytes(self) -> tuple[bytes, bytes]:
        return self.keypoints.astype(np.float32).tobytes(), self.descriptors.tobytes()

    @classmethod
    def from_bytes(cls, keypoints: bytes, descriptors: bytes, width: int, height: int) -> Features:
        return cls(
            np.frombuffer(keypoints, np.float32).reshape(-1, 2),
            np.frombuffer(descriptors, np.uint8).reshape(-1, 32),
            width,
            height,
        )


@dataclass(frozen=True)
class Verification:
    inliers: int
    matches: int  # matches that passed the ratio test
    region: tuple[float, float, float, float]  # inliers' box in the clip frame, 0..1 (x0, y0, x1, y1)
    scale: float  # the work appears at this scale in the clip


def extract(rgb: np.ndarray) -> Features:
    """ORB keypoints and descriptors of an RGB uint8 frame."""
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    orb = cv2.ORB_create(nfeatures=N_FEATURES)
    kps, desc = orb.detectAndCompute(grey, None)
    h, w = grey.shape
    if desc is None:
        return Features(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8), w, h)
    return Features(np.float32([k.pt for k in kps]), desc, w, h)


def verify(query: Features, work: Features, *, min_inliers: int) -> Verification | None:
    """Do query (a clip frame) and work (a protected frame) show the same picture, placed by one
    similarity transform? None when fewer than min_inliers matches agree."""
    if len(query.descriptors) < min_inliers or len(work.descriptors) < min_inliers:
        return None
    pairs = _matcher.knnMatch(query.descriptors, work.descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO * p[1].distance]
    if len(good) < min_inliers:
        return None
    src = query.keypoints[[g.queryIdx for g in good]]
    dst = work.keypoints[[g.trainIdx for g in good]]
    transform, mask = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX
    )
    if transform is None or mask is None:
        return None
    inliers = int(mask.sum())
    if inliers < min_inliers:
        return None
    # transform maps clip -> work. Its inverse places the work's corners in the clip frame: that
    # box (cut to the frame) is where the copy sits, not just where its keypoints happen to be.
    corners = np.float32([[0, 0], [work.width, 0], [work.width, work.height], [0, work.height]])
    placed = cv2.transform(corners[None], cv2.invertAffineTransform(transform))[0]
    x0, y0 = np.clip(placed.min(axis=0) / [query.width, query.height], 0.0, 1.0)
    x1, y1 = np.clip(placed.max(axis=0) / [query.width, query.height], 0.0, 1.0)
    # The work's scale in the clip is the inverse of the transform's scale.
    scale = float(np.sqrt(abs(np.linalg.det(transform[:, :2]))))
    return Verification(
        inliers=inliers,
        matches=len(good),
        region=(round(float(x0), 3), round(float(y0), 3), round(float(x1), 3), round(float(y1), 3)),
        scale=round(1.0 / scale, 3) if scale > 0 else 0.0,
    )

"""Local features (ORB) and their geometric check: the signal that survives crops, pans and overlays.

Global hashes see a 10% crop as a different picture. ORB keypoints of the copied region still
match the work's keypoints, and RANSAC on a similarity transform (scale, rotation, shift; or a
stretch of one, for a copy squeezed to another aspect) keeps only the matches that agree on one
placement, which also tells where in the clip frame the copy sits. Verification runs only on the
candidate pairs the global signals propose.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import faiss
import numpy as np

from index.threads import one_thread_if_small

N_FEATURES = 500
RATIO = 0.8  # Lowe's ratio test
RANSAC_PX = 4.0
GRID = 4  # keypoints are spread over GRID x GRID cells of the frame
OVERDETECT = 3  # detect this many times the keypoints wanted, then keep a spread-out subset
FAST_THRESHOLDS = (20, 8, 3)  # corner contrast, OpenCV's default first
REGION_SIDE = 640  # a crop's long side when its features are extracted (extract_region)
MIN_SCALE, MAX_SCALE = 0.1, 10.0  # plausible sizes of a copy relative to the work
# A copy in a generated clip is turned a little if at all (mirroring is checked on its own). A weak
# fit turned further is mostly RANSAC pairing look-alike texture (star fields, foliage, upside
# down), so it needs TURNED_INLIERS times the inliers: a copy turned on purpose still agrees on
# far more.
MAX_ROTATION_DEG = 30.0
TURNED_INLIERS = 3
# The inliers must cover this share of the work's area (their convex hull). Matches that collapse
# onto one small patch of the work (a repeated texture) are not a copy of the picture.
MIN_WORK_SPREAD = 0.01
# A copy stretched to another aspect (a square picture filling a 16:9 frame) fits a similarity
# transform only along a strip. Where the similarity fit has under STRETCH_TRIED_BELOW times the
# minimum inliers, an affine one is tried and taken when it agrees on STRETCH_INLIERS times as
# many (for its two extra degrees of freedom), with at most MAX_STRETCH between its two scales
# and its axes square within MAX_SHEAR_DEG.
STRETCH_TRIED_BELOW = 4
STRETCH_INLIERS = 1.5
MAX_STRETCH = 2.0
MAX_SHEAR_DEG = 10.0


@dataclass(frozen=True)
class Features:
    """keypoints (n, 2) float32 pixel positions; descriptors (n, 32) uint8; the frame's size."""

    keypoints: np.ndarray
    descriptors: np.ndarray
    width: int
    height: int
    # Extracted from the left-right mirror of the frame: keypoints are in the mirrored frame's
    # pixels, so a mirrored copy of a work matches by a plain similarity transform.
    mirrored: bool = False

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
    region: tuple[float, float, float, float]  # the copy's box in the clip frame, 0..1 (x0, y0, x1, y1)
    scale: float  # the work appears at this scale in the clip
    mirrored: bool = False  # the clip shows the work mirrored left-right


def extract(rgb: np.ndarray, *, mirrored: bool = False, n_features: int = N_FEATURES) -> Features:
    """ORB keypoints and descriptors of an RGB uint8 frame (of its mirror image if `mirrored`),
    strongest first, so the first few are the ones worth voting with."""
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    if mirrored:
        grey = np.ascontiguousarray(grey[:, ::-1])
    return _orb(grey, n_features, mirrored)


def extract_work(rgb: np.ndarray, *, n_features: int = N_FEATURES) -> Features:
    """A protected frame's features: the frame's own, plus those of a half-size copy (keypoints
    in full-size pixels). A copy pasted at a third of the work's size is matched against the
    half-size keypoints, which ORB's own pyramid gives only a few of."""
    full = extract(rgb, n_features=n_features)
    h, w = rgb.shape[:2]
    if min(h, w) < 160:
        return full
    half = extract(cv2.resize(np.ascontiguousarray(rgb), (w // 2, h // 2),
                              interpolation=cv2.INTER_AREA), n_features=n_features // 2)
    return Features(np.concatenate([full.keypoints, half.keypoints * 2.0]),
                    np.concatenate([full.descriptors, half.descriptors]), w, h)


def extract_region(rgb: np.ndarray, box: tuple[float, float, float, float], *,
                   mirrored: bool = False, n_features: int = N_FEATURES) -> Features:
    """ORB features of one crop of a frame (box: x0, y0, x1, y1 in 0..1 of the frame shown; of
    the mirror image's matching crop if `mirrored`), detected on the crop enlarged to about
    REGION_SIDE pixels, with keypoints in the (mirrored) frame's own pixels. A copy pasted at a
    quarter of the width has few keypoints of the frame's own; enlarged, its crop has hundreds."""
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    x0, y0, x1, y1 = box
    if mirrored:
        grey = np.ascontiguousarray(grey[:, ::-1])
        x0, x1 = 1.0 - x1, 1.0 - x0
    left, top = int(x0 * w), int(y0 * h)
    crop = grey[top:max(top + 8, int(y1 * h)), left:max(left + 8, int(x1 * w))]
    s = min(3.0, max(1.0, REGION_SIDE / max(crop.shape)))
    if s > 1.0:
        crop = cv2.resize(crop, (round(crop.shape[1] * s), round(crop.shape[0] * s)),
                          interpolation=cv2.INTER_LINEAR)
    found = _orb(np.ascontiguousarray(crop), n_features, mirrored)
    return Features(found.keypoints / s + np.float32([left, top]), found.descriptors, w, h,
                    mirrored)


def extract_both(rgb: np.ndarray, *, n_features: int = N_FEATURES) -> tuple[Features, Features]:
    """The frame's features and its mirror image's, from one grey conversion."""
    grey = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    return (_orb(grey, n_features, False),
            _orb(np.ascontiguousarray(grey[:, ::-1]), n_features, True))


def _orb(grey: np.ndarray, n_features: int, mirrored: bool) -> Features:
    h, w = grey.shape
    empty = Features(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8), w, h, mirrored)
    # Soft pictures (a stormy sky, a dark nebula, a gradient wallpaper) have no corner of FAST's
    # default contrast: ask for fainter ones until there are enough to place a copy with.
    for threshold in FAST_THRESHOLDS:
        orb = cv2.ORB_create(nfeatures=n_features * OVERDETECT, fastThreshold=threshold)
        kps = orb.detect(grey, None)
        if len(kps) >= n_features // 2:
            break
    if not kps:
        return empty
    kps, desc = orb.compute(grey, _spread(kps, w, h, n_features))
    if desc is None or not kps:
        return empty
    return Features(np.float32([k.pt for k in kps]), desc, w, h, mirrored)


def _spread(kps: list, w: int, h: int, n: int) -> list:
    """At most n keypoints: the n/2 strongest, and the rest spread over a GRID x GRID grid (the
    strongest of each cell, then the second strongest of each, ...). Corners crowd on text and
    logos; spreading keeps keypoints on the rest of the picture (the work under a caption), and
    the list is in spread order, so any prefix covers the whole frame."""
    response = np.array([k.response for k in kps], np.float32)
    pts = np.array([k.pt for k in kps], np.float32)
    cell = (np.minimum(GRID - 1, pts[:, 1] * GRID // h) * GRID
            + np.minimum(GRID - 1, pts[:, 0] * GRID // w)).astype(np.int32)
    by_strength = np.argsort(-response, kind="stable")
    rank = np.empty(len(kps), np.int32)
    seen: dict[int, int] = {}
    for i in by_strength.tolist():
        c = int(cell[i])
        rank[i] = seen.get(c, 0)
        seen[c] = rank[i] + 1
    spread = np.lexsort((-response, rank))
    # Half the budget goes to the strongest anywhere, half to the spread; listed in spread order.
    keep = np.zeros(len(kps), bool)
    keep[by_strength[: n // 2]] = True
    for i in spread.tolist():
        if keep.sum() >= n:
            break
        keep[i] = True
    return [kps[i] for i in spread.tolist() if keep[i]]


def _two_nearest(query: np.ndarray, work: np.ndarray
                 ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """For each query descriptor, its nearest and second-nearest work descriptors, each as
    (Hamming distances, work indexes; -1 where the work has too few). FAISS's binary flat search
    does this about 4x faster than OpenCV's brute-force matcher, which was most of the gate's
    geometric check."""
    index = faiss.IndexBinaryFlat(8 * work.shape[1])
    index.add(np.ascontiguousarray(work))
    with one_thread_if_small(len(query) * len(work)):
        distances, ids = index.search(np.ascontiguousarray(query), 2)
    return (distances[:, 0], ids[:, 0]), (distances[:, 1], ids[:, 1])


def fit_stretch(src: np.ndarray, dst: np.ndarray, min_inliers: int
                ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """An affine placement that only stretches (see MAX_STRETCH), with at least min_inliers."""
    if len(src) < min_inliers:
        return None, None
    transform, mask = cv2.estimateAffine2D(src, dst, method=cv2.RANSAC,
                                           ransacReprojThreshold=RANSAC_PX)
    if transform is None or mask is None or int(mask.sum()) < min_inliers:
        return None, None
    x_axis, y_axis = transform[:, 0], transform[:, 1]
    sx, sy = float(np.linalg.norm(x_axis)), float(np.linalg.norm(y_axis))
    if min(sx, sy) <= 0 or max(sx, sy) / min(sx, sy) > MAX_STRETCH:
        return None, None
    cos = float(np.dot(x_axis, y_axis)) / (sx * sy)
    if abs(90.0 - float(np.degrees(np.arccos(np.clip(cos, -1.0, 1.0))))) > MAX_SHEAR_DEG:
        return None, None
    if np.linalg.det(transform[:, :2]) <= 0:  # a mirror image is checked on its own
        return None, None
    return transform, mask


def verify(query: Features, work: Features, *, min_inliers: int,
           max_rotation_deg: float = MAX_ROTATION_DEG,
           min_work_spread: float = MIN_WORK_SPREAD, stretch: bool = True) -> Verification | None:
    """Do query (a clip frame) and work (a protected frame) show the same picture, placed by one
    similarity transform (or, failing that, a stretch: fit_stretch), its agreeing keypoints
    covering at least min_work_spread of the work?
    None when fewer than min_inliers matches agree, or fewer than TURNED_INLIERS times that for a
    placement turned more than max_rotation_deg."""
    if len(query.descriptors) < min_inliers or len(work.descriptors) < min_inliers:
        return None
    nearest, second = _two_nearest(query.descriptors, work.descriptors)
    good = np.flatnonzero(second[1] >= 0)
    good = good[nearest[0][good] < RATIO * second[0][good]]  # Lowe's ratio test
    if len(good) < min_inliers:
        return None
    src = query.keypoints[good]
    dst = work.keypoints[nearest[1][good]]
    transform, mask = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=RANSAC_PX
    )
    inliers = 0 if transform is None or mask is None else int(mask.sum())
    # A stretch may fit far more of them; tried only where a similarity already agrees on some
    # (half the minimum), so chance agreement in repeated texture gets no extra freedom.
    if stretch and min_inliers / 2 <= inliers < STRETCH_TRIED_BELOW * min_inliers:
        fit, fit_mask = fit_stretch(
            src, dst, math.ceil(STRETCH_INLIERS * max(min_inliers, inliers)))
        if fit is not None and fit_mask is not None:
            transform, mask, inliers = fit, fit_mask, int(fit_mask.sum())
    if transform is None or mask is None or inliers < min_inliers:
        return None
    # The work's scale in the clip is the inverse of the transform's scale. A placement that
    # shrinks the work to a speck or blows it up past recognition is RANSAC fitting noise (many
    # matches collapsed onto one point), not a copy.
    scale = float(np.sqrt(abs(np.linalg.det(transform[:, :2]))))
    if not MIN_SCALE <= (1.0 / scale if scale > 0 else 0.0) <= MAX_SCALE:
        return None
    turned = abs(float(np.degrees(np.arctan2(transform[1, 0], transform[0, 0]))))
    if turned > max_rotation_deg and inliers < TURNED_INLIERS * min_inliers:
        return None
    agreed = dst[mask.ravel().astype(bool)].astype(np.float32)
    if cv2.contourArea(cv2.convexHull(agreed)) < min_work_spread * work.width * work.height:
        return None
    # transform maps clip -> work. Its inverse places the work's corners in the clip frame: that
    # box (cut to the frame) is where the copy sits, not just where its keypoints happen to be.
    corners = np.float32([[0, 0], [work.width, 0], [work.width, work.height], [0, work.height]])
    placed = cv2.transform(corners[None], cv2.invertAffineTransform(transform))[0]
    x0, y0 = np.clip(placed.min(axis=0) / [query.width, query.height], 0.0, 1.0)
    x1, y1 = np.clip(placed.max(axis=0) / [query.width, query.height], 0.0, 1.0)
    if query.mirrored:  # back to the clip frame as shown
        x0, x1 = 1.0 - x1, 1.0 - x0
    return Verification(
        inliers=inliers,
        matches=len(good),
        region=(round(float(x0), 3), round(float(y0), 3), round(float(x1), 3), round(float(y1), 3)),
        scale=round(1.0 / scale, 3) if scale > 0 else 0.0,
        mirrored=query.mirrored,
    )

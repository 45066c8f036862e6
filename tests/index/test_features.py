"""The geometric check: a copy cropped, pasted small into another scene, captioned or mirrored is
found, and placed; unrelated pictures stay below the threshold."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from clipgate.settings import Settings
from index.features import extract, extract_both, extract_work, fit_stretch, verify
from tests.media import photo, noise_frame

DEFAULTS = Settings()
MIN_INLIERS = DEFAULTS.orb_min_inliers
QUERY_FEATURES = DEFAULTS.orb_query_features


def _query(rgb: np.ndarray):
    """A clip frame's features as the gate extracts them: more keypoints, and its mirror's."""
    return extract_both(rgb, n_features=QUERY_FEATURES)


def _pip(name: str, frac: float, at: tuple[int, int] = (280, 120)):
    work = photo(name, (640, 427))
    scene = noise_frame(5, (640, 360)).copy()
    w = int(640 * frac)
    h = int(w * 427 / 640)
    x, y = at
    scene[y:y + h, x:x + w] = np.asarray(Image.fromarray(work).resize((w, h)))
    return scene, work, (x, y, w, h)


@pytest.mark.parametrize("name", ["rocket", "coffee", "astronaut"])
def test_picture_in_picture_at_40_percent_is_found_where_it_sits(name):
    scene, work, (x, y, w, h) = _pip(name, 0.4)
    v = verify(_query(scene)[0], extract_work(work), min_inliers=MIN_INLIERS)
    assert v is not None and v.inliers >= MIN_INLIERS
    x0, y0, x1, y1 = v.region
    assert abs(x0 - x / 640) < 0.03 and abs(x1 - (x + w) / 640) < 0.03
    assert abs(y0 - y / 360) < 0.03 and abs(y1 - (y + h) / 360) < 0.03
    assert abs(v.scale - 0.4 * 640 / 640) < 0.05
    assert not v.mirrored


def test_crop_of_40_percent_is_found():
    work = photo("coffee", (600, 400))
    crop = np.ascontiguousarray(work[60:300, 90:450])  # 36% of the area kept
    v = verify(_query(np.asarray(Image.fromarray(crop).resize((640, 360))))[0],
               extract_work(work), min_inliers=MIN_INLIERS)
    assert v is not None


def test_mirrored_copy_is_found_only_through_the_mirror_image():
    work = photo("astronaut", (512, 512))
    scene = noise_frame(2, (640, 360)).copy()
    scene[40:296, 300:556] = np.asarray(Image.fromarray(work[:, ::-1]).resize((256, 256)))
    plain, mirrored = _query(scene)
    assert verify(plain, extract_work(work), min_inliers=MIN_INLIERS) is None
    v = verify(mirrored, extract_work(work), min_inliers=MIN_INLIERS)
    assert v is not None and v.mirrored
    # The region is given in the clip frame as shown, not in its mirror image.
    x0, y0, x1, y1 = v.region
    assert abs(x0 - 300 / 640) < 0.03 and abs(x1 - 556 / 640) < 0.03
    assert abs(y0 - 40 / 360) < 0.03 and abs(y1 - 296 / 360) < 0.03


def test_captioned_copy_keeps_keypoints_on_the_picture():
    """Text crowds the strongest corners; spread keypoints still cover the work under it."""
    from PIL import ImageDraw, ImageFont

    work = photo("chelsea", (540, 360))
    im = Image.fromarray(work.copy())
    draw = ImageDraw.Draw(im)
    try:
        font = ImageFont.truetype("DejaVuSans-Bold.ttf", 31)
    except OSError:
        font = ImageFont.load_default(31)
    for i, line in enumerate(["LIMITED OFFER", "watch till the end", "LIMITED OFFER"]):
        y = 150 + i * 45
        draw.rectangle([20, y - 4, 520, y + 35], fill=(0, 0, 0))
        draw.text((30, y), line, fill=(255, 230, 0), font=font)
    v = verify(_query(np.asarray(im))[0], extract_work(work), min_inliers=MIN_INLIERS)
    assert v is not None and v.inliers >= 2 * MIN_INLIERS


def test_unrelated_pictures_do_not_verify():
    names = ["rocket", "coffee", "astronaut", "chelsea", "hubble_deep_field",
             "immunohistochemistry"]
    for a in names:
        plain, mirrored = _query(photo(a))
        for b in names:
            if a != b:
                work = extract_work(photo(b))
                assert verify(plain, work, min_inliers=MIN_INLIERS) is None, (a, b)
                assert verify(mirrored, work, min_inliers=MIN_INLIERS) is None, (a, b)
    assert verify(extract(noise_frame(1)), extract_work(photo("rocket")),
                  min_inliers=MIN_INLIERS) is None


def test_spread_keypoints_cover_the_frame_in_any_prefix():
    f = extract(photo("astronaut"), n_features=500)
    first = f.keypoints[:64]
    cells = {(int(x * 4 // 640), int(y * 4 // 360)) for x, y in first}
    assert len(cells) >= 12  # of the 16 cells, the first 64 keypoints reach most


def test_a_turned_copy_needs_more_agreement_the_further_it_is_turned():
    """Generated clips turn a copy a few degrees; a weak fit turned far is RANSAC pairing texture,
    but a copy turned on purpose (a quarter turn) still agrees on many keypoints and is found."""
    work = photo("astronaut", (480, 480))
    features = extract_work(work)
    for deg in (12, 90, 180):
        turned = np.asarray(Image.fromarray(work).rotate(deg, resample=Image.BILINEAR))
        assert verify(_query(turned)[0], features, min_inliers=MIN_INLIERS) is not None, deg
    turned = _query(np.asarray(Image.fromarray(work).rotate(60, resample=Image.BILINEAR)))[0]
    strong = verify(turned, features, min_inliers=MIN_INLIERS)
    assert strong is not None
    # The same fit, were it a weak one (under 3x the inliers asked for), is refused for its turn
    # alone: allowed a 90-degree turn, it passes.
    weak = strong.inliers // 2
    assert verify(turned, features, min_inliers=weak) is None
    assert verify(turned, features, min_inliers=weak, max_rotation_deg=90) is not None


def test_matches_collapsed_on_one_small_patch_of_the_work_are_not_a_copy():
    """Keypoints that agree only within a patch under 1% of the work (here a small detail blown
    up 3x in the clip) are texture, not the picture."""
    detail = photo("astronaut", (96, 80))
    work = np.full((720, 1280, 3), 128, np.uint8)
    work[300:380, 600:696] = detail  # 0.8% of the work's area
    clip = np.full((360, 640, 3), 128, np.uint8)
    clip[60:300, 176:464] = np.asarray(Image.fromarray(detail).resize((288, 240), Image.BICUBIC))
    features = extract_work(work)
    assert verify(_query(clip)[0], features, min_inliers=6, min_work_spread=0.0) is not None
    assert verify(_query(clip)[0], features, min_inliers=6) is None


def test_a_soft_picture_still_gets_keypoints_to_place_a_copy_with():
    """A stormy sky or a gradient wallpaper has no corner of FAST's default contrast; fainter
    corners are asked for, so its copy can still be placed."""
    import cv2

    soft = np.asarray(Image.fromarray(photo("coffee")).filter(ImageFilter.GaussianBlur(4)))
    soft = (soft.astype(np.float32) * 0.25 + 96).astype(np.uint8)  # low contrast too
    grey = cv2.cvtColor(soft, cv2.COLOR_RGB2GRAY)
    assert len(cv2.ORB_create(nfeatures=1500).detect(grey, None)) < MIN_INLIERS  # the default
    work = extract_work(soft)
    assert len(work.descriptors) >= 10 * MIN_INLIERS
    v = verify(_query(soft[20:340, 30:600])[0], work, min_inliers=MIN_INLIERS)
    assert v is not None and v.inliers >= 2 * MIN_INLIERS


@pytest.mark.parametrize("name", ["rocket", "coffee", "astronaut"])
def test_a_copy_stretched_to_another_aspect_is_found_and_placed(name):
    """Squeezed to 60% of its height on black, as a generator fills a frame of another aspect: no
    similarity transform fits, a stretch does."""
    work = photo(name, (512, 512))
    scene = np.zeros((360, 640, 3), np.uint8)
    scene[30:337, 64:576] = np.asarray(Image.fromarray(work).resize((512, 307)))
    v = verify(_query(scene)[0], extract_work(work), min_inliers=MIN_INLIERS)
    assert v is not None and v.inliers >= 1.5 * MIN_INLIERS
    assert np.allclose(v.region, (64 / 640, 30 / 360, 576 / 640, 337 / 360), atol=0.03)


def test_a_stretch_past_the_limit_or_a_shear_is_no_copy():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 500, (60, 2)).astype(np.float32)
    for matrix in ([[3.0, 0, 0], [0, 1.0, 0]],  # three times wider than tall
                   [[1.0, 0.5, 0], [0, 1.0, 0]],  # sheared by 27 degrees
                   [[-1.0, 0, 500], [0, 1.0, 0]]):  # mirrored: the mirror view's job
        dst = (src @ np.float32(matrix)[:, :2].T + np.float32(matrix)[:, 2]).astype(np.float32)
        assert fit_stretch(src, dst, MIN_INLIERS) == (None, None), matrix
    dst = (src * np.float32([1.0, 0.6])).astype(np.float32)
    transform, mask = fit_stretch(src, dst, MIN_INLIERS)
    assert transform is not None and int(mask.sum()) == len(src)

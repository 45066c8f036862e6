"""The geometric check: a copy pasted small into another scene is found, and placed."""

from __future__ import annotations

import numpy as np
from PIL import Image

from index.features import extract, verify
from tests.media import noise_frame, photo


def test_picture_in_picture_is_found_where_it_sits():
    work = photo("rocket", (640, 427))
    scene = noise_frame(5, (640, 360)).copy()
    small = np.asarray(Image.fromarray(work).resize((320, 213)))  # half the frame width
    scene[120:333, 280:600] = small
    v = verify(extract(scene), extract(work), min_inliers=20)
    assert v is not None and v.inliers >= 20
    x0, y0, x1, y1 = v.region
    assert abs(x0 - 280 / 640) < 0.03 and abs(x1 - 600 / 640) < 0.03
    assert abs(y0 - 120 / 360) < 0.03 and abs(y1 - 333 / 360) < 0.03
    assert abs(v.scale - 0.5) < 0.05


def test_crop_of_40_percent_is_found():
    work = photo("coffee", (600, 400))
    crop = np.ascontiguousarray(work[60:300, 90:450])  # 36% of the area kept
    v = verify(extract(np.asarray(Image.fromarray(crop).resize((640, 360)))), extract(work),
               min_inliers=20)
    assert v is not None


def test_unrelated_pictures_do_not_verify():
    for a, b in (("rocket", "coffee"), ("astronaut", "chelsea"), ("coffee", "chelsea")):
        assert verify(extract(photo(a)), extract(photo(b)), min_inliers=20) is None
    assert verify(extract(noise_frame(1)), extract(photo("rocket")), min_inliers=20) is None

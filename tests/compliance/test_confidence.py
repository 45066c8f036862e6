"""A match's confidence: a segment of strong frames outweighs one stray frame, and a long run of
weak look-alike frames never adds up to one strong frame."""

from __future__ import annotations

import numpy as np
import pytest

from clipgate.settings import Settings
from compliance.alignment import match_works
from index import Hit, SearchResult

SETTINGS = Settings(_env_file=None)
WORK = {"id": "w", "title": "t", "owner": "o", "policy": "block", "kind": "image"}


def _confidence(inliers: list[float]) -> float:
    """Confidence of one image work matched by ORB on successive clip frames."""
    n = len(inliers)
    hits = [Hit(q, 1, "orb", v) for q, v in enumerate(inliers)]
    result = SearchResult(1, {}, hits, {1: ("w", 0.0)}, {"w": WORK})
    matches, _ = match_works(result, np.arange(n, dtype=np.float64), SETTINGS,
                             duration_s=float(n))
    return matches[0].confidence


def test_frames_at_the_threshold_add_nothing():
    at = SETTINGS.orb_min_inliers
    assert _confidence([at]) == 0.5
    assert _confidence([at] * 10) == 0.5


def test_many_weak_frames_stay_below_one_strong_frame():
    weak = 2 * SETTINGS.orb_min_inliers
    strong = 12 * SETTINGS.orb_min_inliers
    assert _confidence([weak] * 10) < _confidence([strong])


def test_a_segment_outweighs_one_stray_frame():
    v = 4 * SETTINGS.orb_min_inliers
    assert _confidence([v]) < _confidence([v, v]) < _confidence([v, v, v]) < 1.0


def _frame_confidence(hits: list[Hit]) -> float:
    """Confidence of one image work matched on one clip frame by the given hits."""
    result = SearchResult(1, {}, hits, {1: ("w", 0.0)}, {"w": WORK})
    matches, _ = match_works(result, np.zeros(1), SETTINGS, duration_s=1.0)
    return matches[0].confidence


def test_two_kinds_of_signal_agreeing_on_a_frame_outweigh_either_alone():
    pdq = Hit(0, 1, "pdq", 50.0)  # a captioned copy: PDQ weak
    orb = Hit(0, 1, "orb", 2.0 * SETTINGS.orb_min_inliers)
    both = _frame_confidence([pdq, orb])
    assert both > max(_frame_confidence([pdq]), _frame_confidence([orb]))
    assert both < 1.0


def test_phash_beside_pdq_adds_nothing_of_its_own():
    pdq = Hit(0, 1, "pdq", 50.0)
    assert _frame_confidence([pdq, Hit(0, 1, "phash", 4.0)]) == pytest.approx(
        max(_frame_confidence([pdq]), _frame_confidence([Hit(0, 1, "phash", 4.0)])))


def test_sscd_counts_with_the_global_group_and_orb_adds_to_it():
    """SSCD is a global descriptor: beside PDQ on the same pair it is one piece of evidence, and
    the geometric check agreeing still adds its own."""
    sscd = Hit(0, 1, "sscd", SETTINGS.sscd_min_score + 0.1, raw=0.7)
    pdq = Hit(0, 1, "pdq", 50.0)
    orb = Hit(0, 1, "orb", 2.0 * SETTINGS.orb_min_inliers)
    alone = max(_frame_confidence([sscd]), _frame_confidence([pdq]))
    assert _frame_confidence([sscd, pdq]) == pytest.approx(alone)
    assert _frame_confidence([sscd, pdq, orb]) > alone

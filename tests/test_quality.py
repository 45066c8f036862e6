"""The quality benchmark: its metrics on hand-made cases, and its quick mode end to end (real
PostgreSQL, real media from installed wheels) so that `clipgate bench quality` cannot rot."""

from __future__ import annotations

import math

import numpy as np
import pytest

from clipgate.quality import transforms as tf
from clipgate.quality.metrics import (
    Prediction,
    Query,
    micro_ap,
    recall_above,
    segment_ap,
    threshold_at_fpr,
)


def test_micro_ap_ranks_every_prediction_in_one_list():
    truth = {("q1", "a"), ("q2", "b"), ("q3", "c")}
    preds = [Prediction("q1", "a", 0.9), Prediction("q2", "x", 0.8), Prediction("q2", "b", 0.7)]
    # ranks 1 and 3 are right: (1/1 + 2/3) / 3 true pairs; q3's pair was never predicted.
    assert math.isclose(micro_ap(preds, truth), (1 + 2 / 3) / 3)
    assert micro_ap([], truth) == 0.0


def test_threshold_at_fpr_lets_through_at_most_the_allowed_negatives():
    negatives = {f"n{i}" for i in range(200)}
    preds = [Prediction("n0", "a", 0.9), Prediction("n1", "a", 0.6), Prediction("n1", "b", 0.7),
             Prediction("p", "a", 0.8)]
    # 0.5% of 200 negatives = one may score above: the threshold is the second-best negative.
    assert threshold_at_fpr(preds, negatives, 0.005) == 0.7
    assert threshold_at_fpr(preds, negatives, 0.0) == 0.9
    assert recall_above(preds, {("p", "a")}, 0.7) == 1.0
    assert recall_above(preds, {("p", "a")}, 0.9) == 0.0


def test_segment_ap_needs_the_right_work_at_the_right_time():
    q = Query("s", "segment", ("w",), (4.0, 6.0))
    right = Prediction("s", "w", 0.9, ((4.1, 5.0),))
    early = Prediction("s", "w", 0.9, ((0.0, 1.0),))
    wrong_work = Prediction("s", "v", 0.9, ((4.1, 5.0),))
    assert segment_ap([right], [q], pad_s=0.5) == 1.0
    assert segment_ap([early], [q], pad_s=0.5) == 0.0
    assert segment_ap([wrong_work], [q], pad_s=0.5) == 0.0


def test_every_family_changes_the_picture_and_keeps_the_frame_size():
    import random

    rgb = np.asarray(tf.fit(np.random.default_rng(0).integers(0, 255, (400, 600, 3),
                                                              dtype=np.uint8), (540, 360)))
    src = tf.still(rgb)
    bg = tf.still(np.full((360, 640, 3), 90, np.uint8), size=(640, 360))
    rng = random.Random(0)
    for family in tf.FAMILIES:
        if family in ("segment", "speed"):
            continue  # they act on time, not on the picture
        e = tf.Edit(family, tf.sample_params(family, rng))
        out = tf.render(src, [e], bg, 1.0)
        assert out.dtype == np.uint8 and out.ndim == 3, family
        assert not np.array_equal(out, src(1.0)), family


def test_quick_benchmark_runs_and_clipgate_beats_the_pdq_baseline(settings):
    from clipgate.quality.run import run_quality, table

    r = run_quality(settings, quick=True, per_family=1, per_pair=0, negatives=4)
    methods = r["methods"]
    assert set(methods) >= {"clipgate", "threatexchange-pdq", "phash-only", "no-clip", "no-pdq",
                            "no-phash", "no-orb"}
    ours, peer = methods["clipgate"], methods["threatexchange-pdq"]
    assert ours["negatives_with_any_match"] == 0  # unrelated content stays below thresholds
    assert ours["micro_ap"] >= 0.8 and ours["micro_ap"] > peer["micro_ap"]
    # Crop, picture-in-picture and mirror are what the hashes miss and the geometry catches.
    for family in ("crop", "pip", "mirror"):
        assert ours["recall_by_family"][family] == 1.0, family
    assert methods["no-orb"]["recall_by_family"]["pip"] == 0.0
    assert ours["segment_ap"] == 1.0
    assert r["queries"]["negative"] == 4 and r["gate_s"]["median"] > 0
    assert "clipgate" in table(r)

"""Which raw index hits count, by each signal's rule: pHash only beside PDQ, hashes only on frames
with detail, a signal that measures nothing never, and a float signal from its threshold."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

import index
from index import Hit
from index.search import counted


def _fp(quality=(100, 100)):
    return SimpleNamespace(quality={"pdq": np.array(quality)})


def _signals(hits):
    return sorted((h.query, h.frame_id, h.signal, h.mirrored) for h in hits)


def test_phash_counts_only_where_pdq_fires_on_the_same_pair(settings):
    rules = index.rules(settings)
    raw = [Hit(0, 7, "pdq", 20), Hit(0, 7, "phash", 2),  # corroborated
           Hit(1, 9, "phash", 2)]  # pHash alone: a dark look-alike
    assert _signals(counted(raw, _fp(), rules)) == [(0, 7, "pdq", False),
                                                    (0, 7, "phash", False)]
    # With PDQ switched off (the no-pdq ablation), pHash stands alone.
    assert _signals(counted(raw, _fp(), rules, {"pdq"})) == [(0, 7, "phash", False),
                                                             (1, 9, "phash", False)]


def test_hashes_do_not_count_on_a_flat_frame(settings):
    rules = index.rules(settings)
    raw = [Hit(0, 5, "pdq", 10), Hit(1, 6, "pdq", 10, mirrored=True), Hit(1, 6, "phash", 1)]
    got = counted(raw, _fp(quality=(100, 12)), rules)  # frame 1 is too flat for its hash
    assert _signals(got) == [(0, 5, "pdq", False)]


def test_a_float_signal_counts_from_its_threshold(settings):
    rules = index.rules(settings)
    t = settings.sscd_min_score
    raw = [Hit(0, 1, "sscd", t + 0.01, raw=0.9), Hit(0, 2, "sscd", t - 0.01, raw=0.8)]
    assert _signals(counted(raw, _fp(), rules)) == [(0, 1, "sscd", False)]


def test_a_signal_that_measures_nothing_never_counts(settings):
    """CLIP forced on without a checkpoint: random weights, reported and never counted."""
    on = settings.model_copy(update={"clip": "on", "clip_model": "ViT-S-32"})
    rules = index.rules(on)
    assert not rules["clip"].counts
    assert counted([Hit(0, 1, "clip", 0.999, raw=0.999)], _fp(), rules) == []
    # Without a checkpoint, the default (auto) does not even compute it.
    assert "clip" not in index.active(settings)
    assert index.clip_status(settings)["computed"] is False

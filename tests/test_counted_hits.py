"""Which raw index hits count: pHash only beside PDQ, mirror rows only for PDQ."""

from __future__ import annotations

from index import Hit
from index.live import counted_hits


def _signals(hits):
    return sorted((h.query, h.frame_id, h.signal, h.mirrored) for h in hits)


def test_phash_counts_only_where_pdq_fires_on_the_same_pair():
    raw = [Hit(0, 7, "pdq", 20), Hit(0, 7, "phash", 2),  # corroborated
           Hit(1, 9, "phash", 2)]  # pHash alone: a dark look-alike
    assert _signals(counted_hits(raw, 2)) == [(0, 7, "pdq", False), (0, 7, "phash", False)]
    # With PDQ switched off (the no-pdq ablation), pHash stands alone.
    assert _signals(counted_hits(raw, 2, {"pdq"})) == [(0, 7, "phash", False),
                                                       (1, 9, "phash", False)]


def test_mirror_rows_count_for_pdq_only_and_back_on_their_frame():
    # n = 2: row 3 is frame 1's mirror image.
    raw = [Hit(3, 5, "pdq", 10), Hit(3, 5, "phash", 1), Hit(3, 6, "clip", 0.99)]
    got = counted_hits(raw, 2)
    assert _signals(got) == [(1, 5, "pdq", True)]

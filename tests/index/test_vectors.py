"""The FAISS backend of the float-descriptor search: exact while small, compressed (IVF + product
codes) past faiss_compress_from frames, and the change log's delta and tombstones on top of it."""

from __future__ import annotations

import numpy as np
import pytest

import index
from compliance import match_file
from index.synthetic import VectorModel
from index.vectors import FaissVectors, VectorConfig, compacted, flat, for_frames
from tests.media import photo, write_image


def _catalogue(n: int, seed: int = 0) -> np.ndarray:
    """(n, 64) vectors in works of 10 frames, with real vectors' kind of anisotropy."""
    rng = np.random.default_rng(seed)
    basis = rng.standard_normal((16, 64)).astype(np.float32) * np.linspace(1, 0.1, 16)[:, None]
    model = VectorModel(np.zeros(64, np.float32), basis, 0.05)
    return model.sample(n, rng)


def _recall_at(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth)]))


def test_the_index_is_compressed_past_the_threshold_and_keeps_near_exact_answers():
    x = _catalogue(6_000)
    ids = np.arange(len(x), dtype=np.int64) + 1_000
    config = VectorConfig(compress_from=5_000, compressed="IVF{nlist},PQ32x4fs", nprobe=16,
                          train_max=6_000)
    small = for_frames(64, config, x[:4_000])
    assert small.kind == "flat"
    big = for_frames(64, config, x)
    big.add(x, ids)
    assert big.kind == "compressed" and big.ntotal == len(x)
    exact = flat(64)
    exact.add(x, ids)
    rng = np.random.default_rng(1)
    q = x[rng.choice(len(x), 100, replace=False)] + 0.02 * rng.standard_normal((100, 64))
    q = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
    truth_s, truth = exact.search(q, 10)
    got_s, got = big.search(q, 10)
    # Proposed by product codes, re-scored from 8-bit codes: the near-duplicate comes first, with
    # its cosine within a hair of the exact one (the gate's thresholds read it).
    assert (got[:, 0] == truth[:, 0]).mean() >= 0.95
    assert np.abs(got_s[:, 0] - truth_s[:, 0]).max() < 0.01
    assert _recall_at(got, truth) >= 0.9
    # Without the refinement, the near-duplicate's work still comes first.
    coarse = for_frames(64, VectorConfig(**{**config.__dict__, "refine": "none"}), x)
    coarse.add(x, ids)
    _, got = coarse.search(q, 10)
    assert ((got[:, 0] - 1_000) // 10 == (truth[:, 0] - 1_000) // 10).mean() >= 0.95
    # Compaction: tombstones leave, the delta comes in, the training is kept.
    dead = ids[:50]
    new = _catalogue(6_020)[-20:]  # new frames, of the same kind
    merged = compacted(big, dead, np.arange(20, dtype=np.int64) + 100_000, new, config)
    assert merged.kind == "compressed" and merged.ntotal == len(x) - 50 + 20
    assert big.ntotal == len(x)  # left as it was
    sims, found = merged.search(new, 1)
    assert (found[:, 0] // 10 == (np.arange(20) + 100_000) // 10).all() and sims.min() > 0.9
    assert not np.isin(merged.search(x[:50], 10)[1], dead).any()
    # A flat index that grows past the threshold at compaction becomes compressed.
    grown = compacted(exact, np.zeros(0, np.int64), np.arange(20, dtype=np.int64) + 100_000,
                      new, config)
    assert grown.kind == "compressed" and grown.ntotal == len(x) + 20


def test_the_gate_finds_a_copy_in_a_compressed_index_with_delta_and_tombstones(
        settings, tmp_path, monkeypatch):
    from index import store

    settings = settings.model_copy(update={"faiss_compress_from": 2_000, "faiss_nprobe": 64})
    index.seed_synthetic(settings, frames=3_000)
    cat = write_image(tmp_path / "chelsea.png", photo("chelsea"))
    work = str(index.register_work(cat, owner="S", title="cat", policy="block",
                                   settings=settings)["id"])
    # The rebuild reads the compressed signal's vectors a batch at a time (a sample to train
    # on, then all of them), never all at once.
    monkeypatch.setattr(store, "VECTOR_BATCH", 500)
    batches = []
    real = store.active_vector_batches
    monkeypatch.setattr(store, "active_vector_batches", lambda conn, signal, **kw: (
        batches.append(len(b)) or b for b in real(conn, signal, **kw)))
    rebuilt = index.rebuild(settings)
    assert max(batches) <= 500 and sum(batches) > rebuilt["frames"]  # the sample, then every one
    live = index.sync(settings)
    assert live.backends == {"sscd": "compressed"} and live.delta_frames == 0
    assert live.count("sscd") == rebuilt["frames"] == 3_000 + len(live.meta.frames_of(work))
    # The saved file keeps the re-scoring codes as arrays of their own (written, not copied into
    # one), and reads back to the same index.
    from index.live import INDEX_FILE

    saved = settings.index_dir / INDEX_FILE
    with np.load(saved) as z:
        assert {"index_sscd_codes", "index_sscd_ids", "index_sscd_sq"} <= set(z.files)
    loaded = index.FrameIndex.load(saved, index.VectorConfig.from_settings(settings))
    probe = np.random.default_rng(9).standard_normal((20, 512)).astype(np.float32)
    probe /= np.linalg.norm(probe, axis=1, keepdims=True)
    got, want = loaded.nearest("sscd", probe, 10), live.nearest("sscd", probe, 10)
    assert (got[1] == want[1]).all() and np.allclose(got[0], want[0])
    assert work in {m.work_id for m in match_file(cat, settings).matches}
    # Changes on top of it: an add goes to the exact delta, a removal becomes a tombstone.
    rocket = write_image(tmp_path / "rocket.png", photo("rocket"))
    other = str(index.register_work(rocket, owner="S", title="rocket", policy="block",
                                    settings=settings)["id"])
    index.remove_work(work, settings=settings)
    live = index.sync(settings)
    assert live.delta_frames > 0 and live.tombstones > 0
    assert {m.work_id for m in match_file(rocket, settings).matches} == {other}
    assert work not in {m.work_id for m in match_file(cat, settings).matches}
    assert index.compact(settings)["compacted"]
    live = index.sync(settings)
    assert live.backends == {"sscd": "compressed"} and live.delta_frames == 0
    assert {m.work_id for m in match_file(rocket, settings).matches} == {other}
    health = index.health(settings)
    assert health["ok"] and health["vectors"]["signals"]["sscd"]["kind"] == "compressed"


def test_rescoring_codes_find_any_id_order_and_survive_changes_and_old_files():
    import faiss

    from index.vectors import Codes

    rng = np.random.default_rng(3)
    x = _catalogue(500, seed=3)
    ids = rng.permutation(np.arange(500, dtype=np.int64) * 7)  # not in order
    codes = Codes.trained(64, x)
    codes.add(x[:200], ids[:200])
    codes.add(x[200:], ids[200:])  # grows past its room
    want = ids[[5, 499, 250, 0]]
    got = codes.decode(want)
    assert np.abs(got - x[[5, 499, 250, 0]]).max() < 0.02  # 8 bits a dimension
    with pytest.raises(KeyError):
        codes.decode(np.array([3]))  # never added
    changed = codes.changed(ids[:10], x[:2], np.array([10_001, 10_002]))
    assert changed.ntotal == 492 and codes.ntotal == 500  # the old codes are left as they were
    with pytest.raises(KeyError):
        changed.decode(ids[:1])
    assert np.abs(changed.decode(np.array([10_002])) - x[1]).max() < 0.02
    assert changed.nbytes() == 492 * (64 + 8)
    # An index file from before: the codes in an IndexIDMap2 over an IndexScalarQuantizer.
    sq = faiss.IndexScalarQuantizer(64, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
    sq.train(x)
    old = faiss.IndexIDMap2(sq)
    old.add_with_ids(x, ids)
    converted = Codes.from_id_map(faiss.deserialize_index(faiss.serialize_index(old)))
    assert np.allclose(converted.decode(want), old.reconstruct_batch(want))


def test_many_lists_are_trained_two_level_under_an_hnsw_quantiser(monkeypatch, tmp_path):
    import faiss

    from index import vectors

    x = _catalogue(8_000, seed=4)
    ids = np.arange(len(x), dtype=np.int64)
    monkeypatch.setattr(vectors, "TWO_LEVEL_FROM", 64)  # 10M frames' lists, in miniature
    config = VectorConfig(compressed="IVF{nlist}_HNSW32,PQ32x4fs", nlist=256, nprobe=32)
    seen = []
    real = vectors.two_level_centres
    monkeypatch.setattr(vectors, "two_level_centres",
                        lambda t, n: seen.append(n) or real(t, n))
    big = vectors.compressed(64, x, config, len(x))
    big.add(x, ids)
    assert seen == [256]
    assert isinstance(faiss.downcast_index(faiss.extract_index_ivf(big.index).quantizer),
                      faiss.IndexHNSW)
    exact = flat(64)
    exact.add(x, ids)
    q = x[::80] + 0.02 * np.random.default_rng(5).standard_normal((100, 64)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    _, truth = exact.search(q, 10)
    _, got = big.search(q, 10)
    assert (got[:, 0] == truth[:, 0]).mean() >= 0.95 and _recall_at(got, truth) >= 0.85
    # Removal (compaction) and a saved file work with the HNSW quantiser over the lists.
    merged = compacted(big, ids[:100], np.zeros(0, np.int64), np.zeros((0, 64), np.float32),
                       config)
    assert merged.ntotal == len(x) - 100 and not np.isin(merged.search(x[:100], 10)[1],
                                                          ids[:100]).any()
    loaded = vectors.from_bytes(big.to_bytes(), config)
    assert (loaded.search(q, 10)[1] == got).all()
    # Written part by part, then read back through a memory map: the same bytes, the same index.
    big.write(tmp_path / "big.index")
    mapped = np.memmap(tmp_path / "big.index", np.uint8, mode="r")
    assert (np.asarray(mapped) == big.to_bytes()).all()
    assert (vectors.from_bytes(mapped, config).search(q, 10)[1] == got).all()


def test_a_compressed_search_counts_only_the_lists_it_probes():
    """index/threads.py gives searches under SMALL_WORK one thread: an IVF compares its lists'
    centres and nprobe lists, not every frame, so a 10-frame clip stays on one thread."""
    from index.threads import SMALL_WORK

    x = _catalogue(6_000)
    config = VectorConfig(compress_from=5_000, compressed="IVF{nlist},PQ32x4fs", nprobe=16,
                          train_max=6_000)
    big = for_frames(64, config, x)
    big.add(x, np.arange(len(x), dtype=np.int64))
    nlist = int(4 * np.sqrt(6_000))  # 309 lists of about 20 frames
    assert big.search_cost(10) == 10 * (nlist + 16 * -(-6_000 // nlist)) < 10 * 6_000 // 5
    exact = flat(64)
    exact.add(x, np.arange(len(x), dtype=np.int64))
    assert exact.search_cost(10) == 60_000
    # At 10M frames (12,649 lists of 791, nprobe 64) a clip's 130 rows with crops: one thread.
    assert 130 * (12_649 + 64 * 791) < SMALL_WORK < 130 * 10_000_000


def test_a_compressed_search_picks_its_lists_by_one_product_and_answers_as_faiss():
    """The lists of a compressed search are chosen with one matrix product against their centres
    (FAISS compares a few queries with them one at a time, without BLAS); the answers are
    FAISS's own search's, id for id, at every nprobe."""
    import faiss

    x = _catalogue(6_000, seed=3)
    config = VectorConfig(compress_from=1, compressed="IVF{nlist},PQ32x4fs", nprobe=8,
                          train_max=6_000, refine="none")
    vec = for_frames(64, config, x)
    vec.add(x, np.arange(len(x), dtype=np.int64))
    rng = np.random.default_rng(4)
    queries = x[rng.choice(len(x), 30, replace=False)] + 0.05 * rng.standard_normal(
        (30, 64)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    for nprobe in (1, 8, 64):
        vec.set_nprobe(nprobe)
        own_d, own_i = vec.search(queries, 10)
        faiss_d, faiss_i = vec.index.search(queries, 10)
        assert (own_i == faiss_i).all()
        assert np.allclose(own_d, faiss_d, atol=1e-4)
        assert faiss.downcast_index(vec.index).nprobe == nprobe


def test_many_lists_are_chosen_through_a_graph_over_their_centres(monkeypatch):
    """From GRAPH_LISTS_FROM lists a search finds its lists through an HNSW graph over their
    centres: nearly the lists (and so the answers) of comparing every centre, the graph built
    once and shared by copies and compactions; fewer lists keep the matrix product."""
    import faiss

    from index import vectors

    x = _catalogue(8_000, seed=6)
    ids = np.arange(len(x), dtype=np.int64)
    config = VectorConfig(compress_from=1, compressed="IVF{nlist},PQ32x4fs", nlist=400,
                          nprobe=40, train_max=8_000, refine="none")
    assert for_frames(64, config, x).lists is None  # 400 lists: under the default 8,192
    monkeypatch.setattr(vectors, "GRAPH_LISTS_FROM", 256)
    vec = for_frames(64, config, x)
    vec.add(x, ids)
    assert vec.lists is not None and vec.lists.graph.ntotal == 400
    rng = np.random.default_rng(2)
    queries = x[rng.choice(len(x), 50, replace=False)] + 0.05 * rng.standard_normal(
        (50, 64)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    centres = faiss.extract_index_ivf(vec.index).quantizer.reconstruct_n(0, 400)
    want = np.argsort(-(queries @ centres.T), axis=1)[:, :40]
    scores, lists = vec.lists.nearest(queries, 40)
    assert np.mean([len(set(a) & set(b)) / 40 for a, b in zip(lists, want)]) >= 0.97
    assert (np.diff(scores, axis=1) <= 1e-6).all()  # best list first, as search_preassigned takes
    got = vec.search(queries, 10)[1]
    assert _recall_at(got, vec.index.search(queries, 10)[1]) >= 0.97  # FAISS's own choice
    assert vec.copy().lists is vec.lists
    merged = compacted(vec, ids[:10], np.zeros(0, np.int64), np.zeros((0, 64), np.float32),
                       config)
    assert merged.lists is vec.lists and not np.isin(merged.search(x[:10], 10)[1], ids[:10]).any()
    # A saved index gets its graph again when loaded.
    loaded = vectors.from_bytes(vec.to_bytes(), config)
    assert loaded.lists is not None and (loaded.search(queries, 10)[1] == got).mean() >= 0.97


def test_nprobe_zero_searches_a_share_of_the_lists_that_grows_with_them():
    """nprobe 0 (the default): 1/80 of the lists, at least 64; an explicit count is kept."""
    import faiss

    def lists(nlist: int, nprobe: int) -> int:
        ivf = faiss.index_factory(16, f"IVF{nlist},PQ8x4fs", faiss.METRIC_INNER_PRODUCT)
        vec = FaissVectors(ivf, nprobe=nprobe)
        assert faiss.extract_index_ivf(vec.index).nprobe == vec.nprobe  # what FAISS searches
        return vec.nprobe

    assert lists(1_000, 0) == 64 and lists(4_000, 0) == 64
    assert lists(12_649, 0) == 158 and lists(40_000, 0) == 500
    assert lists(12_649, 100) == 100 and lists(32, 0) == 32
    assert VectorConfig().nprobe == 0

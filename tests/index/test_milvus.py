"""The Milvus backend, on milvus-lite (the real engine, in process; no server). Its first search
after opening a collection takes seconds, so the tests share one database file per module."""

from __future__ import annotations

import numpy as np
import pytest

import index
from clipgate.errors import Unavailable
from compliance import match_file
from index.milvus import MilvusVectors, collections, forget_clients
from index.synthetic import VectorModel
from index.vectors import VectorConfig, flat
from tests.media import photo, write_image

pytest.importorskip("milvus_lite")


@pytest.fixture(scope="module")
def milvus_uri(tmp_path_factory) -> str:
    uri = str(tmp_path_factory.mktemp("milvus") / "milvus.db")
    yield uri
    forget_clients()


def test_milvus_and_faiss_give_the_same_top_hits(milvus_uri):
    rng = np.random.default_rng(0)
    basis = rng.standard_normal((32, 128)).astype(np.float32) * np.linspace(1, 0.1, 32)[:, None]
    x = VectorModel(np.zeros(128, np.float32), basis, 0.05).sample(3_000, rng)
    ids = np.arange(len(x), dtype=np.int64) * 7 + 11
    config = VectorConfig(backend="milvus", milvus_uri=milvus_uri, milvus_prefix="same")
    milvus = MilvusVectors(config, "f", "v1", 128)
    milvus.add(x, ids)
    faiss_flat = flat(128)
    faiss_flat.add(x, ids)
    q = x[rng.choice(len(x), 50, replace=False)] + 0.05 * rng.standard_normal((50, 128))
    q = (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)
    (ms, mi), (fs, fi) = milvus.search(q, 10), faiss_flat.search(q, 10)
    assert (mi[:, 0] == fi[:, 0]).mean() >= 0.98
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(mi, fi)])
    assert recall >= 0.95
    assert np.allclose(ms[:, 0], fs[:, 0], atol=1e-4)  # IP scores, not distances
    # Another version of the signal is another collection: two models never mix.
    assert MilvusVectors(config, "f", "v2", 128).name != milvus.name
    milvus.remove(ids[:5])
    assert milvus.ntotal == len(x) - 5


def test_the_gate_works_on_milvus_across_processes(settings, tmp_path, milvus_uri):
    settings = settings.model_copy(update={"vector_backend": "milvus", "milvus_uri": milvus_uri,
                                           "milvus_collection_prefix": "gate"})
    other = settings.model_copy(update={"data_dir": tmp_path / "other"})
    cat = write_image(tmp_path / "chelsea.png", photo("chelsea"))
    rocket = write_image(tmp_path / "rocket.png", photo("rocket"))
    work = str(index.register_work(cat, owner="S", title="cat", policy="block",
                                   settings=settings)["id"])
    assert index.sync(settings).backends == {"sscd": "milvus"}
    assert work in {m.work_id for m in match_file(cat, settings).matches}
    # The other process takes the add from the change log; Milvus holds each frame once.
    index.sync(other)
    second = str(index.register_work(rocket, owner="S", title="rocket", policy="block",
                                     settings=settings)["id"])
    assert {m.work_id for m in match_file(rocket, other).matches} == {second}
    shared = MilvusVectors(_config(settings), "sscd",
                           index.sync(settings).spaces["sscd"], 512)
    assert shared.ntotal == index.sync(settings).frames
    index.remove_work(work, settings=settings)
    assert work not in {m.work_id for m in match_file(cat, other).matches}
    # A rebuild re-syncs the collection from PostgreSQL: rows the database lost go.
    shared.add(np.ones((1, 512), np.float32) / np.sqrt(512), np.array([987_654_321]),
               np.array(["0"]))
    index.rebuild(settings)
    assert shared.ntotal == index.sync(settings).frames
    health = index.health(settings)
    assert health["ok"] and health["vectors"]["backend"] == "milvus"
    # Back to FAISS: the saved file names Milvus, so the index is rebuilt in process.
    index.unload()
    assert index.sync(settings.model_copy(update={"vector_backend": "faiss"})).backends == {
        "sscd": "flat"}


def test_milvus_down_fails_closed_and_health_says_which(settings, tmp_path):
    down = settings.model_copy(update={"vector_backend": "milvus",
                                       "milvus_uri": "http://127.0.0.1:9",
                                       "milvus_timeout_s": 2.0})
    cat = write_image(tmp_path / "chelsea.png", photo("chelsea"))
    with pytest.raises(Unavailable, match="milvus"):
        index.register_work(cat, owner="S", title="cat", policy="block", settings=down)
    assert index.list_works(settings=down) == []  # rolled back: never active without vectors
    with pytest.raises(Unavailable, match="milvus"):
        match_file(cat, down)
    health = index.health(down)
    assert not health["ok"] and health["vectors"]["backend"] == "milvus"
    assert not health["vectors"]["ok"] and "milvus" in health["error"]


def _config(settings) -> VectorConfig:
    return VectorConfig.from_settings(settings)


def test_a_rebuild_drops_the_collections_of_other_versions(settings, milvus_uri):
    settings = settings.model_copy(update={"vector_backend": "milvus", "milvus_uri": milvus_uri,
                                           "milvus_collection_prefix": "stale"})
    config = _config(settings)
    x = np.ones((3, 512), np.float32) / np.sqrt(512)
    old = MilvusVectors(config, "sscd", "a model we no longer run", 512)
    old.add(x, np.arange(3, dtype=np.int64))
    # Kept: another signal whose name starts the same, and another deployment's prefix.
    other_signal = MilvusVectors(config, "sscd_b", "v1", 512)
    other_prefix = MilvusVectors(_config(settings.model_copy(update={
        "milvus_collection_prefix": "elsewhere"})), "sscd", "v1", 512)
    index.rebuild(settings)
    names = set(collections(config))
    current = MilvusVectors(config, "sscd", index.sync(settings).spaces["sscd"], 512).name
    assert current in names and old.name not in names
    assert {other_signal.name, other_prefix.name} <= names
    # The same in-process handle made anew finds an empty collection, not a cached one.
    assert MilvusVectors(config, "sscd", "a model we no longer run", 512).ntotal == 0

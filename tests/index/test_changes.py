"""Index changes reach every process through the change log, without a whole rebuild.

Two processes are simulated by two data directories on one database: each has its own live index
(the live index is keyed by its directory), exactly as two API processes or workers would. The
rebuilds are counted (index.live.stats), so a test fails if a change was taken by rebuilding."""

from __future__ import annotations

import threading
import time

import faiss
import numpy as np
import pytest

import index
from clipgate import db
from compliance import match_file
from tests.media import photo, write_image


def _other(settings, tmp_path, name="other", **update):
    """Settings of another process: the same database, a data directory of its own."""
    return settings.model_copy(update={"data_dir": tmp_path / name, **update})


def _add(settings, tmp_path, name, **kw):
    path = write_image(tmp_path / f"{name}.png", photo(name))
    work = index.register_work(path, owner="Studio", title=name, policy="block",
                               settings=settings, **kw)
    return str(work["id"]), path


def _matched(path, settings) -> set[str]:
    return {m.work_id for m in match_file(path, settings).matches}


def _db_version(settings) -> int:
    return index.version(settings=settings)


def test_each_version_bump_logs_its_change_in_the_same_transaction(settings, tmp_path):
    cat, _ = _add(settings, tmp_path, "chelsea")
    index.set_work_policy(cat, "review", settings=settings)
    index.remove_work(cat, settings=settings)
    with db.connection(settings) as conn:
        state = conn.execute("SELECT version, epoch FROM index_state").fetchone()
        rows = conn.execute(
            "SELECT version, kind, work_id::text AS work_id FROM index_changes "
            "WHERE epoch = %s AND version > %s ORDER BY version",
            (state["epoch"], state["version"] - 3)).fetchall()
    assert [(r["version"], r["kind"], r["work_id"]) for r in rows] == [
        (state["version"] - 2, "add", cat), (state["version"] - 1, "policy", cat),
        (state["version"], "remove", cat)]


def test_another_process_sees_a_new_work_without_a_rebuild(settings, tmp_path):
    _add(settings, tmp_path, "chelsea")
    other = _other(settings, tmp_path)
    before = index.sync(other)  # the other process holds the index at this version
    builds = index.live.stats()["builds"]

    coffee, path = _add(settings, tmp_path, "coffee")
    assert _matched(path, other) == {coffee}

    after = index.sync(other)
    stats = index.live.stats()
    assert stats["builds"] == builds, "the other process rebuilt the whole index"
    assert after.version == _db_version(settings) == before.version + 1
    assert after.delta_frames > 0 and coffee in after.work_ids
    assert coffee not in before.work_ids and before.version + 1 == after.version  # old untouched


def test_removal_reaches_another_process_as_tombstones_and_compaction_folds_them(settings,
                                                                                 tmp_path):
    cat, cat_path = _add(settings, tmp_path, "chelsea")
    coffee, coffee_path = _add(settings, tmp_path, "coffee")
    other = _other(settings, tmp_path)
    assert _matched(cat_path, other) == {cat}
    builds = index.live.stats()["builds"]

    index.remove_work(cat, settings=settings)
    assert _matched(cat_path, other) == set()
    live = index.sync(other)
    assert live.tombstones > 0 and cat not in live.work_ids
    assert index.live.stats()["builds"] == builds

    done = index.compact(other)
    assert done["compacted"]
    compacted = index.sync(other)
    assert compacted.tombstones == 0 and compacted.delta_frames == 0
    assert compacted.version == live.version
    assert _matched(cat_path, other) == set()
    assert _matched(coffee_path, other) == {coffee}
    assert index.live.stats()["builds"] == builds


def test_a_new_process_loads_the_saved_file_and_applies_the_log_since(settings, tmp_path):
    _add(settings, tmp_path, "chelsea")
    index.rebuild(settings)  # saves the file at this version
    rocket, path = _add(settings, tmp_path, "rocket")
    index.unload()  # a new process: nothing in memory, the saved file on disk
    stats = index.live.stats()
    assert _matched(path, settings) == {rocket}
    now = index.live.stats()
    assert now["builds"] == stats["builds"]
    assert now["loads"] == stats["loads"] + 1 and now["deltas"] == stats["deltas"] + 1


def test_a_gap_beyond_the_pruned_log_rebuilds(settings, tmp_path):
    _add(settings, tmp_path, "chelsea")
    other = _other(settings, tmp_path)
    held = index.sync(other)
    builds = index.live.stats()["builds"]
    keep_one = settings.model_copy(update={"index_change_log_keep": 1})
    coffee, coffee_path = _add(keep_one, tmp_path, "coffee")
    rocket, rocket_path = _add(keep_one, tmp_path, "rocket")  # prunes coffee's row

    assert _matched(coffee_path, other) == {coffee}
    assert _matched(rocket_path, other) == {rocket}
    stats = index.live.stats()
    assert stats["builds"] == builds + 1
    rebuilt = index.sync(other)
    assert rebuilt.version == held.version + 2 and rebuilt.delta_frames == 0


def test_a_corrupt_log_row_rebuilds_from_the_database(settings, tmp_path):
    _add(settings, tmp_path, "chelsea")
    other = _other(settings, tmp_path)
    index.sync(other)
    coffee, path = _add(settings, tmp_path, "coffee")
    with db.connection(settings) as conn:  # the add's row loses its work: it cannot be applied
        conn.execute("UPDATE index_changes SET work_id = NULL WHERE version = "
                     "(SELECT version FROM index_state)")
    stats = index.live.stats()
    assert _matched(path, other) == {coffee}
    now = index.live.stats()
    assert now["delta_failures"] == stats["delta_failures"] + 1
    assert now["builds"] == stats["builds"] + 1
    assert index.sync(other).version == _db_version(settings)


def test_a_delta_failing_half_way_is_never_served(settings, tmp_path, monkeypatch):
    _add(settings, tmp_path, "chelsea")
    other = _other(settings, tmp_path)
    before = index.sync(other)
    frames_before = before.frames
    coffee, coffee_path = _add(settings, tmp_path, "coffee")
    rocket, rocket_path = _add(settings, tmp_path, "rocket")

    real = index.FrameIndex.with_changes
    half: list[index.FrameIndex] = []

    def fail_half_way(self, version, changes):
        half.append(real(self, version - 1, changes[:1]))  # the first change made, then a failure
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(index.FrameIndex, "with_changes", fail_half_way)
    stats = index.live.stats()
    served = index.sync(other)
    monkeypatch.undo()
    assert half and served is not half[0]
    assert served.version == _db_version(settings)
    assert {coffee, rocket} <= served.work_ids
    now = index.live.stats()
    assert now["delta_failures"] == stats["delta_failures"] + 1
    assert now["builds"] == stats["builds"] + 1
    # The index searches were running on is untouched.
    assert before.frames == frames_before and before.version == served.version - 2
    assert _matched(rocket_path, other) == {rocket}


def test_compaction_runs_in_the_background_while_searches_go_on(settings, tmp_path):
    _add(settings, tmp_path, "chelsea")
    other = _other(settings, tmp_path, index_delta_max_frames=0)
    index.sync(other)
    compactions = index.live.stats()["compactions"]
    coffee, path = _add(settings, tmp_path, "coffee")
    assert _matched(path, other) == {coffee}  # served from the delta at once
    deadline = time.monotonic() + 30
    while index.live.stats()["compactions"] == compactions and time.monotonic() < deadline:
        time.sleep(0.05)
    assert index.live.stats()["compactions"] == compactions + 1
    assert index.sync(other).delta_frames == 0
    assert _matched(path, other) == {coffee}


def test_the_follower_applies_changes_before_any_search(settings, tmp_path):
    _add(settings, tmp_path, "chelsea")
    other = _other(settings, tmp_path, index_poll_s=0.05)
    index.sync(other)
    follower = index.follow_changes(other)
    try:
        _add(settings, tmp_path, "coffee")
        want = _db_version(settings)
        deadline = time.monotonic() + 10
        while index.live.held(other).version != want and time.monotonic() < deadline:
            time.sleep(0.05)  # no search here: only the follower can bring it up to date
        assert index.live.held(other).version == want
    finally:
        follower.stop()


# -- the FrameIndex's own arithmetic, no database -----------------------------------------------

def _rows(rng, ids, work):
    ids = np.array(ids, np.int64)
    v = rng.standard_normal((len(ids), 16)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    b = rng.integers(0, 255, (len(ids), 8), dtype=np.uint8)
    return index.FrameRows(ids=ids, work_ids=np.array([work] * len(ids), "U36"),
                           t_s=ids / 4, vectors={"f": index.SignalRows(ids, v),
                                                            "b": index.SignalRows(ids, b)})


def _empty(version):
    return index.FrameIndex(version, "e", {"f": "1", "b": "1"},
                            {"f": faiss.IndexIDMap2(faiss.IndexFlatIP(16)),
                             "b": faiss.IndexBinaryIDMap2(faiss.IndexBinaryFlat(64))})


def _same_answers(a, b, rows):
    q = np.concatenate([r.vectors["f"].vectors[:4] for r in rows])
    (sa, ia), (sb, ib) = a.nearest("f", q, 8), b.nearest("f", q, 8)
    assert (ia == ib).all() and np.allclose(sa, sb)
    codes = np.concatenate([r.vectors["b"].vectors[:4] for r in rows])
    (la, da, ja), (lb, db_, jb) = a.within("b", codes, 24), b.within("b", codes, 24)
    for i in range(len(codes)):
        assert sorted(zip(ja[la[i]:la[i + 1]].tolist(), da[la[i]:la[i + 1]].tolist())) == \
            sorted(zip(jb[lb[i]:lb[i + 1]].tolist(), db_[lb[i]:lb[i + 1]].tolist()))


def test_delta_and_tombstones_answer_as_a_full_build_does():
    rng = np.random.default_rng(0)
    a, b, c, d = (_rows(rng, range(lo, lo + n), w)
                  for lo, n, w in ((0, 200, "a"), (200, 50, "b"), (250, 10, "c"), (260, 10, "d")))
    base = _empty(1)
    base.add(a)
    base.add(b)
    v2 = base.with_changes(2, [("add", c), ("remove", "b"), ("add", d)])
    v3 = v2.with_changes(3, [("remove", "c"), ("add", d)])  # d again: adding is idempotent
    full = _empty(3)
    full.add(a)
    full.add(d)
    _same_answers(v3, full, [a, b, c, d])
    assert dict(v3.meta) == dict(full.meta) and v3.work_ids == {"a", "d"}
    assert dict(v2.meta) == {**dict(full.meta), **{i: ("c", i / 4) for i in range(250, 260)}}
    assert (v3.delta_frames, v3.tombstones, v3.frames) == (10, 50, 210)
    assert (base.version, base.frames, base.delta_frames) == (1, 250, 0)  # left as it was
    _same_answers(v3.compacted(), full, [a, b, c, d])
    assert dict(v3.compacted().meta) == dict(full.meta)
    # Compaction of v2 finished after v3 was published: v3's changes carry over.
    rebased = v2.compacted().rebased(v2, v3)
    assert rebased.version == 3
    _same_answers(rebased, full, [a, b, c, d])
    assert dict(rebased.meta) == dict(full.meta)
    with pytest.raises(ValueError):
        v3.with_changes(4, [("rename", "a")])


def test_the_saved_file_keeps_the_frame_map_and_an_older_file_still_loads(tmp_path):
    rng = np.random.default_rng(2)
    base = _empty(1)
    base.add(_rows(rng, range(40), "a"))
    base.add(_rows(rng, range(40, 50), "b"))
    v2 = base.with_changes(2, [("remove", "a"), ("add", _rows(rng, range(60, 70), "c"))])
    path = tmp_path / "frames.npz"
    v2.save(path)
    loaded = index.FrameIndex.load(path)
    assert dict(loaded.meta) == dict(v2.meta) and len(loaded.meta) == 20
    # A file written when the map was a dict: a work id and seconds per frame.
    with np.load(path) as z:
        old = {k: z[k] for k in z.files if not k.startswith("frame_")}
    ids = np.array(sorted(v2.meta), np.int64)
    np.savez(path, **old, ids=ids, work_ids=np.array([v2.meta[i][0] for i in ids.tolist()], "U36"),
             t_s=np.array([v2.meta[i][1] for i in ids.tolist()]))
    assert dict(index.FrameIndex.load(path).meta) == dict(v2.meta)


def test_searches_keep_their_index_while_changes_are_published():
    rng = np.random.default_rng(1)
    base = _empty(1)
    rows = _rows(rng, range(100), "a")
    base.add(rows)
    q = rows.vectors["f"].vectors[:8]
    expected = base.nearest("f", q, 4)
    errors = []

    def search():
        for _ in range(200):
            got = base.nearest("f", q, 4)
            if not (got[1] == expected[1]).all():
                errors.append(got)

    t = threading.Thread(target=search)
    t.start()
    current = base
    for v in range(2, 40):
        current = current.with_changes(v, [("add", _rows(rng, range(100 * v, 100 * v + 5), str(v)))])
    t.join()
    assert errors == []


def test_a_policy_change_moves_another_process_without_touching_its_index(settings, tmp_path):
    cat, path = _add(settings, tmp_path, "chelsea")
    other = _other(settings, tmp_path)
    held = index.sync(other)
    stats = index.live.stats()
    index.set_work_policy(cat, "review", settings=settings)
    moved = index.sync(other)
    assert moved.version == held.version + 1 and moved.frames == held.frames
    assert moved.delta_frames == 0 and moved.tombstones == 0
    assert index.live.stats()["builds"] == stats["builds"]
    assert {m.policy for m in match_file(path, other).matches} == {"review"}

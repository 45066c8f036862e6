"""The frame map as numpy arrays (index/frame_map.py) answers as the dict it replaced did."""

from __future__ import annotations

import numpy as np
import pytest

from index.frame_map import FrameMap


def _reference_run(seed: int) -> None:
    """Random adds, removals and folds, checked after each against a plain dict."""
    rng = np.random.default_rng(seed)
    ref = {int(i): (f"w{i // 7}", float(i) / 3) for i in range(0, 700, 2)}
    ids = np.array(sorted(ref), np.int64)
    m = FrameMap.of(ids[::-1], np.array([ref[i][0] for i in ids[::-1].tolist()]),
                    np.array([ref[i][1] for i in ids[::-1].tolist()]))
    main = m
    delta: dict[int, tuple[str, float]] = {}
    dead: set[int] = set()
    for step in range(40):
        op = rng.integers(3)
        if op == 0:  # add a work's frames in the delta layer (some ids may already be in)
            new = rng.integers(0, 1500, 6)
            w = f"new{step}"
            fresh = [int(i) for i in new if int(i) not in ref]
            for i in fresh:
                ref[i] = delta[i] = (w, i / 3)
        elif op == 1 and ref:  # remove a work
            w = ref[int(rng.choice(list(ref)))][0]
            gone = sorted(i for i, (x, _) in ref.items() if x == w)
            assert m.frames_of(w).tolist() == gone
            for i in gone:
                del ref[i]
                if i in delta:
                    del delta[i]
                else:
                    dead.add(i)
        else:  # fold (a compaction)
            m = main = m.folded()
            delta, dead = {}, set()
        if op != 2:
            d_ids = np.array(sorted(delta), np.int64)
            m = main.layered((d_ids, np.array([delta[i][0] for i in d_ids.tolist()], "U36"),
                              np.array([delta[i][1] for i in d_ids.tolist()])),
                             np.array(sorted(dead), np.int64))
        assert len(m) == len(ref) and dict(m) == ref
        assert m.work_ids() == {w for w, _ in ref.values()}
        assert m.work_count() == len({w for w, _ in ref.values()})
        probe = rng.integers(-5, 1600, 300)
        assert m.contains(probe).tolist() == [int(i) in ref for i in probe.tolist()]
        assert all((int(i) in m) == (int(i) in ref) for i in probe.tolist())
        assert dict(FrameMap.from_arrays(**m.arrays())) == ref  # as saved and loaded


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_map_answers_as_a_dict_through_adds_removals_and_folds(seed):
    _reference_run(seed)


def test_plus_and_minus_keep_the_first_entry_and_drop_removed_works():
    m = FrameMap.of(np.array([5, 3]), np.array(["a", "b"]), np.array([0.5, 0.25]))
    m = m.plus(np.array([3, 9]), np.array(["x", "c"]), np.array([9.0, 1.0]))
    assert dict(m) == {3: ("b", 0.25), 5: ("a", 0.5), 9: ("c", 1.0)}
    m = m.minus(m.frames_of("b"))
    assert dict(m) == {5: ("a", 0.5), 9: ("c", 1.0)} and m.work_ids() == {"a", "c"}
    assert m.arrays()["works"].tolist() == [b"a", b"c"]  # the removed work's id is not kept
    with pytest.raises(KeyError):
        m[3]


def test_a_frame_costs_tens_of_bytes_not_a_dicts_hundreds():
    n = 200_000
    ids = np.arange(n, dtype=np.int64) * 3
    works = np.array([f"{i // 10:036d}" for i in range(n)])  # UUID-sized ids, 10 frames a work
    m = FrameMap.of(ids, works, np.arange(n) % 10 * 1.0)
    assert m.nbytes() / n <= 24  # 8 id + 4 work + 8 seconds + 36 / 10 of the work's id
    assert m[ids[12345]] == (f"{12345 // 10:036d}", 5.0)


def test_an_id_given_twice_in_one_add_keeps_its_first_entry():
    m = FrameMap.empty().plus(np.array([4, 2, 4]), np.array(["a", "b", "c"]),
                              np.array([1.0, 2.0, 3.0]))
    assert dict(m) == {2: ("b", 2.0), 4: ("a", 1.0)} and len(m) == 2


def test_works_saved_out_of_order_are_sorted_on_load():
    m = FrameMap.from_arrays(np.array([1, 2, 3]), np.array([0, 1, 0]), np.zeros(3),
                             np.array([b"zeta", b"alpha"]))
    assert dict(m) == {1: ("zeta", 0.0), 2: ("alpha", 0.0), 3: ("zeta", 0.0)}
    assert m.frames_of("zeta").tolist() == [1, 3] and m.frames_of("alpha").tolist() == [2]


def test_looking_up_many_frames_at_once_agrees_with_one_at_a_time():
    # The search asks for every row's nearest frames together (works_at, entries); they must
    # give what the mapping gives frame by frame, across main frames, delta and tombstones,
    # and "" / nothing for frames not in the map (FAISS pads missing neighbours with -1).
    main = FrameMap.of(np.arange(0, 40, 2), np.array([f"w{i % 3}" for i in range(20)]),
                       np.arange(20) / 2)
    m = main.layered((np.array([41, 43]), np.array(["a-work-id-longer-than-the-main-ones"] * 2),
                      np.array([1.0, 2.0])), np.array([4, 6]))
    ids = np.array([[0, 2, 4, 6, 41], [43, -1, 5, 38, 1000]])
    expect = [[m[i][0] if i in m else "" for i in row] for row in ids.tolist()]
    assert m.works_at(ids).tolist() == expect
    assert expect[0][4] == "a-work-id-longer-than-the-main-ones" and expect[0][2] == ""
    assert m.entries(ids.ravel().tolist()) == {i: m[i] for i in ids.ravel().tolist() if i in m}

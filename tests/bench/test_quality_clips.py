"""`clipgate bench quality --clips DIR`: rendered query clips are kept by a key of what decides
their pixels, reused on the next run of the same plan, and never left half-written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.quality import clips
from bench.quality import queries as qmod
from bench.quality.corpus import Corpus
from bench.quality.metrics import Query
from clipgate.errors import BadInput


def _corpus(tmp_path: Path) -> Corpus:
    files = []
    for i in range(3):
        p = tmp_path / "media" / f"p{i}.png"
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"x" * (10 + i))
        files.append(p)
    return Corpus(works=files[:2], unregistered=files[2:])


PLAN = {"quick": True, "per_family": 1, "per_pair": 0, "negatives": 2, "seed": 0}


def test_the_folder_changes_with_the_plan_and_the_corpus_only(tmp_path):
    corpus = _corpus(tmp_path)
    first = clips.folder(tmp_path / "kept", corpus, PLAN)
    assert first.is_dir() and clips.folder(tmp_path / "kept", corpus, PLAN) == first
    assert clips.folder(tmp_path / "kept", corpus, {**PLAN, "seed": 1}) != first
    corpus.works[0].write_bytes(b"a different picture, another size")
    assert clips.folder(tmp_path / "kept", corpus, PLAN) != first
    # The order of the lists matters too: the plan draws from them by position.
    assert clips.folder(tmp_path / "kept", Corpus(works=corpus.works[::-1],
                                                  unregistered=corpus.unregistered),
                        PLAN) != clips.folder(tmp_path / "kept", corpus, PLAN)


def _spec(qid: str) -> qmod.Spec:
    frame = np.zeros((64, 96, 3), np.uint8)
    frame[10:40, 20:60] = (200, 40, 40)
    return qmod.Spec(Query(qid, "crop", ("w",)), 1.0, lambda t: frame)


def test_a_clip_is_rendered_once_then_reused(tmp_path):
    path, reused = clips.clip(_spec("crop-0"), tmp_path)
    assert not reused and path.stat().st_size > 0
    made = path.stat().st_mtime_ns
    again, reused = clips.clip(_spec("crop-0"), tmp_path)
    assert reused and again == path and path.stat().st_mtime_ns == made
    assert [p.name for p in tmp_path.iterdir()] == ["crop-0.mp4"]


def test_an_interrupted_render_leaves_nothing_to_reuse(tmp_path, monkeypatch):
    def broken(spec, path):
        path.write_bytes(b"half a clip")
        raise KeyboardInterrupt

    monkeypatch.setattr(qmod, "write", broken)
    with pytest.raises(KeyboardInterrupt):
        clips.clip(_spec("crop-1"), tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_cannot_be_made_is_bad_input(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(BadInput, match="cannot keep the query clips"):
        clips.writable(blocker / "clips")


def test_a_second_run_gates_the_kept_clips_and_scores_the_same(settings, tmp_path):
    from bench.quality.run import run_quality

    def run() -> dict:
        return run_quality(settings, quick=True, per_family=1, per_pair=0, negatives=2,
                           ablations=False, other_models=(), clips=tmp_path / "kept")

    first, second = run(), run()
    n = first["queries"]["positive"] + first["queries"]["negative"]
    assert first["clips"]["rendered"] == n and first["clips"]["reused"] == 0
    assert second["clips"] == {**first["clips"], "reused": n, "rendered": 0}
    assert len(list(Path(first["clips"]["folder"]).glob("*.mp4"))) == n
    assert second["methods"]["clipgate"] == first["methods"]["clipgate"]

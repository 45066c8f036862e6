"""The signal interface and SSCD: a new signal is one module and one registration line; SSCD's
vectors, crops and normalisation; a missing model fails closed; versions never mix; re-embedding
fills in what older works lack."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from PIL import Image

import index
from clipgate.errors import Unavailable
from compliance import check_clip, match_file, match_fingerprint
from clipgate.settings import Settings
from index.frame_map import FrameMap
from index.signals import Computed, Signal
from tests.media import noise_frame, pan, photo, write_image, write_video


class ToyColour(Signal):
    """A toy float signal: each frame's coarse colour layout (a 4x4 RGB thumbnail, centred and
    L2-normalised). It lives only in this test: nothing else in the code base knows it."""

    name: ClassVar[str] = "toycolour"
    kind: ClassVar = "float"
    stage: ClassVar[str] = "hash"

    @property
    def version(self) -> str:
        return "toycolour/1"

    @property
    def dim(self) -> int:
        return 48

    @property
    def threshold(self) -> float:
        return 0.97

    def compute(self, frames: list[np.ndarray]) -> Computed:
        rows = []
        for rgb in frames:
            small = np.asarray(Image.fromarray(rgb).resize((4, 4), Image.BILINEAR), np.float32)
            v = (small - small.mean()).ravel()
            rows.append(v / max(1e-6, float(np.linalg.norm(v))))
        return Computed(np.array(rows, np.float32).reshape(-1, 48))


@pytest.fixture
def toy():
    index.register(ToyColour)  # the one registration line
    yield ToyColour
    index.signals.unregister(ToyColour.name)


def test_a_new_signal_is_one_class_and_one_line(settings, tmp_path, toy):
    work = index.register_work(write_image(tmp_path / "a.png", photo("astronaut")), owner="o",
                               title="t", policy="block", settings=settings)
    assert index.health(settings)["signals"]["toycolour"] == {"version": "toycolour/1",
                                                              "frames": 1}
    clip = write_video(tmp_path / "c.mp4", [pan(photo("astronaut"), i, 24) for i in range(24)])
    # Stored, indexed, searched and weighed by its own rule, with no other code changed:
    [match] = match_file(clip, settings).matches
    assert match.work_id == str(work["id"]) and "toycolour" in match.signals
    # ...and it can decide alone.
    only = match_file(clip, settings, disabled={"sscd", "pdq", "phash", "orb"}).matches
    assert [m.signals for m in only] == [["toycolour"]]
    other = write_video(tmp_path / "n.mp4", [noise_frame(5)] * 24)
    assert match_file(other, settings, disabled={"sscd", "pdq", "phash", "orb"}).matches == []


def test_sscd_vectors_find_a_recoloured_crop_and_not_another_photo(settings):
    sscd = index.active(settings)["sscd"]
    a = photo("astronaut")
    copy = np.asarray(Image.fromarray(a[40:320, 60:560]).convert("L").convert("RGB"))
    v = sscd.compute([a, copy, photo("coffee"), photo("rocket")]).vectors
    assert v.shape == (4, 512) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    sims = v[1:] @ v[0]
    assert sims[0] > 0.5 > max(sims[1:])


def test_a_small_inset_is_found_by_the_crop_that_holds_it(settings, tmp_path, monkeypatch):
    """A work pasted at 28% of the width over other footage: the whole frame's descriptor sees
    mostly the other footage; one of the crops holds the inset."""
    work = index.register_work(write_image(tmp_path / "a.png", photo("astronaut", (512, 512))),
                               owner="o", title="Astronaut", policy="block", settings=settings)

    def frame(i: int) -> np.ndarray:
        out = pan(photo("coffee"), i, 36).copy()
        w = int(640 * 0.28)
        out[30:30 + w, 420:420 + w] = np.asarray(
            Image.fromarray(photo("astronaut", (512, 512))).resize((w, w)))
        return out

    clip = write_video(tmp_path / "pip.mp4", [frame(i) for i in range(36)])
    [match] = match_file(clip, settings).matches
    assert match.work_id == str(work["id"])
    placed = [p.region or p.crop for p in match.pairs if p.region or p.crop]
    assert placed and all(r[0] > 0.45 and r[3] < 0.75 for r in placed)  # the top right
    assert match_file(clip, settings, disabled={"regions"}).matches == []

    # Searched again (as the bench's ablations do), the fingerprint's geometric checks are not
    # redone, and the outcome is the same.
    outcome = match_file(clip, settings)
    assert outcome.fingerprint.verified
    calls: list[int] = []
    # The module, not the package's `index.search` (a function of the same name).
    monkeypatch.setattr(importlib.import_module("index.search"), "verify",
                        lambda *a, **k: calls.append(1))
    again = match_fingerprint(outcome.fingerprint, settings)
    assert calls == [] and again.matches == outcome.matches


def test_normalisation_makes_generic_frames_need_a_closer_match(settings, tmp_path):
    """Smooth colour noise looks alike to SSCD (two fields 0.7-0.85 apart): the background of
    generic frames takes that back. A protected work leaves the background (the photos of the
    installed wheels are in it), so its copies keep their score."""
    sscd = index.active(settings)["sscd"]
    noise, rocket, coffee = sscd.compute([noise_frame(1), photo("rocket"), photo("coffee")]).vectors
    before = index.live.sync(settings).bias("sscd", np.stack([rocket]))
    assert before[0] < -0.9  # in the background while it is not protected
    index.register_work(write_image(tmp_path / "r.png", photo("rocket")), owner="o",
                        title="Rocket", policy="block", settings=settings)
    idx = index.live.sync(settings)
    bias = idx.bias("sscd", np.stack([noise, rocket, coffee]))
    assert bias[0] < -0.6  # generic: a match must be far closer than that to count
    assert bias[1] > -0.5  # the work's own pictures left the background
    assert bias[2] < -0.8  # another wheel photo, still in it


def test_background_pictures_are_found_without_importing_their_packages():
    """The background's photos come from the data folders of installed wheels; importing
    scikit-learn for its folder cost 2-3 s of a process's first check or lookup."""
    code = ("import sys; from index.signals.background import installed_pictures; "
            "names = {p.name for p in installed_pictures()}; "
            "assert {'china.jpg', 'rocket.jpg', 'coffee.png'} <= names, names; "
            "assert 'sklearn' not in sys.modules and 'skimage' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    assert done.returncode == 0, done.stderr


class _Nearest:
    """A FrameIndex stand-in for one float search: fixed neighbours, background and works."""

    def __init__(self, sims, ids, background, works):
        self.sims, self.ids, self.background = sims, ids, background
        ids = sorted(works)
        self.meta = FrameMap.of(np.array(ids), np.array([works[i] for i in ids]),
                                np.zeros(len(ids)))

    def nearest(self, name, vectors, k):
        return np.array(self.sims, np.float32), np.array(self.ids, np.int64)

    def bias(self, name, vectors):
        return -np.array(self.background, np.float32)

    def search_cost(self, name, queries):
        return 0


def test_a_look_alike_of_another_work_needs_a_closer_match():
    """A row's score is its cosine less the closer of its background and its nearest other
    work: a frame near one of thirty nebulae stands out from none of them, a copy of a distinctive
    picture stands out from all. Frames of the same work are no rivals of each other."""
    from index.search import Found
    from index.signals import QueryRows
    from index.signals.sscd import SscdSignal

    idx = _Nearest(sims=[[0.80, 0.78, 0.70, -1.0], [0.90, 0.88, 0.40, 0.30]],
                   ids=[[1, 2, 3, -1], [4, 5, 6, 7]], background=[0.30, 0.45],
                   works={1: "nebula-a", 2: "nebula-b", 3: "nebula-a", 4: "rocket", 5: "rocket",
                          6: "coffee", 7: "wheel"})
    rows = QueryRows(np.zeros((2, 4), np.float32), [0, 1], bias=np.array([0.0, -0.05]))
    found = Found()
    found.add(idx, SscdSignal(Settings(_env_file=None)), rows)
    score = {(h.query, h.frame_id): (h.value, h.raw) for h in found.hits}
    assert set(score) == {(0, 1), (0, 2), (0, 3), (1, 4), (1, 5), (1, 6), (1, 7)}
    assert score[0, 1] == pytest.approx((0.80 - 0.78, 0.80))  # nebula-b is right behind
    assert score[0, 2] == pytest.approx((0.78 - 0.80, 0.78))
    assert score[0, 3] == pytest.approx((0.70 - 0.78, 0.70))  # its own work's 0.80 is no rival
    # The rocket stands out from every other work (coffee, 0.40): only its background (0.45)
    # and the row's crop penalty are taken off.
    assert score[1, 4] == pytest.approx((0.90 - 0.45 - 0.05, 0.90), abs=1e-4)
    assert score[1, 6] == pytest.approx((0.40 - 0.90 - 0.05, 0.40), abs=1e-4)


def test_a_missing_or_corrupt_model_fails_closed(settings, tmp_path):
    bad = tmp_path / "sscd.onnx"
    bad.write_bytes(b"not a model")
    broken = settings.model_copy(update={"sscd_model_path": bad})
    clip = write_video(tmp_path / "c.mp4", [noise_frame(3)] * 12)
    with pytest.raises(Unavailable, match="cannot be loaded.*CLIPGATE_SSCD"):
        check_clip(clip, settings=broken)
    missing = settings.model_copy(update={"sscd_model_path": tmp_path / "gone.onnx"})
    with pytest.raises(Unavailable, match="is missing"):
        check_clip(clip, settings=missing)
    from fastapi.testclient import TestClient

    from clipgate import apikeys
    from clipgate.app import create_app

    key = apikeys.create_key("gen", settings=broken)[1]
    admin = apikeys.create_key("op", role="admin", settings=broken)[1]
    with TestClient(create_app(broken)) as c:
        assert c.get("/v1/health").json() == {"status": "degraded"}
        health = c.get("/v1/health", headers={"X-API-Key": admin})
        assert health.status_code == 503 and health.json()["signals"]["ok"] is False
        with clip.open("rb") as f:
            r = c.post("/v1/checks", files={"file": ("c.mp4", f, "video/mp4")},
                       headers={"X-API-Key": key})
        assert r.status_code == 503 and "SSCD" in r.json()["detail"]
        with clip.open("rb") as f:
            r = c.post("/v1/releases", files={"file": ("c.mp4", f, "video/mp4")},
                       data={"model": "m"}, headers={"X-API-Key": key})
        assert r.status_code == 503
    assert not any(settings.release_dir.glob("*.mp4"))


def test_a_corrupt_model_makes_the_cli_exit_3(settings, tmp_path, cli, monkeypatch):
    from clipgate.settings import get_settings

    bad = tmp_path / "sscd.onnx"
    bad.write_bytes(b"not a model")
    clip = write_video(tmp_path / "c.mp4", [noise_frame(3)] * 12)
    monkeypatch.setenv("CLIPGATE_SSCD_MODEL_PATH", str(bad))
    get_settings.cache_clear()
    r = cli("check", clip)
    assert r.exit_code == 3 and "SSCD" in r.output


def test_vectors_of_two_models_never_mix(settings, tmp_path):
    index.register_work(write_image(tmp_path / "a.png", photo("astronaut")), owner="o",
                        title="t", policy="block", settings=settings)
    other = settings.model_copy(update={"sscd": "sscd"})
    with pytest.raises(Unavailable, match="sscd vectors of .*index rebuild --reembed"):
        index.register_work(write_image(tmp_path / "b.png", photo("coffee")), owner="o",
                            title="u", policy="block", settings=other)
    clip = write_video(tmp_path / "c.mp4", [photo("astronaut")] * 12)
    with pytest.raises(Unavailable, match="--reembed"):
        check_clip(clip, settings=other)
    assert index.reembed_all(other)["frames"] == 1
    assert check_clip(clip, settings=other).verdict == "block"


def test_works_from_before_a_signal_get_its_vectors_by_reembedding(settings, tmp_path):
    before = settings.model_copy(update={"sscd": "off"})
    index.register_work(write_image(tmp_path / "a.png", photo("astronaut")), owner="o",
                        title="t", policy="block", settings=before)
    health = index.health(settings)
    assert health["signals"]["sscd"]["frames"] == 0 and "--reembed" in health["warning"]
    index.reembed_all(settings)
    health = index.health(settings)
    assert health["signals"]["sscd"]["frames"] == 1 and "warning" not in health


def test_phash_of_a_frame_does_not_depend_on_its_size(settings):
    # pHash is computed on a box-shrunk copy of wide frames (its cost): the same picture at
    # 1280, 640 and 320 px wide, and imagehash's own hash of the full frame, stay within 2 bits.
    import cv2
    import imagehash

    from index.signals.phash import PhashSignal

    for name in ("astronaut", "coffee", "chelsea"):
        big = photo(name, (1280, 720))
        sizes = [big] + [cv2.resize(big, (w, w * 9 // 16), interpolation=cv2.INTER_AREA)
                         for w in (640, 320)]
        codes = np.unpackbits(PhashSignal(settings).compute(sizes).vectors, axis=1)
        direct = imagehash.phash(Image.fromarray(big)).hash.flatten()
        for row in codes:
            assert int((row != codes[0]).sum()) <= 2
            assert int((row != direct).sum()) <= 2

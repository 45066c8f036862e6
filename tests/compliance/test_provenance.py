"""Provenance that survives stripping: the watermark put in at release, and verify's recovery of a
copy without a valid manifest (by watermark, then by fingerprint)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import pywt
from imwatermark.dwtDctSvd import EmbedDwtDctSvd

import compliance.release as release_module
import compliance.released as released_module
import index
from bench.provenance import FPS, HEIGHT, TRANSFORMS, WIDTH, generate, prompt_for
from clipgate import db
from clipgate.errors import BadInput
from compliance import (
    generator_identity,
    recover,
    release_clip,
    revoke_release,
    verify_clip,
    watermark,
)
from compliance.signing import SOFT_BINDING_LABEL
from generator import GenerationRequest, get_generator
from tests.media import noise_frame, pan, photo, write_video

IDENT = generator_identity(model="test-gen", version="1", prompt="a prompt")


def _clip(tmp_path, name: str, picture: str = "coffee", frames: int = 36):
    img = photo(picture)
    return write_video(tmp_path / name, [pan(img, i, frames, 0.1) for i in range(frames)])


@pytest.fixture
def released(settings, tmp_path):
    outcome = release_clip(_clip(tmp_path, "gen.mp4"), generator=IDENT, settings=settings)
    assert outcome.released
    return outcome


def test_payload_survives_byte_errors_and_noise_decodes_to_nothing():
    key = watermark.new_key()
    bits = watermark.payload_bits(key).astype(np.float32)
    assert watermark.decode_bits(bits) == (key, 0)
    damaged = bits.copy()
    damaged[[3, 17]] = 1 - damaged[[3, 17]]  # two bytes hit: the code mends both
    assert watermark.decode_bits(damaged) == (key, 2)
    assert watermark.decode_bits(np.zeros(watermark.BITS)) is None  # a flat picture's bits
    rng = np.random.default_rng(0)
    assert sum(watermark.decode_bits(rng.random(watermark.BITS)) is not None
               for _ in range(300)) <= 2


def test_the_library_reads_what_clipgate_embeds_with_the_same_scores():
    """compliance.watermark vectorises invisible-watermark's DWT-DCT-SVD: the library's own
    decoder must read the same block scores from a frame marked here."""
    key = watermark.new_key()
    bgr = np.ascontiguousarray(photo("chelsea")[:, :, ::-1])
    marked = watermark.embed_frame(bgr, watermark.payload_bits(key))
    lib = EmbedDwtDctSvd([], wmLen=watermark.BITS, scales=[0, watermark.SCALE, 0],
                         block=watermark.BLOCK)
    u = cv2.cvtColor(marked, cv2.COLOR_BGR2YUV)[:360, :640, 1]
    approx, _ = pywt.dwt2(u, "haar")
    theirs = np.array([np.mean(s) for s in lib.decode_frame(approx, watermark.SCALE,
                                                             [[] for _ in range(watermark.BITS)])])
    ours = watermark.frame_scores(marked)
    assert np.abs(theirs - ours).max() < 0.02  # a block on a rounding edge may differ
    assert watermark.decode_bits(theirs) == (key, 0)
    assert 38.0 <= watermark.psnr(bgr, marked) < 60.0


def test_watermark_is_invisible_and_reads_back(tmp_path):
    src = _clip(tmp_path, "src.mp4")
    key = watermark.new_key()
    mark = watermark.watermark_video(src, tmp_path / "marked.mp4", key)
    assert mark.frames == 36 and mark.psnr_db >= 38.0
    assert watermark.read_watermark(tmp_path / "marked.mp4").key == key
    assert watermark.read_watermark(src) is None


def test_the_gate_checks_the_watermarked_pixels_that_are_released(settings, tmp_path,
                                                                  monkeypatch):
    checked = []
    real = release_module.check_clip

    def spy(path, **kwargs):
        checked.append(watermark.read_watermark(path))
        return real(path, **kwargs)

    monkeypatch.setattr(release_module, "check_clip", spy)
    outcome = release_clip(_clip(tmp_path, "gen.mp4"), generator=IDENT, settings=settings)
    key = outcome.release["watermark_key"]
    assert checked and checked[0] is not None and checked[0].key == key
    assert watermark.read_watermark(outcome.release["path"]).key == key
    report = verify_clip(outcome.release["path"], settings=settings)
    assert report["verified"] and report["recovered_by"] is None
    binding = report["assertions"][SOFT_BINDING_LABEL]
    assert binding["alg"] == watermark.ALGORITHM
    assert binding["blocks"][0]["value"] == watermark.value(key)


def test_stripped_copy_is_recovered_by_watermark(settings, tmp_path, released):
    copy = TRANSFORMS["stripped"](released.release["path"], tmp_path / "stripped.mp4")
    report = verify_clip(copy, settings=settings)
    assert report["state"] == "NoManifest" and report["verified"] is False
    assert report["recovered_by"] == "watermark"
    rid = str(released.release["id"])
    assert report["release"]["release_id"] == rid and report["release"]["status"] == "active"
    assert report["verdict"].startswith(f"a copy of release {rid} (active)")
    stored = report["recovery"]["manifest"]
    assert stored["assertions"] and stored["label"] == released.release["manifest_label"]


def test_reencoded_copy_at_75_percent_is_recovered_by_fingerprint(settings, tmp_path, released):
    copy = TRANSFORMS["scale75"](released.release["path"], tmp_path / "small.mp4")
    report = verify_clip(copy, settings=settings)
    assert report["state"] == "NoManifest" and report["verified"] is False
    assert report["recovered_by"] == "fingerprint"
    assert report["release"]["release_id"] == str(released.release["id"])
    assert 0.5 <= report["recovery"]["confidence"] <= 1.0
    assert report["recovery"]["manifest"]["label"] == released.release["manifest_label"]


def test_revoked_release_is_recovered_as_revoked(settings, tmp_path, released):
    revoke_release(str(released.release["id"]), reason="a claim was upheld", settings=settings)
    copy = TRANSFORMS["crf28"](released.release["path"], tmp_path / "copy.mp4")
    report = verify_clip(copy, settings=settings)
    assert report["recovered_by"] in ("watermark", "fingerprint")
    assert report["release"]["status"] == "revoked"
    assert "REVOKED" in report["verdict"]


def test_never_released_clip_is_not_recovered(settings, tmp_path, released):
    other = write_video(tmp_path / "other.mp4", [noise_frame(90 + i // 6) for i in range(36)])
    report = verify_clip(other, settings=settings)
    assert report["recovered_by"] is None and report["release"] is None
    assert report["verdict"].startswith("not recovered")


def test_a_key_of_no_release_is_not_recovered_and_no_error(settings, tmp_path, released):
    marked = tmp_path / "marked.mp4"
    watermark.watermark_video(_clip(tmp_path, "x.mp4", "astronaut"), marked, watermark.new_key())
    assert watermark.read_watermark(marked) is not None
    report = verify_clip(marked, settings=settings)
    assert report["recovered_by"] is None and report["release"] is None


def test_verify_of_what_is_not_media_is_bad_input(settings, tmp_path):
    bad = tmp_path / "x.mp4"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(BadInput):
        verify_clip(bad, settings=settings)


def test_release_stores_its_manifest_and_key(settings, released):
    with db.connection(settings) as conn:
        row = conn.execute("SELECT manifest, watermark_key FROM releases WHERE id = %s",
                           (released.release["id"],)).fetchone()
    assert row["manifest"]["label"] == released.release["manifest_label"]
    assert row["watermark_key"] == released.mark.key


def test_a_key_already_in_use_is_never_drawn_again(settings, tmp_path, released, monkeypatch):
    """Keys are 40 random bits and unique among releases: a fresh draw that hits a release's key
    (about one release in a million at a million releases) is drawn again, not a 500."""
    taken = released.mark.key
    draws = iter([taken, taken + 1])
    monkeypatch.setattr(watermark, "new_key", lambda: next(draws))
    outcome = release_clip(_clip(tmp_path, "other.mp4", "rocket"), generator=IDENT,
                           settings=settings)
    assert outcome.released and outcome.mark.key == taken + 1
    assert outcome.release["watermark_key"] == taken + 1


def test_a_cropped_copy_is_confirmed_by_geometry_and_a_look_alike_is_not(settings, tmp_path,
                                                                        monkeypatch):
    """Procedural clips 0 and 5 of the provenance bench look alike to SSCD (raw cosine ~0.7), so
    a 10% crop of clip 0 scores under the threshold against it on its frames: the whole-frame
    match names no release. The geometric check against clip 0's own frames (decoded from its
    stored file) confirms it. A never-released clip of clip 0's prompt, another seed (the same
    palette and look), is proposed to the check too, and refused."""
    rid = {}
    for i in (0, 5):
        clip = generate(i, tmp_path / f"clip{i}.mp4", seconds=4.0, settings=settings)
        outcome = release_clip(clip, generator=IDENT, settings=settings)
        assert outcome.released
        rid[i] = outcome.release
    copy = TRANSFORMS["crop10"](rid[0]["path"], tmp_path / "crop10.mp4")
    lookup = released_module.lookup_settings(settings)
    fp = index.fingerprint_file(copy, lookup, query=True)
    # The case this is about: whole frames alone do not name the release.
    assert released_module.find_release(fp, lookup, regions=False, confirm=False) is None
    found = recover(copy, settings, by=("fingerprint",))
    assert found is not None and found.by == "fingerprint"
    assert str(found.release["id"]) == str(rid[0]["id"])
    assert found.frames_matched >= (found.frames + 1) // 2 and 0.5 <= found.confidence <= 1.0
    report = verify_clip(copy, settings=settings)
    assert report["recovered_by"] == "fingerprint"
    assert report["release"]["release_id"] == str(rid[0]["id"])

    fits = []
    real = released_module.geometric_fit
    monkeypatch.setattr(released_module, "geometric_fit", lambda *a, **k: fits.append(1) or real(*a, **k))
    other = tmp_path / "same-prompt.mp4"
    get_generator("procedural", settings).generate(
        GenerationRequest(prompt_for(0), seconds=4.0, width=WIDTH, height=HEIGHT, fps=FPS,
                          seed=1001), other)
    assert recover(other, settings) is None
    assert fits  # SSCD proposed clip 0, and the check said no

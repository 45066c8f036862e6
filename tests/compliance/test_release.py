"""The release path fails closed: only `release` verdicts are signed, and nothing is released when
signing, the database or the index breaks."""

from __future__ import annotations

import pytest

import index
from clipgate import db
from clipgate.errors import BadInput, Unavailable
from compliance import check_clip, generator_identity, release_clip, signer, verify_clip
from compliance import store
from compliance.signing import SigningError
from tests.media import noise_frame, pan, photo, write_image, write_video

IDENT = generator_identity(model="test-gen", version="1", prompt="a prompt")


@pytest.fixture
def protected(settings, tmp_path):
    return index.register_work(write_image(tmp_path / "a.png", photo("astronaut")),
                               owner="NASA", title="Astronaut", policy="block", settings=settings)


def _original(tmp_path, name="original.mp4"):
    return write_video(tmp_path / name, [noise_frame(40 + i // 6) for i in range(36)])


def _copy(tmp_path):
    img = photo("astronaut")
    return write_video(tmp_path / "copy.mp4", [pan(img, i, 36) for i in range(36)])


def _stored(settings):
    """Every file in the release store, staging included."""
    return [p for p in settings.release_dir.rglob("*") if p.is_file()]


def _releases(settings):
    with db.connection(settings) as conn:
        return conn.execute("SELECT count(*) AS n FROM releases").fetchone()["n"]


def test_released_clip_is_signed_trusted_and_recorded(settings, tmp_path, protected):
    outcome = release_clip(_original(tmp_path), generator=IDENT, settings=settings)
    assert outcome.released
    signed = outcome.release["path"]
    report = verify_clip(signed, settings=settings)
    assert report["state"] == "Trusted"
    assert report["release"]["release_id"] == str(outcome.release["id"])
    assert report["release"]["check_id"] == outcome.check.check_id
    comp = report["assertions"]["org.clipgate.compliance"]
    assert comp["verdict"] == "release" and comp["index_version"] == outcome.check.index_version
    assert report["assertions"]["org.clipgate.generator"]["prompt_sha256"] == IDENT["prompt_sha256"]
    assert report["assertions"]["cawg.training-mining"]

    data = bytearray(open(signed, "rb").read())
    data[len(data) // 2] ^= 0x01
    tampered = tmp_path / "tampered.mp4"
    tampered.write_bytes(bytes(data))
    bad = verify_clip(tampered, settings=settings)
    assert bad["state"] == "Invalid"
    assert bad["release_matched_by"] == "manifest"  # the manifest still names its release
    assert bad["file_matches_release"] is False and bad["verified"] is False
    assert report["file_matches_release"] is True and report["verified"] is True


def test_verify_refuses_what_is_not_media(settings, tmp_path):
    text = tmp_path / "x.mp4"
    text.write_text("hello")
    with pytest.raises(BadInput, match="not a readable image or video"):
        verify_clip(text, settings=settings)


def test_blocked_clip_is_never_signed(settings, tmp_path, protected):
    outcome = release_clip(_copy(tmp_path), generator=IDENT, settings=settings)
    assert not outcome.released and outcome.check.verdict == "block"
    assert _stored(settings) == []
    assert _releases(settings) == 0
    unsigned = verify_clip(_copy(tmp_path), settings=settings)
    assert unsigned["state"] == "NoManifest" and unsigned["release"] is None


def test_signing_failure_releases_nothing(settings, tmp_path, protected, monkeypatch):
    def broken(*args, **kwargs):
        raise SigningError("the key store did not answer")

    monkeypatch.setattr(signer(settings), "sign", broken)
    with pytest.raises(Unavailable, match="nothing was released.*key store"):
        release_clip(_original(tmp_path), generator=IDENT, settings=settings)
    assert _releases(settings) == 0
    assert _stored(settings) == []


def test_unusable_signing_credentials_fail_before_checking(settings, tmp_path):
    chain = tmp_path / "chain.pem"
    chain.write_text("not a certificate")
    broken = settings.model_copy(update={
        "signing_cert_chain": chain, "signing_key": tmp_path / "missing.key",
        "data_dir": tmp_path / "other"})
    with pytest.raises(Unavailable, match="signer"):
        release_clip(_original(tmp_path), generator=IDENT, settings=broken)
    assert _releases(settings) == 0
    with db.connection(settings) as conn:
        assert conn.execute("SELECT count(*) AS n FROM checks").fetchone()["n"] == 0


def test_database_down_releases_nothing(settings, tmp_path):
    down = settings.model_copy(update={"database_url": "postgresql://postgres@127.0.0.1:1/x"})
    with pytest.raises(Unavailable, match="database"):
        release_clip(_original(tmp_path), generator=IDENT, settings=down)
    assert _stored(down) == []


def test_corrupt_index_file_is_rebuilt_from_the_database(settings, tmp_path, protected):
    copy = _copy(tmp_path)
    assert check_clip(copy, settings=settings).verdict == "block"
    index.rebuild(settings)
    (settings.index_dir / "frames.npz").write_bytes(b"garbage")
    # Another process (no live index in memory) must not trust the broken file.
    index.unload()
    assert check_clip(copy, settings=settings).verdict == "block"


def test_only_mp4_and_mov_are_released(settings, tmp_path):
    webm = write_video(tmp_path / "c.webm", [noise_frame(i) for i in range(24)], codec="libvpx-vp9")
    with pytest.raises(BadInput, match="mp4|mov"):
        release_clip(webm, generator=IDENT, settings=settings)


def test_verify_reports_a_revoked_release(settings, tmp_path):
    outcome = release_clip(_original(tmp_path), generator=IDENT, settings=settings)
    with db.connection(settings) as conn:
        store.revoke_release(conn, release_id=str(outcome.release["id"]), reason="claim upheld")
    report = verify_clip(outcome.release["path"], settings=settings)
    assert report["state"] == "Trusted"
    assert report["release"]["status"] == "revoked"
    assert report["release"]["revoked_reason"] == "claim upheld"


def test_signing_that_fails_after_writing_leaves_nothing(settings, tmp_path, monkeypatch):
    clip_signer = signer(settings)

    def half_written(src, dst, **kwargs):
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(b"partial")
        raise SigningError("the signer crashed mid-way")

    monkeypatch.setattr(clip_signer, "sign", half_written)
    with pytest.raises(Unavailable, match="nothing was released"):
        release_clip(_original(tmp_path), generator=IDENT, settings=settings)
    assert _stored(settings) == [] and _releases(settings) == 0


def test_database_failure_after_signing_leaves_no_signed_file(settings, tmp_path, monkeypatch):
    import psycopg

    def db_gone(conn, *, release):
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(store, "insert_release", db_gone)
    # The connection lost mid-transaction is the database being unreachable: a 503, not a 500.
    with pytest.raises(Unavailable, match="database unreachable"):
        release_clip(_original(tmp_path), generator=IDENT, settings=settings)
    assert _stored(settings) == [] and _releases(settings) == 0


def test_work_registered_during_signing_is_checked_before_release(settings, tmp_path, monkeypatch):
    """The verdict must hold for the index version the release is recorded at."""
    clip = _original(tmp_path)
    frame = noise_frame(40)  # the clip's first shot, registered while the clip is being signed
    work_img = write_image(tmp_path / "late.png", frame)
    clip_signer = signer(settings)
    real_sign = clip_signer.sign
    registered = []

    def sign_while_registering(*args, **kwargs):
        if not registered:
            registered.append(index.register_work(work_img, owner="Late", title="Late work",
                                                  policy="block", settings=settings))
        return real_sign(*args, **kwargs)

    monkeypatch.setattr(clip_signer, "sign", sign_while_registering)
    outcome = release_clip(clip, generator=IDENT, settings=settings)
    assert registered
    assert not outcome.released and outcome.check.verdict != "release"
    assert [m.title for m in outcome.check.matches] == ["Late work"]
    assert outcome.check.index_version == index.health(settings)["version"]
    assert _stored(settings) == [] and _releases(settings) == 0


def test_index_file_from_another_database_is_not_trusted(settings, tmp_path, protected):

    index.rebuild(settings)
    with db.connection(settings) as conn:
        conn.execute("UPDATE index_state SET epoch = gen_random_uuid()")
        epoch = conn.execute("SELECT epoch::text AS e FROM index_state").fetchone()["e"]
    index.unload()
    assert index.sync(settings).epoch == epoch  # rebuilt, not loaded from the stale file


@pytest.mark.parametrize("damage", [b"", b"PK\x03\x04 truncated zip"])
def test_empty_or_truncated_index_file_is_rebuilt(settings, tmp_path, protected, damage):

    index.rebuild(settings)
    (settings.index_dir / "frames.npz").write_bytes(damage)
    index.unload()
    assert check_clip(_copy(tmp_path), settings=settings).verdict == "block"


def test_sweep_removes_only_old_leftovers_from_staging(settings):
    import os
    import time

    from compliance import sweep_staging

    staging = settings.release_dir / ".staging"
    staging.mkdir(parents=True)
    old, fresh = staging / "old.mp4", staging / "fresh.mp4"
    old.write_bytes(b"x")
    fresh.write_bytes(b"y")
    two_hours_ago = time.time() - 7200
    os.utime(old, (two_hours_ago, two_hours_ago))
    assert sweep_staging(settings) == 1
    assert not old.exists() and fresh.exists()

"""The HTTP API end to end on real PostgreSQL: keys, works, checks, releases, verify, bad input,
limits, health, and failing closed when the database is down."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import av
import psycopg
import pytest
from fastapi.testclient import TestClient

from bench.provenance import TRANSFORMS
from clipgate import apikeys, db
from clipgate.api import deps
from clipgate.app import create_app
from clipgate.settings import Settings
from tests.conftest import REDIS_URL
from tests.media import noise_frame, pan, photo, write_image, write_video

FPS = 12
BROKEN_DB = "postgresql://postgres@127.0.0.1:1/x"

GEN = {"model": "test-generator"}


def client_for(settings: Settings, key: str | None = None) -> TestClient:
    return TestClient(create_app(settings), headers={"X-API-Key": key} if key else {})


@pytest.fixture
def key(settings) -> str:
    """An admin key: it may do everything, so most tests use it."""
    return apikeys.create_key("test operator", role="admin", settings=settings)[1]


@pytest.fixture
def generator_key(settings) -> str:
    return apikeys.create_key("test generator", settings=settings)[1]


@pytest.fixture
def client(settings, key) -> Iterator[TestClient]:
    with client_for(settings, key) as c:
        yield c


def _clip(path: Path, shots: list[tuple[float, object]]) -> Path:
    """shots: (seconds, frame_fn(i, n)), encoded at FPS."""
    frames = []
    for seconds, fn in shots:
        n = int(seconds * FPS)
        frames += [fn(i, n) for i in range(n)]
    return write_video(path, frames, fps=FPS)


def _noise(seed: int):
    return lambda i, n: noise_frame(seed + i // 6, (320, 180))


def _reuse(name: str):
    img = photo(name, (320, 180))
    return lambda i, n: pan(img, i, n)


def _upload(path: Path, name: str | None = None, mime: str = "application/octet-stream"):
    return {"file": (name or path.name, path.read_bytes(), mime)}


def _register(client: TestClient, path: Path, title: str = "Astronaut portrait", policy="block"):
    r = client.post("/v1/works", files=_upload(path),
                    data={"owner": "NASA Archive", "title": title, "policy": policy})
    assert r.status_code == 201, r.text
    return r.json()


def _count(settings: Settings, table: str) -> int:
    with psycopg.connect(settings.database_url) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


# --- API keys -------------------------------------------------------------------------------


def test_missing_wrong_and_revoked_keys_are_refused(settings, key):
    with client_for(settings) as anon:
        r = anon.get("/v1/works")
        assert r.status_code == 401
        assert r.json()["detail"].startswith("missing API key: send it in the X-API-Key header")
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert anon.post("/v1/checks", files={"file": ("a.mp4", b"x")}).status_code == 401

        r = anon.get("/v1/works", headers={"X-API-Key": "cg_not-a-real-key"})
        assert r.status_code == 401 and r.json()["detail"] == "invalid API key"

        assert anon.get("/v1/works", headers={"Authorization": f"Bearer {key}"}).status_code == 200
        assert anon.get("/v1/works", headers={"X-API-Key": key}).status_code == 200

        record = apikeys.verify_key(key, settings)
        apikeys.revoke_key(str(record["id"]), settings)
        r = anon.get("/v1/works", headers={"X-API-Key": key})
        assert r.status_code == 401 and r.json()["detail"] == "invalid API key"
        # Liveness needs no key.
        assert anon.get("/v1/health/live").json() == {"status": "ok"}


def test_bootstrap_key_from_settings_works_and_is_stored_hashed(settings):
    boot = "cg_bootstrap-key-for-the-generator-service"
    s = settings.model_copy(update={"api_key": boot})
    with client_for(s, boot) as c:
        # Authenticated (404, not 401) on a generator route.
        assert c.get("/v1/releases/00000000-0000-0000-0000-000000000000").status_code == 404
        assert c.get("/v1/works").status_code == 403  # works are the operator's
    [record] = apikeys.list_keys(settings)
    assert record["name"] == "bootstrap" and record["role"] == "generator"
    with psycopg.connect(settings.database_url) as conn:
        stored = conn.execute("SELECT key_hash FROM api_keys").fetchone()[0]
    assert stored == apikeys.hash_key(boot) and boot not in stored


# --- works ----------------------------------------------------------------------------------


def test_generator_key_gates_clips_but_cannot_manage_works(settings, generator_key, tmp_path):
    img = write_image(tmp_path / "a.png", photo("astronaut"))
    clip = write_video(tmp_path / "c.mp4", [noise_frame(i // 6) for i in range(24)])
    with client_for(settings, generator_key) as c:
        with img.open("rb") as f:
            r = c.post("/v1/works", files={"file": ("a.png", f, "image/png")},
                       data={"owner": "o", "title": "t", "policy": "block"})
        assert r.status_code == 403
        assert c.get("/v1/works").status_code == 403
        assert c.delete("/v1/works/00000000-0000-0000-0000-000000000000").status_code == 403
        with clip.open("rb") as f:
            assert c.post("/v1/checks", files={"file": ("c.mp4", f, "video/mp4")}).status_code == 200
    assert _count(settings, "works") == 0


def test_register_get_list_and_remove_a_work(client, tmp_path):
    image = write_image(tmp_path / "astronaut.jpg", photo("astronaut", (256, 256)))
    work = _register(client, image)
    assert work["status"] == "active" and work["kind"] == "image" and work["frames"] == 1
    assert work["filename"] == "astronaut.jpg" and "media_path" not in work

    r = client.get(f"/v1/works/{work['id']}")
    assert r.status_code == 200 and r.json()["title"] == "Astronaut portrait"
    assert [w["id"] for w in client.get("/v1/works").json()["items"]] == [work["id"]]

    r = client.delete(f"/v1/works/{work['id']}")
    assert r.status_code == 200 and r.json()["status"] == "removed"
    assert client.get(f"/v1/works/{work['id']}").json()["status"] == "removed"
    assert client.get("/v1/works").json()["items"] == []
    assert len(client.get("/v1/works?include_removed=true").json()["items"]) == 1

    r = client.get("/v1/works/00000000-0000-0000-0000-000000000000")
    assert r.status_code == 404 and "no work with id" in r.json()["detail"]
    r = client.delete("/v1/works/not-a-uuid")
    assert r.status_code == 404 and "not a valid work id" in r.json()["detail"]


def test_works_take_the_track_and_allow_policies(client, tmp_path):
    for i, policy in enumerate(("track", "allow")):
        image = write_image(tmp_path / f"{policy}.png", photo(("coffee", "astronaut")[i], (96, 96)))
        work = _register(client, image, title=policy, policy=policy)
        assert client.get(f"/v1/works/{work['id']}").json()["policy"] == policy


def test_bad_work_metadata_is_refused_before_the_upload_is_read(client, settings, tmp_path):
    image = write_image(tmp_path / "a.png", photo("coffee", (64, 64)))
    r = client.post("/v1/works", files=_upload(image),
                    data={"owner": "x", "title": "y", "policy": "delete"})
    assert r.status_code == 422 and "policy" in r.json()["detail"]
    r = client.post("/v1/works", files=_upload(image), data={"owner": " ", "title": "y",
                                                               "policy": "block"})
    assert r.status_code == 400 and r.json()["detail"] == "owner is required"
    r = client.post("/v1/works", data={"owner": "x", "title": "y", "policy": "block"})
    assert r.status_code == 422 and r.json()["detail"] == "file: Field required"
    assert _count(settings, "works") == 0


def test_video_work_goes_to_a_worker_when_a_broker_is_set(settings, key, tmp_path):
    import index

    video = _clip(tmp_path / "short.mp4", [(2, _reuse("chelsea"))])
    s = settings.model_copy(update={"broker_url": REDIS_URL})
    with client_for(s, key) as c:
        r = c.post("/v1/works", files=_upload(video),
                   data={"owner": "Studio Kat", "title": "Chelsea", "policy": "block"})
        assert r.status_code == 202, r.text
        work = r.json()
        assert work["status"] == "pending" and work["kind"] == "video"
        assert r.headers["Location"].endswith(f"/v1/works/{work['id']}")
        index.process_pending_work(work["id"], settings)  # what the worker does
        assert c.get(r.headers["Location"]).json()["status"] == "active"


# --- checks, releases, verify ---------------------------------------------------------------


def test_check_blocks_a_reused_image_and_releases_an_unrelated_clip(client, tmp_path):
    work = _register(client, write_image(tmp_path / "astronaut.jpg", photo("astronaut", (320, 180))))
    reused = _clip(tmp_path / "memorised.mp4", [(1, _noise(1)), (2, _reuse("astronaut"))])
    r = client.post("/v1/checks", files=_upload(reused, mime="video/mp4"))
    assert r.status_code == 200, r.text
    check = r.json()
    assert check["verdict"] == "block" and check["filename"] == "memorised.mp4"
    [match] = check["matches"]
    assert match["work_id"] == work["id"] and match["segments"]

    unrelated = _clip(tmp_path / "original.mp4", [(2, _noise(500)), (1, _reuse("rocket"))])
    r = client.post("/v1/checks", files=_upload(unrelated))
    assert r.status_code == 200 and r.json()["verdict"] == "release", r.text
    assert r.json()["matches"] == []


def test_release_download_and_verify(client, settings, tmp_path):
    _register(client, write_image(tmp_path / "astronaut.jpg", photo("astronaut", (320, 180))))
    clip = _clip(tmp_path / "original.mp4", [(2, _noise(700)), (1, _reuse("rocket"))])
    r = client.post("/v1/releases", files=_upload(clip),
                    data={"model": "procedural", "model_version": "1",
                          "prompt": "a rocket at dawn"})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["released"] is True and body["check"]["verdict"] == "release"
    release = body["release"]
    assert release["status"] == "active"
    assert release["generator"]["model"] == "procedural"
    assert len(release["generator"]["prompt_sha256"]) == 64
    assert "a rocket at dawn" not in r.text  # the prompt is never kept or echoed

    assert client.get(f"/v1/releases/{release['release_id']}").json()["status"] == "active"
    signed = client.get(body["download_url"])
    assert signed.status_code == 200 and signed.headers["content-type"] == "video/mp4"
    assert signed.content != clip.read_bytes()

    r = client.post("/v1/verify", files={"file": ("downloaded.mp4", signed.content, "video/mp4")})
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["state"] == "Trusted", report["validation_errors"]
    assert report["release"]["release_id"] == release["release_id"]
    assert report["release"]["status"] == "active"

    # A copy whose manifest was stripped is traced to its release by watermark, not verified.
    downloaded = tmp_path / "downloaded.mp4"
    downloaded.write_bytes(signed.content)
    stripped = TRANSFORMS["stripped"](downloaded, tmp_path / "stripped.mp4")
    r = client.post("/v1/verify", files=_upload(stripped))
    assert r.status_code == 200, r.text
    copy = r.json()
    assert copy["state"] == "NoManifest" and copy["verified"] is False
    assert copy["recovered_by"] == "watermark"
    assert copy["recovery"]["release"]["release_id"] == release["release_id"]
    assert copy["recovery"]["manifest"]["label"] == report["manifest"]["label"]
    assert copy["verdict"].startswith(f"a copy of release {release['release_id']} (active)")

    # The unsigned original has no manifest (its pictures are the release's, less the mark).
    r = client.post("/v1/verify", files=_upload(clip))
    assert r.status_code == 200 and r.json()["state"] == "NoManifest"
    assert r.json()["verified"] is False
    assert client.get("/v1/releases/00000000-0000-0000-0000-000000000000/file").status_code == 404


def test_revoked_release_file_is_gone(client, settings, tmp_path):
    from compliance import store

    clip = _clip(tmp_path / "c.mp4", [(2, _noise(900))])
    release = client.post("/v1/releases", files=_upload(clip), data=GEN).json()["release"]
    with db.connection(settings) as conn:
        store.revoke_release(conn, release_id=release["release_id"], reason="claim upheld")
    r = client.get(f"/v1/releases/{release['release_id']}/file")
    assert r.status_code == 410 and "claim upheld" in r.json()["detail"]


def test_blocked_clip_is_not_released(client, settings, tmp_path):
    _register(client, write_image(tmp_path / "astronaut.jpg", photo("astronaut", (320, 180))))
    reused = _clip(tmp_path / "memorised.mp4", [(3, _reuse("astronaut"))])
    r = client.post("/v1/releases", files=_upload(reused), data={**GEN, "prompt_sha256": "AB" * 32})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["released"] is False and body["verdict"] == "block" and body["reasons"]
    assert _files(settings.release_dir) == []
    assert _count(settings, "releases") == 0

    r = client.post("/v1/releases", files=_upload(reused), data={**GEN, "prompt_sha256": "xyz"})
    assert r.status_code == 400 and "prompt_sha256" in r.json()["detail"]


# --- bad input and limits -------------------------------------------------------------------


def _zero_frame_mp4(path: Path) -> Path:
    # A plain MP4 with no samples loses its track on reading ("no video stream"); a fragmented
    # one (empty_moov) keeps a video stream that has no frames at all.
    with av.open(str(path), "w", options={"movflags": "empty_moov"}) as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        out.start_encoding()
    return path


def test_bad_media_is_refused_with_a_message_and_leaves_no_rows(client, settings, tmp_path):
    real = _clip(tmp_path / "real.mp4", [(1, _noise(3))]).read_bytes()
    cases = {
        "hello.mp4": b"hello",
        "truncated.mp4": real[: len(real) // 2],
        "zero.mp4": _zero_frame_mp4(tmp_path / "zero.mp4").read_bytes(),
        "empty.mp4": b"",
    }
    for name, content in cases.items():
        for url, data in (("/v1/checks", None),
                          ("/v1/works", {"owner": "o", "title": "t", "policy": "block"})):
            r = client.post(url, files={"file": (name, content, "video/mp4")}, data=data)
            assert r.status_code == 400, (name, url, r.text)
            assert r.json()["detail"].startswith(name), r.json()
    r = client.post("/v1/checks", files={"file": ("zero.mp4", cases["zero.mp4"])})
    assert "no frames" in r.json()["detail"]
    r = client.post("/v1/releases", files={"file": ("hello.mp4", b"hello")}, data=GEN)
    assert r.status_code == 400
    assert [_count(settings, t) for t in ("works", "checks", "releases")] == [0, 0, 0]
    assert _files(settings.uploads_dir) == []


def test_frame_over_the_pixel_limit_is_refused(settings, key, tmp_path):
    s = settings.model_copy(update={"max_frame_pixels": 100 * 100})
    image = write_image(tmp_path / "big.png", photo("coffee", (200, 100)))
    with client_for(s, key) as c:
        for url, data in (("/v1/checks", None),
                          ("/v1/works", {"owner": "o", "title": "t", "policy": "block"})):
            r = c.post(url, files=_upload(image), data=data)
            assert r.status_code == 413, r.text
            assert "limit of 10000 pixels" in r.json()["detail"]
    assert _count(settings, "works") == 0


def test_upload_over_the_size_limit_is_refused_and_cleaned_up(settings, key):
    s = settings.model_copy(update={"max_upload_bytes": 50_000})
    with client_for(s, key) as c:
        # Under limit + form slack: streamed to disk, counted, refused, deleted.
        r = c.post("/v1/checks", files={"file": ("big.mp4", b"\0" * 60_000)})
        assert r.status_code == 413 and "limit of 50000 bytes" in r.json()["detail"]
        assert s.uploads_dir.exists() and _files(s.uploads_dir) == []
        # Far over: refused by Content-Length before the body is read.
        r = c.post("/v1/checks", files={"file": ("huge.mp4", io.BytesIO(b"\0" * (2 << 20)))})
        assert r.status_code == 413 and "over the limit" in r.json()["detail"]
    assert _files(s.uploads_dir) == []
    assert _count(settings, "checks") == 0


# --- health and failing closed --------------------------------------------------------------


def test_health_is_ok_when_every_part_is(client):
    # Anyone learns that it is ready, and nothing else (issue 15: no signer subject, index size).
    r = client.get("/v1/health", headers={"X-API-Key": ""})
    assert r.status_code == 200 and r.json() == {"status": "ok"}, r.text
    r = client.get("/v1/health")  # the admin key: each part's details
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok"
    for part in ("database", "broker", "index", "signer", "signals", "clip"):
        assert body[part]["ok"] is True, (part, body[part])
    assert body["signals"]["sscd"]["model"] == "sscd_distilled"
    assert body["clip"]["computed"] is False and "not computed" in body["clip"]["note"]


@pytest.fixture
def broken_db(settings) -> Settings:
    # Fails fast: the request path does not wait for the database to come up (db.pool migrates
    # with wait=False; only start-up and `clipgate migrate` wait).
    return settings.model_copy(update={"database_url": BROKEN_DB})


def test_database_down_health_is_503_and_nothing_is_released(broken_db, key, tmp_path):
    clip = _clip(tmp_path / "c.mp4", [(2, _noise(40))])
    app = create_app(broken_db)
    with TestClient(app, headers={"X-API-Key": key}) as c:
        r = c.get("/v1/health")
        assert r.status_code == 503 and r.json()["status"] == "degraded"
        # The key cannot be checked without the database: no details, and it says why.
        assert "database" not in r.json() and "cannot check the API key" in r.json()["detail"]
        assert c.get("/v1/health/live").status_code == 200

        # The key cannot even be checked: refused, with the reason.
        r = c.post("/v1/releases", files=_upload(clip), data=GEN)
        assert r.status_code == 503 and "database unreachable" in r.json()["detail"]

        # Past the key check, the gate itself fails closed.
        app.dependency_overrides[deps.api_key] = lambda: {"id": "t", "role": "generator"}
        r = c.post("/v1/releases", files=_upload(clip), data=GEN)
        assert r.status_code == 503, r.text
        detail = r.json()["detail"]
        assert "nothing was released" in detail and "database unreachable" in detail
    assert _files(broken_db.release_dir) == []
    assert _files(broken_db.uploads_dir) == []


def test_health_details_are_for_admin_keys_only(settings, client, generator_key):
    """Issue 15: anonymous health showed the signer's subject and the index size."""
    anon = client.get("/v1/health", headers={"X-API-Key": ""})
    gen = client.get("/v1/health", headers={"X-API-Key": generator_key})
    for r in (anon, gen):
        assert r.status_code == 200 and r.json() == {"status": "ok"}
    r = client.get("/v1/health", headers={"X-API-Key": "cg_not-a-key"})
    assert r.status_code == 401
    admin = client.get("/v1/health").json()
    assert admin["signer"]["ok"] is True and "index" in admin and "version" in admin

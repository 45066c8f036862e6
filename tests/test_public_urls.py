"""Links the API makes (download_url, Location) are on CLIPGATE_PUBLIC_BASE_URL, never on the
request's Host header, which the client chooses (issue 15)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from clipgate import apikeys
from clipgate.app import create_app
from tests.media import noise_frame, photo, write_image, write_video

BASE = "https://clipgate.example.com"
EVIL = {"Host": "evil.example"}


def test_links_use_the_public_base_url_not_the_host_header(settings, tmp_path):
    s = settings.model_copy(update={"public_base_url": BASE + "/"})
    key = apikeys.create_key("operator", role="admin", settings=s)[1]
    c = TestClient(create_app(s), headers={"X-API-Key": key, **EVIL})
    img = write_image(tmp_path / "w.png", photo("coffee", (320, 240)))
    r = c.post("/v1/works", files={"file": ("w.png", img.read_bytes(), "image/png")},
               data={"owner": "O", "title": "T", "policy": "block"})
    assert r.status_code == 201, r.text
    assert r.headers["location"] == f"{BASE}/v1/works/{r.json()['id']}"
    clip = write_video(tmp_path / "c.mp4", [noise_frame(5 + i // 6, (320, 180)) for i in range(24)])
    r = c.post("/v1/releases", files={"file": ("c.mp4", clip.read_bytes(), "video/mp4")},
               data={"model": "m"})
    assert r.status_code == 201, r.text
    body = r.json()
    rid = body["release"]["release_id"]
    assert body["download_url"] == f"{BASE}/v1/releases/{rid}/file"
    assert r.headers["location"] == f"{BASE}/v1/releases/{rid}"
    assert c.get(f"/v1/releases/{rid}").json()["download_url"].startswith(BASE + "/v1/")
    assert "evil.example" not in repr(body)

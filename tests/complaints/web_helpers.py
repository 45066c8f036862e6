"""Helpers for the page tests: accounts, a real released clip and a real claim, the CSRF token of
a page, and a real uvicorn server in a thread for the browser tests."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import uvicorn
from fastapi.testclient import TestClient
from PIL import Image

import complaints
import index
from clipgate.app import UVICORN_OPTIONS, create_app
from clipgate.settings import Settings
from complaints import accounts
from complaints.actors import actor_for_account
from compliance import generator_identity, release_clip
from tests.media import noise_frame, pan, photo, write_image, write_video

PASSWORD = "a long enough passphrase"
IDENT = generator_identity(model="test-gen", version="1", prompt="a slow zoom into a photo")
STATEMENT = {"good_faith": True, "accurate": True, "authorised": True, "signature": "Ana Reyes"}


def plain_http(settings: Settings) -> Settings:
    """The same settings with the session cookie allowed over plain http (the test server)."""
    return settings.model_copy(update={"session_https_only": False})


def client(settings: Settings) -> TestClient:
    return TestClient(create_app(plain_http(settings)), follow_redirects=False)


def account(settings: Settings, role: str, email: str, name: str | None = None) -> dict[str, Any]:
    return accounts.create_account(email, PASSWORD, name or email.split("@")[0].title(), role,
                                   settings=settings)


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF token in the page"
    return m.group(1)


def sign_in(c: TestClient | httpx.Client, email: str, password: str = PASSWORD) -> httpx.Response:
    token = csrf_of(c.get("/signin").text)
    return c.post("/signin", data={"email": email, "password": password, "csrf_token": token})


def inset(rgb: np.ndarray, i: int, n: int, *, scale: float = 0.6,
          at: tuple[float, float] = (0.3, 0.1), background: int = 7) -> np.ndarray:
    """Frame i of n: a slow zoom into rgb, shrunk to `scale` and pasted at `at` (x, y as parts of
    the frame) over textured noise, the way a generator might put a copied picture in a scene."""
    bg = noise_frame(background).copy()
    h, w = bg.shape[:2]
    small = np.asarray(Image.fromarray(pan(rgb, i, n)).resize((int(w * scale), int(h * scale))))
    y, x = int(h * at[1]), int(w * at[0])
    bg[y : y + small.shape[0], x : x + small.shape[1]] = small
    return bg


def released_clip(settings: Settings, folder: Path, photo_name: str = "astronaut", *,
                  inset_copy: bool = False) -> tuple[dict[str, Any], Path, Path]:
    """A clip (a slow zoom into a real photo, or that zoom inset in a scene) released and signed
    before anyone protected the photo; returns (release record, signed clip, the photo as the
    rights holder's work file)."""
    folder.mkdir(parents=True, exist_ok=True)
    img = photo(photo_name)
    frames = [inset(img, i, 36) if inset_copy else pan(img, i, 36) for i in range(36)]
    clip = write_video(folder / f"{photo_name}-clip.mp4", frames)
    outcome = release_clip(clip, generator=IDENT, settings=settings)
    assert outcome.released, outcome.check.verdict
    work = write_image(folder / f"{photo_name}.png", img)
    return outcome.release, Path(outcome.release["path"]), work


def register_work(settings: Settings, owner: dict[str, Any], path: Path, title: str
                  ) -> dict[str, Any]:
    return index.register_work(path, owner=owner["name"], title=title, policy="review",
                               account_id=str(owner["id"]), settings=settings)


def file_claim(settings: Settings, claimant: dict[str, Any], release_id: str, work_id: str
               ) -> dict[str, Any]:
    return complaints.file_claim(
        actor_for_account(claimant), release_id=release_id, clip_path=None, clip_name=None,
        work_id=work_id, work_path=None, work_title=None, statement=STATEMENT,
        remedies=["takedown", "block"], details=None, settings=settings)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def live_server(settings: Settings) -> Iterator[str]:
    """The whole app under a real uvicorn on a free port, in a thread; yields its base URL."""
    port = free_port()
    # Links the API makes (download_url, Location) point at this server.
    served = plain_http(settings).model_copy(update={"public_base_url": f"http://127.0.0.1:{port}"})
    config = uvicorn.Config(create_app(served), host="127.0.0.1", port=port,
                            log_level="warning", lifespan="on", **UVICORN_OPTIONS)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def finished_job(api: httpx.Client, *, prompt: str, tenant: str, key: str,
                 seed: int | None = None) -> dict:
    """A small generation job run through the API until the gate leaves it (released, blocked,
    held in review, or failed): its job as GET /v1/generations/{id} shows it."""
    body = {"prompt": prompt, "tenant": tenant, "user": "u-1", "idempotency_key": key,
            "seconds": 3.0, "width": 320, "height": 180, "fps": 12}
    if seed is not None:
        body["seed"] = seed
    r = api.post("/v1/generations", json=body)
    assert r.status_code == 202, r.text
    deadline = time.monotonic() + 120
    while True:
        job = api.get(f"/v1/generations/{r.json()['id']}").json()
        if job["state"] in ("in_review", "released", "blocked", "failed"):
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.3)

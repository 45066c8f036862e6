"""Restart PostgreSQL under a running API (`clipgate serve`, a real process) while four clients
send checks and releases: every answer is a 2xx or a 503 with a message, never a 500; nothing is
released unchecked or unsigned; and the API works again after the restart without being
restarted itself (its connection pool recovers)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest

from clipgate import apikeys, db
from clipgate.settings import Settings
from compliance import verify_clip
from tests.faults.conftest import REPO, free_port, wait_for
from tests.media import noise_frame, write_video

pytestmark = pytest.mark.slow

CLIENTS = 4


@dataclass
class Traffic:
    """What the clients got, by phase: before, while down, after the restart."""

    phase: str = "before"
    answers: list[tuple[str, str, int, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)

    def record(self, phase: str, kind: str, status: int, detail: str) -> None:
        with self.lock:
            self.answers.append((phase, kind, status, detail))

    def count(self, phase: str, ok: bool | None = None) -> int:
        with self.lock:
            return sum(1 for p, _, s, _ in self.answers
                       if p == phase and (ok is None or (200 <= s < 300) == ok))


def _client(base: str, key: str, clips: list[Path], n: int, traffic: Traffic) -> None:
    with httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=120) as http:
        i = n
        while not traffic.stop.is_set():
            clip = clips[i % len(clips)]
            kind = "release" if i % 2 else "check"
            phase = traffic.phase
            with clip.open("rb") as f:
                files = {"file": (clip.name, f, "video/mp4")}
                if kind == "release":
                    r = http.post("/v1/releases", files=files, data={"model": "m"})
                else:
                    r = http.post("/v1/checks", files=files)
            traffic.record(phase, kind, r.status_code, _detail(r))
            i += CLIENTS


def _detail(r: httpx.Response) -> str:
    if r.status_code < 400:
        return ""
    try:
        return str(r.json().get("detail", ""))
    except ValueError:  # not JSON: what a crash page says
        return f"(not JSON) {r.text[:200]}"


def test_api_survives_a_database_restart_during_checks_and_releases(private_postgres, tmp_path):
    pg = private_postgres
    s = Settings(_env_file=None, data_dir=tmp_path / "data", database_url=pg.url)
    key = apikeys.create_key("generator", "generator", s)[1]
    db.close_pools()  # the test holds no connection across the restart
    clips = [write_video(tmp_path / f"c{i}.mp4",
                         [noise_frame(100 * i + j // 6, size=(320, 180)) for j in range(12)])
             for i in range(6)]
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO), "CLIPGATE_DATABASE_URL": pg.url,
           "CLIPGATE_DATA_DIR": str(s.data_dir), "CLIPGATE_LOG_LEVEL": "WARNING"}
    env.pop("CLIPGATE_BROKER_URL", None)
    log = tmp_path / "api.log"
    with log.open("wb") as out:
        api = subprocess.Popen([sys.executable, "-c", "from clipgate.cli import main; main()",
                                "serve", "--host", "127.0.0.1", "--port", str(port)],
                               env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path,
                               start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    traffic = Traffic()
    threads = [threading.Thread(target=_client, args=(base, key, clips, n, traffic))
               for n in range(CLIENTS)]
    try:
        wait_for(lambda: _live(base, api, log), timeout=180, what="the API to start")
        for t in threads:
            t.start()
        wait_for(lambda: traffic.count("before", ok=True) >= 8, timeout=180,
                 what="answers before the restart")
        pg.stop()
        traffic.phase = "down"
        wait_for(lambda: traffic.count("down") >= 4, timeout=120, what="answers while down")
        pg.start()
        traffic.phase = "after"
        wait_for(lambda: traffic.count("after", ok=True) >= 8, timeout=180,
                 what="the API to work again after the restart")
    finally:
        traffic.stop.set()
        for t in threads:
            if t.is_alive():
                t.join(timeout=180)
        api.terminate()
        api.wait(timeout=60)

    statuses = Counter((p, s) for p, _, s, _ in traffic.answers)
    print("answers by phase and status:", dict(statuses))
    bad = [a for a in traffic.answers if not (200 <= a[2] < 300 or a[2] == 503)]
    assert bad == [], f"answers that are neither 2xx nor 503: {bad[:5]}"
    unavailable = [a for a in traffic.answers if a[2] == 503]
    assert unavailable, "the restart was never noticed: the test did not test anything"
    assert all(a[3] for a in unavailable), "a 503 without a message"
    assert traffic.count("after", ok=True) >= 8
    _assert_every_release_checked_and_signed(pg.url, s)


def _live(base: str, api: subprocess.Popen, log: Path) -> bool:
    if api.poll() is not None:
        raise AssertionError(f"the API exited: {log.read_text()[-3000:]}")
    try:
        return httpx.get(f"{base}/v1/health/live", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _assert_every_release_checked_and_signed(url: str, s: Settings) -> None:
    """Every release row has a check that said `release` and a signed file that verifies; every
    file in the release store has a row."""
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT r.id, r.path, c.verdict FROM releases r "
                            "LEFT JOIN checks c ON c.id = r.check_id").fetchall()
    assert rows, "nothing was released at all"
    assert all(verdict == "release" for _, _, verdict in rows)
    for _, path, _ in rows:
        assert verify_clip(Path(path), settings=s)["verified"] is True, path
    stored = {p for p in s.release_dir.iterdir() if p.is_file()}
    assert stored == {Path(path) for _, path, _ in rows}

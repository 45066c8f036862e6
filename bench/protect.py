"""`clipgate bench protect`: time to protect, across processes.

From `POST /v1/works` returning in an API process (`clipgate serve`, started here as a child
process) until a check in another process (this one) matches the new work. This process holds
the index before the POST, as a running API process or worker does, so what it pays is the
change log: read the added work's frames, put them in the delta, and check.

The catalogue is synthetic (index.seed_synthetic: random vectors of every active signal, 10 frames
a work), so that a 1e5 frame catalogue loads in a minute; it measures how changes propagate, not
matching quality. It runs against its own data directory and embedded database (never the
operator's), kept between runs, so only the first run at a size pays for seeding it.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

import index
from bench.perf import _machine, synthetic_work
from clipgate import apikeys, db
from clipgate.settings import Settings
from compliance import match_file

API_START_TIMEOUT_S = 180.0
MATCH_TIMEOUT_S = 60.0


def run_protect(settings: Settings, *, frames: int, runs: int = 3,
                progress: Callable[[int, int], None] = lambda done, total: None
                ) -> dict[str, Any]:
    """Seed the catalogue to `frames` frames, start an API process, and `runs` times: register a
    new work through it and time until a check here matches it. Seconds, as JSON-ready data."""
    t0 = time.perf_counter()
    seeded = index.seed_synthetic(settings, frames=frames, progress=progress)
    seed_s = time.perf_counter() - t0

    # This process holds the index, as a running checker does (not measured): built whole, or
    # loaded from the saved file and brought up to date from the change log.
    start = index.live.stats()
    t0 = time.perf_counter()
    held = index.sync(settings)
    start_s = time.perf_counter() - t0
    started = {k: v - start[k] for k, v in index.live.stats().items() if v != start[k]}
    with tempfile.TemporaryDirectory() as tmp:
        warm = Path(tmp) / "warm.png"
        synthetic_work(1).save(warm)
        match_file(warm, settings)  # models loaded, crops and search warm

        _, key = apikeys.create_key("bench-protect", "admin", settings)
        api, base_url = _start_api(settings)
        try:
            results = [_one(settings, base_url, key, Path(tmp), run) for run in range(runs)]
        finally:
            api.terminate()
            try:
                api.wait(20)
            except subprocess.TimeoutExpired:
                api.kill()

    protect = [r["time_to_protect_s"] for r in results]
    final = index.sync(settings)
    return {
        "frames": final.frames,
        "seeded": seeded,
        "seed_s": round(seed_s, 1),
        "checker_start_s": round(start_s, 2),
        "checker_start": started,  # builds, or a load of the file and the changes since
        "vectors": held.describe(),  # flat or compressed, which moves the check's time
        "index_version_before": held.version,
        "runs": results,
        "time_to_protect_s": {"median": round(statistics.median(protect), 3),
                              "max": round(max(protect), 3)},
        "rebuilds_during_runs": sum(r["rebuilds"] for r in results),
        "target_s": 5.0,
        "how": "POST /v1/works to a `clipgate serve` child process; the clock starts when it "
               "answers; this process, holding the index, then syncs (applies the change log) "
               "and checks the work's image until it matches. The poll is off here, so the "
               "check itself applies the change.",
        "machine": _machine(),
    }


def _one(settings: Settings, base_url: str, key: str, tmp: Path, run: int) -> dict[str, Any]:
    path = tmp / f"work{run}.png"
    synthetic_work(time.time_ns() % 2**31).save(path)  # never registered before
    stats = index.live.stats()
    with path.open("rb") as f:
        t0 = time.perf_counter()
        response = httpx.post(f"{base_url}/v1/works", headers={"X-API-Key": key}, timeout=120,
                              files={"file": (path.name, f, "image/png")},
                              data={"owner": "bench", "title": f"protect {run}",
                                    "policy": "block"})
    returned = time.perf_counter()
    if response.status_code != 201:
        raise RuntimeError(f"POST /v1/works answered {response.status_code}: {response.text}")
    work_id = response.json()["id"]
    live = index.sync(settings)  # applies the change log since the held version
    applied = time.perf_counter()
    checks = 0
    while True:
        checks += 1
        outcome = match_file(path, settings)
        if work_id in {m.work_id for m in outcome.matches}:
            break
        if time.perf_counter() - returned > MATCH_TIMEOUT_S:
            raise RuntimeError(f"work {work_id} not matched {MATCH_TIMEOUT_S} s after its POST")
    done = time.perf_counter()
    after = index.live.stats()
    return {
        "post_s": round(returned - t0, 3),
        "time_to_protect_s": round(done - returned, 3),
        "apply_changes_s": round(applied - returned, 3),
        "check_s": round(done - applied, 3),
        "checks": checks,
        "version": live.version,
        "delta_frames": live.delta_frames,
        "rebuilds": after["builds"] - stats["builds"],
        "changes_applied": after["changes"] - stats["changes"],
    }


def _start_api(settings: Settings) -> tuple[subprocess.Popen, str]:
    """`clipgate serve` on a free port, on the same database, with its own data directory."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "CLIPGATE_DATABASE_URL": db.database_url(settings),
           "CLIPGATE_DATA_DIR": str(settings.data_dir / "api"), "CLIPGATE_BROKER_URL": "",
           "CLIPGATE_LOG_LEVEL": "WARNING", "CLIPGATE_INDEX_POLL_S": "0"}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from clipgate.cli import main; main()", "serve", "--port",
         str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + API_START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the API process exited with {proc.returncode}")
        try:
            if httpx.get(f"{url}/v1/health/live", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    proc.kill()
    raise RuntimeError(f"the API process did not answer within {API_START_TIMEOUT_S} s")

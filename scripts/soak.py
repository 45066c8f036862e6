"""Soak: mixed traffic from several clients against a real `clipgate serve` on loopback for a
while, watching the API's (and a worker's) resident memory.

Run by hand, not in CI (it takes minutes):

    PYTHONPATH=. HF_HUB_OFFLINE=1 .venv/bin/python scripts/soak.py --minutes 10
    # with a broker: generation and registration go to a real `clipgate worker`
    ... scripts/soak.py --minutes 10 --broker redis://127.0.0.1:6379/3

It makes a throwaway database on --admin-url (the machine's PostgreSQL by default) and a
temporary data directory, starts the API (and the worker), registers a few protected works and
makes a tenant, then runs --clients clients. Each loops over a mix: checks and releases of small
clips (one copies a protected work, so it is blocked), verifying a released file, generation
jobs (submitted and followed to the end), listing works and releases, and health. Resident
memory is sampled every few seconds; the figure after --warmup-s is the baseline. At the end it
prints the answers by status, latencies, and memory after warm-up and at the end, and exits 1
if any answer was a 5xx or memory grew by more than --max-growth (10%).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import av
import httpx
import numpy as np
import psutil
import psycopg
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _texture(seed: int, size: tuple[int, int] = (320, 180)) -> np.ndarray:
    """A detailed picture (smoothed noise with edges), so every signal has something to use."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)
    return np.asarray(img)


def _video(path: Path, frames: list[np.ndarray], fps: int = 12) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def _pan(img: np.ndarray, i: int, n: int) -> np.ndarray:
    """A slow zoom into img (frame i of n), back at img's size."""
    h, w = img.shape[:2]
    c = int(0.06 * min(h, w) * i / max(1, n - 1))
    crop = Image.fromarray(img[c:h - c or h, c:w - c or w])
    return np.asarray(crop.resize((w, h), Image.Resampling.BILINEAR))


@dataclass
class Stats:
    answers: Counter = field(default_factory=Counter)  # (kind, status)
    latency_s: dict[str, list[float]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, status: int, seconds: float, detail: str = "") -> None:
        with self.lock:
            self.answers[(kind, status)] += 1
            self.latency_s.setdefault(kind, []).append(seconds)
            if status >= 500 and len(self.errors) < 20:
                self.errors.append(f"{kind} {status} {detail[:200]}")


class Client(threading.Thread):
    def __init__(self, n: int, base: str, keys: dict[str, str], media: dict[str, list[Path]],
                 stats: Stats, stop: threading.Event) -> None:
        super().__init__(name=f"client-{n}", daemon=True)
        self.n, self.base, self.keys, self.media = n, base, keys, media
        self.stats, self.stop = stats, stop
        self.rng = random.Random(n)
        self.released: list[str] = []  # release ids, for verify

    def run(self) -> None:
        gen = httpx.Client(base_url=self.base, headers={"X-API-Key": self.keys["generator"]},
                           timeout=300)
        admin = httpx.Client(base_url=self.base, headers={"X-API-Key": self.keys["admin"]},
                             timeout=300)
        actions = [(self.check, 4), (self.release, 3), (self.verify, 1), (self.generate, 1),
                   (self.lists, 2), (self.health, 2)]
        weights = [w for _, w in actions]
        i = 0
        while not self.stop.is_set():
            action = self.rng.choices([a for a, _ in actions], weights)[0]
            try:
                action(gen, admin, i)
            except httpx.HTTPError as e:  # a timeout or a dropped connection counts as a failure
                self.stats.add(action.__name__, 599, 0.0, repr(e))
            i += 1

    def _timed(self, kind: str, fn) -> httpx.Response:
        t0 = time.perf_counter()
        r = fn()
        self.stats.add(kind, r.status_code, time.perf_counter() - t0, r.text)
        return r

    def check(self, gen: httpx.Client, admin: httpx.Client, i: int) -> None:
        clip = self.rng.choice(self.media["clips"] + self.media["copies"])
        with clip.open("rb") as f:
            self._timed("check", lambda: gen.post("/v1/checks",
                                                  files={"file": (clip.name, f, "video/mp4")}))

    def release(self, gen: httpx.Client, admin: httpx.Client, i: int) -> None:
        clip = self.rng.choice(self.media["clips"])
        with clip.open("rb") as f:
            r = self._timed("release", lambda: gen.post(
                "/v1/releases", files={"file": (clip.name, f, "video/mp4")},
                data={"model": "soak", "model_version": "1"}))
        if r.status_code == 201:
            self.released.append(r.json()["release"]["release_id"])
            del self.released[:-20]

    def verify(self, gen: httpx.Client, admin: httpx.Client, i: int) -> None:
        if not self.released:
            return
        rid = self.rng.choice(self.released)
        r = self._timed("download", lambda: gen.get(f"/v1/releases/{rid}/file"))
        if r.status_code == 200:
            self._timed("verify", lambda: gen.post(
                "/v1/verify", files={"file": ("signed.mp4", r.content, "video/mp4")}))

    def generate(self, gen: httpx.Client, admin: httpx.Client, i: int) -> None:
        r = self._timed("generate", lambda: gen.post("/v1/generations", json={
            "tenant": "soak", "user": f"client-{self.n}", "idempotency_key": uuid.uuid4().hex,
            "prompt": f"a slow pan over a quiet lake, take {self.n}-{i}", "seconds": 1.0,
            "width": 320, "height": 180, "fps": 12}))
        if r.status_code not in (200, 202):
            return
        job_id, deadline = r.json()["id"], time.monotonic() + 300
        while not self.stop.is_set() and time.monotonic() < deadline:
            s = self._timed("job", lambda: gen.get(f"/v1/generations/{job_id}"))
            if s.status_code != 200 or s.json()["done"]:
                return
            time.sleep(0.5)

    def lists(self, gen: httpx.Client, admin: httpx.Client, i: int) -> None:
        self._timed("works", lambda: admin.get("/v1/works"))
        if self.released:
            rid = self.released[-1]
            self._timed("release_get", lambda: gen.get(f"/v1/releases/{rid}"))

    def health(self, gen: httpx.Client, admin: httpx.Client, i: int) -> None:
        self._timed("health", lambda: admin.get("/v1/health"))


def _rss_mib(proc: subprocess.Popen) -> float:
    """Resident memory of a process and its children (a worker's pool), MiB."""
    try:
        p = psutil.Process(proc.pid)
        procs = [p, *p.children(recursive=True)]
        return sum(q.memory_info().rss for q in procs if q.is_running()) / 2**20
    except psutil.NoSuchProcess:
        return float("nan")


def _make_media(tmp: Path) -> tuple[dict[str, list[Path]], list[Path]]:
    works = []
    for k in range(3):
        p = tmp / f"work-{k}.png"
        Image.fromarray(_texture(9000 + k, (640, 360))).save(p)
        works.append(p)
    clips = [_video(tmp / f"clip-{k}.mp4", [_texture(100 * k + j // 6) for j in range(12)])
             for k in range(6)]
    work0 = np.asarray(Image.open(works[0]).convert("RGB").resize((320, 180)))
    copies = [_video(tmp / "copy-0.mp4", [_pan(work0, j, 12) for j in range(12)])]
    return {"clips": clips, "copies": copies}, works


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--warmup-s", type=float, default=120.0)
    ap.add_argument("--sample-s", type=float, default=5.0)
    ap.add_argument("--max-growth", type=float, default=0.10)
    ap.add_argument("--admin-url", default=os.environ.get(
        "CLIPGATE_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"))
    ap.add_argument("--broker", default=None, help="a redis:// URL: run a worker too")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="clipgate-soak-"))
    name = f"clipgate_soak_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = args.admin_url.rsplit("/", 1)[0] + f"/{name}"
    env = {**os.environ, "PYTHONPATH": str(REPO), "CLIPGATE_DATABASE_URL": url,
           "CLIPGATE_DATA_DIR": str(tmp / "data"), "CLIPGATE_LOG_LEVEL": "WARNING"}
    env.pop("CLIPGATE_API_KEY", None)
    if args.broker:
        env.update(CLIPGATE_BROKER_URL=args.broker, CLIPGATE_RESULT_BACKEND=args.broker)
    else:
        env.pop("CLIPGATE_BROKER_URL", None)
    os.environ.update({k: env[k] for k in ("CLIPGATE_DATABASE_URL", "CLIPGATE_DATA_DIR")})
    from clipgate import apikeys, db
    from clipgate.settings import get_settings

    settings = get_settings()
    db.migrate(url)
    keys = {role: apikeys.create_key(f"soak-{role}", role, settings)[1]
            for role in ("generator", "admin")}
    db.close_pools()
    media, works = _make_media(tmp)
    port = _free_port()
    cli = [sys.executable, "-c", "from clipgate.cli import main; main()"]
    procs = {"api": subprocess.Popen([*cli, "serve", "--host", "127.0.0.1", "--port", str(port)],
                                     env=env, cwd=tmp, stdout=(tmp / "api.log").open("wb"),
                                     stderr=subprocess.STDOUT)}
    if args.broker:
        procs["worker"] = subprocess.Popen(
            [*cli, "worker", "--queues", "cpu,gpu", "--beat"], env=env, cwd=tmp,
            stdout=(tmp / "worker.log").open("wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    stats, stop = Stats(), threading.Event()
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"{base}/v1/health/live", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or procs["api"].poll() is not None:
                print((tmp / "api.log").read_text()[-3000:], file=sys.stderr)
                return 2
            time.sleep(0.5)
        with httpx.Client(base_url=base, headers={"X-API-Key": keys["admin"]}, timeout=300) as a:
            for k, w in enumerate(works):
                with w.open("rb") as f:
                    r = a.post("/v1/works", files={"file": (w.name, f, "image/png")},
                               data={"owner": "Soak Studio", "title": f"Work {k}",
                                     "policy": "block"})
                r.raise_for_status()
            a.post("/v1/tenants", json={"name": "soak", "tier": "pro",
                                        "credits_gpu_s": 1e6}).raise_for_status()
        clients = [Client(n, base, keys, media, stats, stop) for n in range(args.clients)]
        t0 = time.monotonic()
        for c in clients:
            c.start()
        samples: list[tuple[float, dict[str, float]]] = []
        end = t0 + args.minutes * 60
        while time.monotonic() < end:
            time.sleep(min(args.sample_s, max(0.0, end - time.monotonic())))
            samples.append((time.monotonic() - t0, {k: _rss_mib(p) for k, p in procs.items()}))
            print(f"{samples[-1][0]:7.0f} s  " + "  ".join(
                f"{k} {v:7.1f} MiB" for k, v in samples[-1][1].items())
                + f"  answers {sum(stats.answers.values())}", flush=True)
        stop.set()
        for c in clients:
            c.join(timeout=300)
    finally:
        stop.set()
        for p in procs.values():
            p.terminate()
        for p in procs.values():
            try:
                p.wait(timeout=60)
            except subprocess.TimeoutExpired:
                p.kill()
        with psycopg.connect(args.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return _report(args, stats, samples)


def _report(args: argparse.Namespace, stats: Stats,
            samples: list[tuple[float, dict[str, float]]]) -> int:
    print(f"\n{args.clients} clients, {args.minutes:g} min; answers by kind and status:")
    for (kind, status), n in sorted(stats.answers.items()):
        lat = stats.latency_s[kind]
        print(f"  {kind:<12} {status}  {n:6d}   p50 {statistics.median(lat):6.3f} s   "
              f"p95 {np.percentile(lat, 95):6.3f} s")
    fives = sum(n for (_, s), n in stats.answers.items() if s >= 500)
    print(f"5xx (or dropped): {fives}")
    for e in stats.errors:
        print("  ", e)
    ok = fives == 0
    warm = [s for s in samples if s[0] >= args.warmup_s]
    if not warm:
        print("no sample after warm-up: run longer than --warmup-s")
        return 1
    for proc in warm[0][1]:
        after_warmup, at_end = warm[0][1][proc], warm[-1][1][proc]
        peak = max(s[1][proc] for s in warm)
        growth = at_end / after_warmup - 1
        print(f"{proc}: resident {after_warmup:.1f} MiB after warm-up ({warm[0][0]:.0f} s), "
              f"{at_end:.1f} MiB at the end ({warm[-1][0]:.0f} s): {growth:+.1%} "
              f"(peak {peak:.1f} MiB)")
        ok = ok and growth <= args.max_growth
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Fault tests: real processes, stopped and killed on purpose.

Each test starts its own Redis (and, where it restarts it, its own PostgreSQL) on a free port,
never touching the machine's shared services. Workers are real `clipgate worker` processes
(tests/faults/paused_worker.py), killed with SIGKILL as a crash or an OOM kill would.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import pytest
import redis

from clipgate.settings import Settings, get_settings

REPO = Path(__file__).resolve().parents[2]
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
T = TypeVar("T")

# Short leases and sweeps, so a dead worker is noticed in seconds, not minutes.
FAST = {"task_lease_s": 3.0, "job_lease_s": 3.0, "recover_sweep_s": 1.0,
        "job_requeue_after_s": 5.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(fn: Callable[[], T], *, timeout: float, what: str, every: float = 0.2) -> T:
    """Poll fn until it returns something truthy; fail with `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last: {last!r})")


class PrivateRedis:
    """A redis-server of this test's own, without persistence: stop() loses what it held."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.up, timeout=20, what="the private Redis to answer", every=0.05)

    def up(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=20)


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if not os.path.exists(REDIS_SERVER):
        pytest.skip("redis-server is not installed")
    r = PrivateRedis(tmp_path)
    r.start()
    yield r
    r.stop()


def _pg_bin() -> Path | None:
    """A PostgreSQL bin directory with initdb and postgres: Debian's, else pgserver's."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    try:
        import pgserver._commands as pgc

        return Path(pgc.POSTGRES_BIN_PATH)
    except Exception:  # noqa: BLE001
        return None


class PrivatePostgres:
    """A PostgreSQL server of this test's own, in a temporary directory, that it can restart.
    Run as the `postgres` system user when the tests run as root (postgres refuses root)."""

    def __init__(self) -> None:
        self.bin = _pg_bin()
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="clipgate-pg-"))
        self.data = self.dir / "data"
        self.user = "postgres" if os.geteuid() == 0 else None
        self.proc: subprocess.Popen | None = None
        if self.user:
            shutil.chown(self.dir, self.user)
            self.dir.chmod(0o700)
        self.run_as_owner([str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                   "--auth=trust", "--no-sync", "-E", "UTF8"])

    def run_as_owner(self, cmd: list[str]) -> None:
        subprocess.run(cmd, check=True, user=self.user, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, cwd=self.dir)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-k", str(self.dir), "-c", "fsync=off",
             "-c", "max_connections=60"],
            user=self.user, cwd=self.dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(self.up, timeout=30, what="the private PostgreSQL to answer", every=0.1)

    def up(self) -> bool:
        try:
            with psycopg.connect(self.url, connect_timeout=1) as conn:
                conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    def stop(self) -> None:
        """Fast shutdown (SIGINT): clients are disconnected, as on a restart or failover."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=30)

    def remove(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    if _pg_bin() is None:
        pytest.skip("no PostgreSQL server binaries (initdb, postgres) found")
    if os.geteuid() == 0:
        import pwd

        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root, and no `postgres` user to run a PostgreSQL server as")
    pg = PrivatePostgres()
    pg.start()
    yield pg
    pg.remove()


class Workers:
    """Real `clipgate worker` processes, each in its own process group, logging to a file."""

    def __init__(self, tmp_path: Path, env: dict[str, str]) -> None:
        self.tmp = tmp_path
        self.env = env
        self.procs: list[subprocess.Popen] = []

    def start(self, name: str, *, pause: str | None = None, beat: bool = False,
              queues: str = "cpu,gpu") -> subprocess.Popen:
        env = dict(self.env)
        if pause:
            env["CLIPGATE_TEST_PAUSE"] = pause
            env["CLIPGATE_TEST_PAUSE_MARK"] = str(self.mark(name))
        log = open(self.tmp / f"worker-{name}.log", "wb")  # noqa: SIM115 - lives with the process
        cwd = self.tmp / f"worker-{name}"  # beat writes its schedule file here
        cwd.mkdir(exist_ok=True)
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.faults.paused_worker", "worker", "--queues", queues,
             "--concurrency", "1", *(["--beat"] if beat else [])],
            env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        proc.log = self.tmp / f"worker-{name}.log"  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def mark(self, name: str) -> Path:
        return self.tmp / f"paused-{name}"

    def wait_paused(self, name: str, proc: subprocess.Popen, timeout: float = 180) -> None:
        """Until the worker is inside the paused function (mid-task)."""
        def inside() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"worker {name} exited: {proc.log.read_text()[-3000:]}")
            return self.mark(name).exists()
        wait_for(inside, timeout=timeout, what=f"worker {name} to start the task")

    @staticmethod
    def kill(proc: subprocess.Popen) -> None:
        """SIGKILL the worker and its pool processes at once, as an OOM kill or a lost host."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=30)


@pytest.fixture
def fault_settings(settings: Settings, private_redis: PrivateRedis, monkeypatch
                   ) -> Iterator[Settings]:
    """The test's settings with the private Redis as broker and short leases and sweeps; the
    environment says the same, for the workers and for the API."""
    s = settings.model_copy(update={"broker_url": private_redis.url,
                                    "result_backend": private_redis.url, **FAST})
    env = {"DATA_DIR": str(s.data_dir), "DATABASE_URL": s.database_url,
           "BROKER_URL": private_redis.url, "RESULT_BACKEND": private_redis.url,
           **{k.upper(): str(v) for k, v in FAST.items()}}
    for k, v in env.items():
        monkeypatch.setenv(f"CLIPGATE_{k}", v)
    get_settings.cache_clear()
    yield s
    get_settings.cache_clear()


@pytest.fixture
def workers(tmp_path: Path, fault_settings: Settings) -> Iterator[Workers]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "CLIPGATE_LOG_LEVEL": "INFO"}
    w = Workers(tmp_path, env)
    yield w
    w.stop_all()

"""Generation jobs on a real Celery worker over the machine's Redis: generated from the `gpu`
queue, gated and signed from the `cpu` queue (or on the same worker), state kept in PostgreSQL;
jobs of killed workers, and queued jobs whose message was lost, are recovered by the sweep."""

from __future__ import annotations

import time

import pytest
import redis
from celery.contrib.testing.worker import start_worker

from clipgate import db, queue, tasks
from clipgate.settings import get_settings
from generator import admission, jobs, tenants, worker
from tests.conftest import REDIS_URL, flush_test_redis


@pytest.fixture
def broker_env(settings, monkeypatch):
    flush_test_redis()
    # The worker reads its settings from the environment, as `clipgate worker` does.
    for k, v in {"DATA_DIR": str(settings.data_dir), "DATABASE_URL": settings.database_url,
                 "BROKER_URL": REDIS_URL, "RESULT_BACKEND": REDIS_URL}.items():
        monkeypatch.setenv(f"CLIPGATE_{k}", v)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def _admitted(s, prompt: str, **params) -> dict:
    """A job admitted for a fresh pro tenant (its message sent, unless the caller holds it)."""
    tenants.create_tenant("acme", tier="pro", credits_gpu_s=60, settings=s)
    return admission.admit(tenant="acme", user="u", idempotency_key="k", prompt=prompt,
                           params=params, settings=s).job


def _age(s, job_id: str, seconds: float) -> None:
    with db.connection(s) as conn:
        conn.execute("UPDATE generation_jobs SET updated_at = now() - make_interval(secs => %s) "
                     "WHERE id = %s", (seconds, job_id))


def _wait_done(job_id: str, settings, timeout: float = 180.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = jobs.get_job(job_id, settings=settings)
        if job["state"] in jobs.TERMINAL:
            return job
        time.sleep(0.3)
    raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s")


@pytest.mark.parametrize("gate_queue", ["cpu", "gpu"])
def test_job_runs_on_gpu_queue_and_is_gated_on_the_configured_queue(broker_env, monkeypatch,
                                                                     gate_queue):
    monkeypatch.setenv("CLIPGATE_GATE_QUEUE", gate_queue)
    get_settings.cache_clear()
    s = get_settings()
    job = _admitted(s, "slow clouds over a green valley", seconds=2.0, width=320, height=180,
                    fps=12)
    # A fresh app: a worker started with queues=[...] narrows its app's queues for good.
    app = tasks.make_celery(s)
    # A worker listening on one queue only: the job must travel gpu -> cpu when gating is on cpu.
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30,
                      queues=["gpu"]):
        assert worker.dispatch(str(job["id"]), s)
        if gate_queue == "cpu":
            deadline = time.monotonic() + 120
            while jobs.get_job(str(job["id"]), settings=s)["progress"] < 0.85:
                assert time.monotonic() < deadline
                time.sleep(0.3)
            time.sleep(1.0)
            waiting = jobs.get_job(str(job["id"]), settings=s)
            assert waiting["state"] == "gating" and waiting["lease_until"] is None
        else:
            done = _wait_done(str(job["id"]), s)
    if gate_queue == "cpu":
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30,
                          queues=["cpu"]):
            done = _wait_done(str(job["id"]), s)
    assert done["state"] == "released", done["error"]
    assert done["attempts"] == 1 and done["release_id"] and done["check_id"]


def test_unreachable_broker_leaves_no_queued_job(settings):
    s = settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    tenants.create_tenant("acme", tier="pro", credits_gpu_s=60, settings=s)
    job = admission.admit(tenant="acme", user="u", idempotency_key="k", prompt="a lake",
                          settings=s).job
    from clipgate.errors import Unavailable

    with pytest.raises(Unavailable, match="unreachable"):
        worker.dispatch(str(job["id"]), s)
    from clipgate.errors import NotFound

    with pytest.raises(NotFound):
        jobs.get_job(str(job["id"]), settings=s)


def test_killed_worker_job_is_recovered_and_finished_once(broker_env, monkeypatch):
    """SIGKILL a real `clipgate worker` process mid-generation: the sweep puts the job back in
    the queue when its lease runs out, another worker finishes it, and it is released once."""
    import os
    import signal
    import subprocess
    import sys

    monkeypatch.setenv("CLIPGATE_JOB_LEASE_S", "3")
    monkeypatch.setenv("CLIPGATE_GATE_QUEUE", "gpu")
    get_settings.cache_clear()
    s = get_settings()
    job = _admitted(s, "a long slow pan over snowy mountains", seconds=40.0, width=640,
                    height=360, fps=24)
    job_id = str(job["id"])
    proc = subprocess.Popen(
        [sys.executable, "-c", "from clipgate.cli import main; main()", "worker", "--queues",
         "gpu", "--concurrency", "1"], env=dict(os.environ), start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert worker.dispatch(job_id, s)
        deadline = time.monotonic() + 120
        while jobs.get_job(job_id, settings=s)["state"] != "generating":
            assert time.monotonic() < deadline and proc.poll() is None, "worker never started it"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    dead = jobs.get_job(job_id, settings=s)
    assert dead["state"] == "generating" and dead["attempts"] == 1
    # lease still running
    assert worker.celery_recover(s) == {"requeued": 0, "failed": 0, "resent": 0}
    time.sleep(3.5)
    assert worker.celery_recover(s) == {"requeued": 1, "failed": 0, "resent": 0}
    assert "worker lost during generating" in jobs.get_job(job_id, settings=s)["error"]
    # A fresh app: a worker started with queues=[...] narrows its app's queues for good.
    app = tasks.make_celery(s)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30,
                      queues=["gpu"]):
        done = _wait_done(job_id, s)
    assert done["state"] == "released" and done["attempts"] == 2 and done["error"] is None
    with db.connection(s) as conn:
        n = conn.execute("SELECT count(*) AS n FROM releases r JOIN checks c ON c.id = r.check_id "
                         "WHERE r.id = %s", (done["release_id"],)).fetchone()["n"]
        charged = conn.execute("SELECT count(*) AS n FROM usage_ledger WHERE job_id = %s "
                               "AND kind = 'generation'", (job_id,)).fetchone()["n"]
    assert n == 1 and charged == 1


def _gpu_messages() -> int:
    """Messages waiting in the broker's `gpu` queue (priority 0, as send_generation sends)."""
    return redis.Redis.from_url(REDIS_URL).llen(queue.GPU_QUEUE)


def test_queued_job_whose_message_was_lost_is_sent_again_and_runs_once(broker_env, monkeypatch):
    monkeypatch.setenv("CLIPGATE_GATE_QUEUE", "gpu")
    get_settings.cache_clear()
    s = get_settings()
    # Admitted and committed, but its message never reached the broker (crash before publish).
    job = _admitted(s, "a quiet lake", seconds=1.0, width=160, height=90, fps=8)
    job_id = str(job["id"])
    assert _gpu_messages() == 0
    assert worker.celery_recover(s) == {"requeued": 0, "failed": 0, "resent": 0}  # not due yet
    _age(s, job_id, s.job_requeue_after_s + 60)
    assert worker.celery_recover(s) == {"requeued": 0, "failed": 0, "resent": 1}
    assert _gpu_messages() == 1
    assert worker.celery_recover(s) == {"requeued": 0, "failed": 0, "resent": 0}  # same period
    assert _gpu_messages() == 1
    # Due again a period later, but its message now waits in the broker: no spare is sent.
    _age(s, job_id, s.job_requeue_after_s + 60)
    assert worker.celery_recover(s) == {"requeued": 0, "failed": 0, "resent": 0}
    assert _gpu_messages() == 1
    # Say the first message was not lost after all: two messages for one job run it once.
    worker.send_generation(job_id, s)
    app = tasks.make_celery(s)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30,
                      queues=["gpu"]):
        done = _wait_done(job_id, s)
        deadline = time.monotonic() + 30
        while _gpu_messages() and time.monotonic() < deadline:  # the spare one is consumed too
            time.sleep(0.2)
    assert done["state"] == "released" and done["attempts"] == 1 and done["error"] is None
    with db.connection(s) as conn:
        n = conn.execute("SELECT count(*) AS n FROM releases").fetchone()["n"]
    assert n == 1 and jobs.get_job(job_id, settings=s)["state"] == "released"

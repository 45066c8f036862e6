"""Resuming generation jobs left behind without a broker (the embedded default), on the real
PostgreSQL, gate and signer: a job left queued, or left running by a dead process whose lease ran
out, is run to its end (or failed with the reason when out of attempts) by the API's resume loop
or `clipgate jobs resume`; nothing is run twice; the loop stops at shutdown."""

from __future__ import annotations

import json
import threading
import time

import pytest
from fastapi.testclient import TestClient

from clipgate import apikeys, db
from clipgate.app import create_app
from generator import admission, jobs, resume, tenants, worker
from tests.conftest import REDIS_URL, flush_test_redis

SMALL = {"seconds": 1.0, "width": 128, "height": 72, "fps": 8}
TIMEOUT_S = 180.0


def _queued(s, key: str, tenant: str = "p") -> dict:
    """A job admitted and left queued, as by a process that died before running it."""
    if not any(t["name"] == tenant for t in tenants.list_tenants(s)):
        tenants.create_tenant(tenant, tier="enterprise", credits_gpu_s=1000, settings=s)
    return admission.admit(tenant=tenant, user="u", idempotency_key=key, prompt="a quiet lake",
                           params=SMALL, settings=s).job


def _left_generating(s, key: str, *, attempts: int = 1, lease_in_s: float = -1.0) -> dict:
    """A job claimed by a worker that then died while generating; its lease runs out (or ran
    out) lease_in_s from now."""
    job = jobs.claim(s, job_id=str(_queued(s, key)["id"]), worker="dead:1")
    with db.connection(s) as conn:
        return conn.execute(
            "UPDATE generation_jobs SET state = 'generating', attempts = %s, "
            "lease_until = now() + make_interval(secs => %s) WHERE id = %s RETURNING *",
            (attempts, lease_in_s, job["id"])).fetchone()


def _state(s, job) -> dict:
    return jobs.get_job(str(job["id"]), settings=s)


def _releases(s, job) -> int:
    with db.connection(s) as conn:
        return conn.execute("SELECT count(*) AS n FROM releases WHERE generator->>'job_id' = %s",
                            (str(job["id"]),)).fetchone()["n"]


def _wait_until(check, timeout: float = TIMEOUT_S, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if out := check():
            return out
        time.sleep(0.1)
    raise AssertionError(f"{what} not met after {timeout} s")


def _wait_done(s, job) -> dict:
    return _wait_until(lambda: (j := _state(s, job))["state"] in jobs.TERMINAL and j,
                       what=f"job {job['id']} terminal")


def test_a_job_left_queued_is_run_to_its_end_by_the_loop(settings):
    job = _queued(settings, "left")
    loop = resume.start_loop(settings)
    try:
        done = _wait_done(settings, job)
    finally:
        assert loop.stop(timeout=TIMEOUT_S)
    assert done["state"] == "released" and done["attempts"] == 1
    assert _releases(settings, job) == 1 and not loop.alive


def test_a_job_left_generating_is_requeued_and_completed(settings):
    job = _left_generating(settings, "dead")
    out = resume.resume_once(settings)
    assert (out.requeued, out.failed) == (1, 0)
    assert [str(j["id"]) for j in out.ran] == [str(job["id"])]
    done = _state(settings, job)
    assert done["state"] == "released" and done["attempts"] == 2 and done["error"] is None
    assert done["worker"] != "dead:1" and _releases(settings, job) == 1


def test_a_job_out_of_attempts_is_failed_with_the_reason(settings):
    job = _left_generating(settings, "spent", attempts=settings.job_max_attempts)
    out = resume.resume_once(settings)
    assert (out.requeued, out.failed, out.ran) == (0, 1, [])
    failed = _state(settings, job)
    assert failed["state"] == "failed" and failed["finished_at"] is not None
    assert failed["error"] == (f"worker lost during generating on attempt "
                               f"{settings.job_max_attempts} of {settings.job_max_attempts}; "
                               "not retried again")


def test_terminal_and_held_jobs_are_left_alone(settings):
    finished = _queued(settings, "finished")
    with db.connection(settings) as conn:
        conn.execute("UPDATE generation_jobs SET state = 'blocked', finished_at = now() "
                     "WHERE id = %s", (finished["id"],))
    before = _state(settings, finished)
    # A live lease: its request's thread (or another process) is running it right now.
    held = _left_generating(settings, "held", lease_in_s=settings.job_lease_s)
    out = resume.resume_once(settings)
    assert (out.requeued, out.failed, out.ran) == (0, 0, [])
    assert _state(settings, finished) == before
    after = _state(settings, held)
    assert (after["state"], after["fence"], after["attempts"], after["worker"]) == (
        "generating", held["fence"], 1, "dead:1")


def test_the_loop_and_the_request_thread_run_a_job_once(settings):
    """The request's background task (run_inprocess) and the loop race for one queued job."""
    job = _queued(settings, "race")
    start = threading.Barrier(2)
    results: dict = {}

    def request_thread() -> None:
        start.wait()
        results["request"] = worker.run_inprocess(str(job["id"]), settings)

    def loop_pass() -> None:
        start.wait()
        results["loop"] = resume.run_queued(settings)

    threads = [threading.Thread(target=request_thread), threading.Thread(target=loop_pass)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT_S)
    # Whichever claimed it ran it; the other found it claimed and left it.
    assert str(results["request"]["id"]) == str(job["id"]) and len(results["loop"]) <= 1
    done = _state(settings, job)
    assert done["state"] == "released" and done["attempts"] == 1
    assert _releases(settings, job) == 1


def test_the_loop_wakes_when_a_lease_runs_out(settings):
    """A job whose lease is still live at start-up is not touched; the loop wakes just after
    that lease runs out (not a whole lease period later), requeues the job and runs it."""
    job = _left_generating(settings, "late", lease_in_s=1.0)
    assert 0.5 <= resume.next_wake_s(settings) <= 1.2
    loop = resume.start_loop(settings)  # job_lease_s is 300: only the wake-up finds it in time
    try:
        done = _wait_done(settings, job)
    finally:
        assert loop.stop(timeout=TIMEOUT_S)
    assert done["state"] == "released" and done["attempts"] == 2
    assert _releases(settings, job) == 1


def test_stop_ends_an_idle_loop_at_once(settings):
    loop = resume.start_loop(settings)  # nothing to do: waits a whole lease period
    time.sleep(0.2)
    t0 = time.monotonic()
    assert loop.stop(timeout=5.0) and time.monotonic() - t0 < 2.0
    assert not loop.alive


def test_stop_waits_for_the_running_job_and_starts_no_other(settings, monkeypatch):
    first, second = _queued(settings, "first"), _queued(settings, "second")
    started, go_on = threading.Event(), threading.Event()
    real = worker.run_claimed

    def held_run(job, s, **kw):
        started.set()
        go_on.wait(TIMEOUT_S)
        return real(job, s, **kw)

    monkeypatch.setattr(worker, "run_claimed", held_run)
    loop = resume.start_loop(settings)
    assert started.wait(TIMEOUT_S)
    stopped: list[bool] = []
    stopper = threading.Thread(target=lambda: stopped.append(loop.stop()))
    stopper.start()
    stopper.join(0.5)
    assert stopper.is_alive() and loop.alive  # shutdown waits for the job being run
    go_on.set()
    stopper.join(TIMEOUT_S)
    assert stopped == [True] and not loop.alive
    states = {str(j["id"]): _state(settings, j) for j in (first, second)}
    ran = [j for j in states.values() if j["state"] in jobs.TERMINAL]
    left = [j for j in states.values() if j["state"] == "queued"]
    assert len(ran) == 1 and ran[0]["state"] == "released"
    assert len(left) == 1 and left[0]["attempts"] == 0  # not started after the stop


def test_serve_resumes_left_jobs_and_stops_at_shutdown(settings):
    key = apikeys.create_key("gen", settings=settings)[1]
    left = _queued(settings, "left")
    with TestClient(create_app(settings), headers={"X-API-Key": key}) as c:
        assert c.app.state.resume_loop is None  # tests and embedders: no loop unless asked
    assert _state(settings, left)["state"] == "queued"
    app = create_app(settings, resume_jobs=True)  # as `clipgate serve` builds it
    with TestClient(app, headers={"X-API-Key": key}) as c:
        loop = app.state.resume_loop
        assert loop is not None and loop.alive
        done = _wait_done(settings, left)
        r = c.post("/v1/generations", json={"prompt": "a lake at dawn", "tenant": "p",
                                            "user": "u", "idempotency_key": "new", **SMALL})
        assert r.status_code == 202, r.text
        new = _wait_done(settings, r.json())
    assert not loop.alive
    assert done["state"] == "released" and done["attempts"] == 1
    assert new["state"] == "released" and new["attempts"] == 1
    assert _releases(settings, left) == 1 and _releases(settings, new) == 1


def test_broker_configured_loop_does_not_start(settings):
    assert resume.start_loop(settings.model_copy(update={"broker_url": REDIS_URL})) is None


def test_cli_resume_runs_left_jobs_here(cli, settings):
    queued = _queued(settings, "queued")
    dead = _left_generating(settings, "dead")
    r = cli("jobs", "resume")
    assert r.exit_code == 0, r.output
    assert "1 requeued, 0 failed" in r.output and "2 attempt(s) run here" in r.output
    assert f"RELEASED  job {queued['id']}" in r.output and f"RELEASED  job {dead['id']}" in r.output
    assert _state(settings, queued)["attempts"] == 1 and _state(settings, dead)["attempts"] == 2
    r = cli("jobs", "resume", "--json")  # nothing left: nothing run again
    out = json.loads(r.output)
    assert r.exit_code == 0 and out["mode"] == "in-process"
    assert (out["requeued"], out["failed"], out["ran"]) == (0, 0, [])
    assert _releases(settings, queued) == 1 and _releases(settings, dead) == 1


@pytest.fixture
def test_redis():
    flush_test_redis()
    yield
    flush_test_redis()


def test_cli_resume_with_a_broker_only_runs_the_recovery_sweep(cli, settings, monkeypatch,
                                                               test_redis):
    dead = _left_generating(settings, "dead")
    monkeypatch.setenv("CLIPGATE_BROKER_URL", REDIS_URL)
    monkeypatch.setenv("CLIPGATE_RESULT_BACKEND", REDIS_URL)
    r = cli("jobs", "resume")
    assert r.exit_code == 0, r.output
    assert "a broker is configured" in r.output and "requeued 1, failed 0" in r.output
    job = _state(settings, dead)
    assert job["state"] == "queued" and job["attempts"] == 1  # left to the workers

"""The generation job's fencing, lease and release idempotency on the real PostgreSQL, the real
gate and signer: a job is released at most once, even when gating is taken over, outlives its
lease, or fails after the release was made, or two workers race to release it (the database
keeps one release per job); a job whose gating message was lost is recovered; a queued job is
claimed once only; and the error a client sees names no server paths."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

import compliance
import compliance.release
from clipgate import db
from clipgate.errors import Unavailable
from generator import admission, jobs, tenants, worker

SMALL = {"seconds": 1.0, "width": 128, "height": 72, "fps": 8}


def _handed_over(s, key: str = "a") -> dict:
    """A job generated for real and handed over to gating (state gating, no lease)."""
    if not any(t["name"] == "p" for t in tenants.list_tenants(s)):
        tenants.create_tenant("p", tier="enterprise", credits_gpu_s=1000, settings=s)
    job = admission.admit(tenant="p", user="u", idempotency_key=key,
                          prompt="drifting clouds over a green valley", params=SMALL,
                          settings=s).job
    sent: list[str] = []
    out = worker.run_next(s, job_id=str(job["id"]), hand_over=sent.append)
    assert out["state"] == "gating" and out["lease_until"] is None and sent == [str(job["id"])]
    return out


def _releases(s) -> int:
    with db.connection(s) as conn:
        return conn.execute("SELECT count(*) AS n FROM releases").fetchone()["n"]


def test_gating_takeover_fences_out_the_old_gating_worker(settings):
    s = settings.model_copy(update={"job_lease_s": 0.5})
    job = _handed_over(s)
    old = jobs.claim_gate(s, str(job["id"]))
    assert jobs.claim_gate(s, str(job["id"])) is None  # held
    time.sleep(0.8)
    new = jobs.claim_gate(s, str(job["id"]))  # the lease ran out: another worker takes it
    assert new is not None and new["fence"] > old["fence"]
    assert new["attempts"] == old["attempts"] == 1  # a gating takeover spends no retry
    with pytest.raises(jobs.LeaseLost):
        jobs.update(s, old, progress=0.9)  # the old worker can no longer write
    jobs.update(s, new, progress=0.9)


def test_lease_is_renewed_while_the_clip_is_released(settings, monkeypatch):
    s = settings.model_copy(update={"job_lease_s": 0.6})
    job = _handed_over(s)
    real = compliance.release_clip
    takeovers: list = []

    def slow_release(*args, **kwargs):
        time.sleep(1.5)  # longer than the lease: only renewal keeps other workers out
        takeovers.append(jobs.claim_gate(s, str(job["id"])))
        with db.connection(s) as conn:
            takeovers.append(jobs.recover_stale(conn, s))
        return real(*args, **kwargs)

    monkeypatch.setattr(compliance, "release_clip", slow_release)
    done = worker.run_gate(str(job["id"]), s)
    assert takeovers == [None, []]
    assert done["state"] == "released" and _releases(s) == 1


def test_failure_after_the_release_does_not_release_twice(settings, monkeypatch):
    job = _handed_over(settings)
    real_update = jobs.update
    failed: list = []

    def update_failing_once(st, j, *, state=None, **kw):
        if state == "released" and not failed:  # the database blinks right after the release
            failed.append(j["id"])
            raise Unavailable("the database is unreachable")
        return real_update(st, j, state=state, **kw)

    monkeypatch.setattr(jobs, "update", update_failing_once)
    done = worker.run_gate(str(job["id"]), settings)
    assert failed and done["state"] == "released" and done["attempts"] == 1
    assert _releases(settings) == 1
    with db.connection(settings) as conn:
        rel = conn.execute("SELECT id, check_id, generator FROM releases").fetchone()
    assert done["release_id"] == rel["id"] and done["check_id"] == rel["check_id"]
    assert rel["generator"]["job_id"] == str(job["id"])
    # A later retry of the same job (e.g. a redelivered message) reuses the release too.
    with db.connection(settings) as conn:
        conn.execute("UPDATE generation_jobs SET state = 'queued', release_id = NULL, "
                     "finished_at = NULL WHERE id = %s", (job["id"],))
    again = worker.run_inprocess(str(job["id"]), settings)
    assert again["state"] == "released" and again["release_id"] == rel["id"]
    assert _releases(settings) == 1


def test_gating_job_whose_message_was_lost_is_recovered(settings):
    s = settings.model_copy(update={"job_lease_s": 60.0})
    lost = _handed_over(s, "lost")
    fresh = _handed_over(s, "fresh")
    with db.connection(s) as conn:
        conn.execute("UPDATE generation_jobs SET updated_at = now() - interval '2 minutes' "
                     "WHERE id = %s", (lost["id"],))
    changed = jobs.recover(s)
    assert [(c["id"], c["state"]) for c in changed] == [(lost["id"], "queued")]
    assert "worker lost during gating" in changed[0]["error"]
    assert jobs.get_job(str(fresh["id"]), settings=s)["state"] == "gating"  # still waiting
    done = worker.run_inprocess(str(lost["id"]), s)
    assert done["state"] == "released" and done["attempts"] == 2


def test_client_error_names_no_server_paths(settings):
    job = _handed_over(settings)
    worker.clip_path(settings, job["id"]).unlink()  # the staged clip vanished from the disk
    done = worker.run_gate(str(job["id"]), settings)
    assert done["state"] == "queued" and "missing" in done["error"]
    assert str(settings.data_dir) not in done["error"] and "/" not in done["error"]
    with pytest.raises(OSError) as e:
        (settings.data_dir / "nowhere" / "x.mp4").read_bytes()
    reason = worker.client_reason(e.value)
    assert reason.startswith("FileNotFoundError: ") and "No such file" in reason
    assert str(settings.data_dir) not in reason and "x.mp4" not in reason


def _release_store(s) -> list:
    """Every file in the release store, its staging folder included."""
    return sorted(p for p in s.release_dir.rglob("*") if p.is_file())


def test_worker_whose_lease_lapsed_mid_release_loses_to_the_new_owner(settings, monkeypatch):
    job = _handed_over(settings)
    real_check = compliance.release.check_clip
    taken_over: list = []

    def check_then_takeover(*args, **kwargs):
        if not taken_over:  # our lease lapses while the clip is checked; another worker gates it
            taken_over.append("taking over")
            with db.connection(settings) as conn:
                conn.execute("UPDATE generation_jobs SET lease_until = now() - interval '1 s' "
                             "WHERE id = %s", (job["id"],))
            taken_over.append(worker.run_gate(str(job["id"]), settings))
        return real_check(*args, **kwargs)

    monkeypatch.setattr(compliance.release, "check_clip", check_then_takeover)
    done = worker.run_gate(str(job["id"]), settings)  # both passed release_of; both signed
    winner = taken_over[1]
    assert winner["state"] == "released" and winner["fence"] > job["fence"]
    assert done["state"] == "released" and done["release_id"] == winner["release_id"]
    assert _releases(settings) == 1
    with db.connection(settings) as conn:
        rel = conn.execute("SELECT id, path FROM releases").fetchone()
    assert rel["id"] == winner["release_id"]
    # The loser's signed file went with its rolled-back row: nothing but the one release is left.
    assert _release_store(settings) == [Path(rel["path"])]


def test_lease_holder_that_loses_the_insert_records_the_release_that_won(settings, tmp_path,
                                                                         monkeypatch):
    job = _handed_over(settings)
    real_check = compliance.release.check_clip
    stale: list = []

    def late_release_lands_first(*args, **kwargs):
        if not stale:  # a worker whose lease lapsed earlier commits its release after our check
            stale.append("releasing")
            copy = shutil.copy(job["clip_path"], tmp_path / "stale.mp4")
            stale.append(compliance.release_clip(
                copy, generator={"model": "m", "version": "1", "job_id": str(job["id"])},
                source="generation", settings=settings))
        return real_check(*args, **kwargs)

    monkeypatch.setattr(compliance.release, "check_clip", late_release_lands_first)
    done = worker.run_gate(str(job["id"]), settings)
    won = stale[1].release
    assert won is not None
    assert done["state"] == "released" and done["release_id"] == won["id"]
    assert done["error"] is None and done["attempts"] == 1
    assert done["check_id"] == won["check_id"]
    assert _releases(settings) == 1
    assert _release_store(settings) == [Path(won["path"])]
    assert not worker.clip_path(settings, job["id"]).exists()  # the staged clip is cleaned up


def test_a_queued_job_is_claimed_once(settings):
    tenants.create_tenant("p", tier="enterprise", credits_gpu_s=1000, settings=settings)
    job = admission.admit(tenant="p", user="u", idempotency_key="once", prompt="a quiet lake",
                          params=SMALL, settings=settings).job
    got: list = []
    start = threading.Barrier(4)

    def claim() -> None:
        start.wait()
        got.append(jobs.claim(settings, job_id=str(job["id"])))

    threads = [threading.Thread(target=claim) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    claimed = [j for j in got if j is not None]
    assert len(got) == 4 and len(claimed) == 1  # duplicate messages are no-ops
    assert claimed[0]["state"] == "screening" and claimed[0]["attempts"] == 1
    assert jobs.claim(settings, job_id=str(job["id"])) is None


def _queued(s, key: str) -> dict:
    if not any(t["name"] == "p" for t in tenants.list_tenants(s)):
        tenants.create_tenant("p", tier="enterprise", credits_gpu_s=1000, settings=s)
    return admission.admit(tenant="p", user="u", idempotency_key=key, prompt="a quiet lake",
                           params=SMALL, settings=s).job


def _age(s, job_id, seconds: float) -> None:
    with db.connection(s) as conn:
        conn.execute("UPDATE generation_jobs SET updated_at = now() - make_interval(secs => %s) "
                     "WHERE id = %s", (seconds, job_id))


def test_resend_that_fails_leaves_the_jobs_due_for_the_next_sweep(settings):
    a, b, fresh = _queued(settings, "a"), _queued(settings, "b"), _queued(settings, "fresh")
    for j in (a, b):
        _age(settings, j["id"], settings.job_requeue_after_s + 60)

    def broker_down(job_id: str) -> None:
        raise Unavailable("the task queue is unreachable")

    with pytest.raises(Unavailable):
        jobs.resend_due(settings, broker_down, limit=10)
    sent: list[str] = []
    got = jobs.resend_due(settings, sent.append, limit=10)
    assert sorted(got) == sorted([str(a["id"]), str(b["id"])])
    assert sorted(sent) == sorted([str(a["id"]), str(b["id"])])  # the fresh job is not due
    assert jobs.resend_due(settings, sent.append, limit=10) == []  # at most once per period


def test_resend_sends_no_more_than_the_broker_lacks(settings):
    """A backlog whose messages are all waiting gets no spares; one lost message, one resend,
    the oldest job's."""
    old, older = _queued(settings, "old"), _queued(settings, "older")
    _age(settings, old["id"], settings.job_requeue_after_s + 60)
    _age(settings, older["id"], settings.job_requeue_after_s + 120)
    sent: list[str] = []
    assert jobs.resend_due(settings, sent.append, limit=0) == [] and sent == []
    assert jobs.resend_due(settings, sent.append, limit=1) == [str(older["id"])]
    assert jobs.queued_count(settings) == 2


def test_recovery_without_a_broker_sends_nothing_and_the_job_still_runs(settings):
    job = _queued(settings, "embedded")
    _age(settings, job["id"], settings.job_requeue_after_s + 60)
    before = jobs.get_job(str(job["id"]), settings=settings)["updated_at"]
    assert worker.celery_recover(settings) == {"requeued": 0, "failed": 0, "resent": 0}
    after = jobs.get_job(str(job["id"]), settings=settings)
    assert after["state"] == "queued" and after["updated_at"] == before
    done = worker.run_inprocess(str(job["id"]), settings)
    assert done["state"] == "released" and done["attempts"] == 1

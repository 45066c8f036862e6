"""The generation job's fencing, lease and release idempotency on the real PostgreSQL, the real
gate and signer: a job is released at most once, even when gating is taken over, outlives its
lease, or fails after the release was made; a job whose gating message was lost is recovered; and
the error a client sees names no server paths."""

from __future__ import annotations

import time

import pytest

import compliance
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

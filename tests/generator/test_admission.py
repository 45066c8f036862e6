"""Admission under load and the job state machine, on the real PostgreSQL: queue capacity and
Retry-After, paid tiers ahead of free ones, the concurrent-jobs limit, and a dead worker's job
retried or failed, never lost."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from clipgate import apikeys, db
from clipgate.app import create_app
from generator import admission, jobs, tenants, worker


@pytest.fixture
def loaded(settings):
    """Settings declaring room for 4 queued jobs; free tiers may fill half of it."""
    return settings.model_copy(update={"generation_queue_capacity": 4,
                                       "free_tier_queue_share": 0.5,
                                       "generation_estimate_s": 30.0, "gpu_workers": 2})


def _admit(settings, tenant: str, key: str, prompt: str = "a lake at dawn"):
    return admission.admit(tenant=tenant, user="u", idempotency_key=key, prompt=prompt,
                           params={"seconds": 1.0, "width": 128, "height": 72, "fps": 8},
                           settings=settings)


def test_full_queue_refuses_free_first_then_paid_with_retry_after(loaded):
    for name in ("f1", "f2", "f3"):
        tenants.create_tenant(name, tier="free", credits_gpu_s=1000, settings=loaded)
    tenants.create_tenant("p", tier="pro", credits_gpu_s=1000, settings=loaded)
    _admit(loaded, "f1", "a")
    _admit(loaded, "f2", "a")
    with pytest.raises(admission.Overloaded) as e:
        _admit(loaded, "f3", "a")  # free share (2 of 4) is full
    assert e.value.retry_after == 15 and "queue is full" in str(e.value)
    _admit(loaded, "p", "a")  # a paid tier still gets in
    _admit(loaded, "p", "b")
    with pytest.raises(admission.Overloaded) as e:
        _admit(loaded, "p", "c")  # now the whole queue is full
    assert e.value.retry_after == 15
    with db.connection(loaded) as conn:
        assert conn.execute("SELECT count(*) AS n FROM generation_jobs").fetchone()["n"] == 4


def test_concurrent_jobs_limit_per_tier(loaded):
    tenants.create_tenant("f", tier="free", credits_gpu_s=1000, settings=loaded)
    _admit(loaded, "f", "a")
    with pytest.raises(admission.Overloaded) as e:
        _admit(loaded, "f", "b")
    assert "1 jobs in progress" in str(e.value) and e.value.retry_after == 30
    # Once the first is done, the next one is admitted.
    with db.connection(loaded) as conn:
        conn.execute("UPDATE generation_jobs SET state = 'released'")
    assert _admit(loaded, "f", "b").created


def test_http_429_carries_retry_after(loaded):
    key = apikeys.create_key("gen", settings=loaded)[1]
    tenants.create_tenant("f", tier="free", credits_gpu_s=1000, settings=loaded)
    _admit(loaded, "f", "first")
    with TestClient(create_app(loaded), headers={"X-API-Key": key}) as c:
        r = c.post("/v1/generations", json={"prompt": "a lake", "tenant": "f", "user": "u"},
                   headers={"Idempotency-Key": "second"})
    assert r.status_code == 429 and r.headers["retry-after"] == "30"
    assert r.json()["retry_after_s"] == 30 and "in progress" in r.json()["detail"]


def test_paid_jobs_are_claimed_before_older_free_ones(loaded):
    tenants.create_tenant("f", tier="free", credits_gpu_s=1000, settings=loaded)
    tenants.create_tenant("e", tier="enterprise", credits_gpu_s=1000, settings=loaded)
    tenants.create_tenant("p", tier="pro", credits_gpu_s=1000, settings=loaded)
    free = _admit(loaded, "f", "a").job
    pro = _admit(loaded, "p", "a").job
    ent = _admit(loaded, "e", "a").job
    order = [jobs.claim(loaded)["id"] for _ in range(3)]
    assert order == [ent["id"], pro["id"], free["id"]]
    assert jobs.claim(loaded) is None


def test_dead_workers_job_is_retried_then_failed_with_the_reason(settings):
    s = settings.model_copy(update={"job_lease_s": 0.5, "job_max_attempts": 2})
    tenants.create_tenant("p", tier="pro", credits_gpu_s=1000, settings=s)
    job = _admit(s, "p", "a").job
    first = jobs.claim(s)  # a worker takes it ... and dies without a word
    assert first["state"] == "screening" and first["attempts"] == 1
    jobs.update(s, first, state="generating")
    time.sleep(0.8)
    second = jobs.claim(s)  # the lease ran out: back in the queue and taken again
    assert second["id"] == job["id"] and second["attempts"] == 2
    with pytest.raises(jobs.LeaseLost):
        jobs.update(s, first, progress=0.5)  # the dead attempt can no longer write
    time.sleep(0.8)
    assert jobs.claim(s) is None  # out of attempts: failed, not retried
    failed = jobs.get_job(str(job["id"]), settings=s)
    assert failed["state"] == "failed" and failed["finished_at"] is not None
    assert "worker lost during screening on attempt 2 of 2" in failed["error"]
    assert failed["release_id"] is None


def test_recovered_job_runs_to_the_end_in_process(settings):
    s = settings.model_copy(update={"job_lease_s": 0.5})
    tenants.create_tenant("p", tier="pro", credits_gpu_s=1000, settings=s)
    job = _admit(s, "p", "a", prompt="drifting clouds over a green valley").job
    jobs.claim(s)  # dies
    time.sleep(0.8)
    done = worker.run_inprocess(str(job["id"]), s.model_copy(update={"job_lease_s": 300.0}))
    assert done["state"] == "released" and done["attempts"] == 2
    assert done["release_id"] is not None


def test_failing_generation_is_recorded_not_lost(settings):
    # A backend that cannot start (no model folder configured) fails the job with the reason.
    tenants.create_tenant("p", tier="pro", credits_gpu_s=1000, settings=settings)
    s = settings.model_copy(update={"job_max_attempts": 2})
    job = admission.admit(tenant="p", user="u", idempotency_key="a", prompt="a lake",
                          backend="diffusers", settings=s).job
    done = worker.run_inprocess(str(job["id"]), s)
    assert done["state"] == "failed" and done["attempts"] == 2
    assert "CLIPGATE_DIFFUSERS_MODEL_DIR" in done["error"]
    assert done["check_id"] is None and done["release_id"] is None


def test_unfinished_jobs_hold_back_credits_until_charged(settings):
    """A crumb of credit cannot start many jobs at once: each unfinished job holds back one
    estimate (generation_estimate_s) until its real GPU-seconds are charged to the ledger."""
    s = settings.model_copy(update={"generation_estimate_s": 30.0})
    tenants.create_tenant("crumb", tier="enterprise", credits_gpu_s=0.01, settings=s)
    with pytest.raises(admission.PaymentRequired, match="needs 30.0 more"):
        _admit(s, "crumb", "a")
    tenants.create_tenant("p", tier="enterprise", credits_gpu_s=70, settings=s)
    first = _admit(s, "p", "a").job
    second = _admit(s, "p", "b").job
    with pytest.raises(admission.PaymentRequired, match="60.0 of them held for 2 unfinished") as e:
        _admit(s, "p", "c")  # 70 - 2 x 30 leaves less than one more job's estimate
    assert e.value.status == 402
    with db.connection(s) as conn:
        assert conn.execute("SELECT count(*) AS n FROM generation_jobs").fetchone()["n"] == 2
        # The first job ran and was charged what it really used: only the second holds credit.
        tenants.charge(conn, tenant_id=first["tenant_id"], job_id=first["id"],
                       kind="generation", gpu_seconds=2.0, wall_seconds=2.0)
    assert _admit(s, "p", "c").created  # 68 - 30 held for the second >= 30
    with db.connection(s) as conn:
        conn.execute("UPDATE generation_jobs SET state = 'failed' WHERE id = %s", (second["id"],))
    assert tenants.get_tenant("p", settings=s)["credits_gpu_s"] == 68  # the ledger is the truth

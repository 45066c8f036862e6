"""The generation job's state machine in PostgreSQL: claim, lease, advance, finish, recover.

queued -> screening -> generating -> gating -> released | blocked | in_review | failed
                                                in_review -> released | blocked  (a reviewer)

A worker claims a job (for generation, or for gating) by taking a lease and bumping `fence`;
every later write names the fence it got (a fencing token), so a worker whose lease was taken over
cannot write. `attempts` counts generation tries only, so a gating takeover spends no retry. A
lease that runs out (or a hand-over to gating whose message was lost) means its worker died: the
job goes back to the queue while it has attempts left, and is failed with the reason otherwise.
A job left queued long (its message lost on the way to the broker) is sent again (resend_due).
Nothing is released except through the gate.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import compliance
from clipgate import db, metrics
from clipgate.errors import NotFound
from clipgate.settings import Settings, get_settings
from generator import store

TERMINAL = ("released", "blocked", "failed")
RUNNING = ("screening", "generating", "gating")
# Held for a person: no worker holds it any more, and a reviewer's decision (or the review
# timeout) moves it on to released or blocked (follow_review).
AWAITING = ("in_review",)
SETTLED = (*TERMINAL, *AWAITING)  # no worker will change it
log = logging.getLogger(__name__)
VERDICT_STATE = {"release": "released", "block": "blocked", "review": "in_review"}


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def get_job(job_id: str, *, settings: Settings | None = None) -> dict[str, Any]:
    with db.connection(settings) as conn:
        row = store.get_job(conn, job_id=job_id)
        if row is None:
            raise NotFound(f"no generation job with id {job_id!r}")
        if row["screening_id"] is not None:
            row["screening"] = store.get_screening(conn, screening_id=row["screening_id"])
    if row["verdict"] == "review":  # its held clip, waiting or decided
        row["review"] = compliance.review_for_job(row["id"], settings=settings)
    return row


def recover_stale(conn, settings: Settings) -> list[dict[str, Any]]:
    """Jobs whose lease ran out (their worker died): back to the queue, or failed with the reason
    when their attempts are used up. Returns the changed rows."""
    # A job handed over to gating waits with no lease; if it waited a whole lease period its
    # message was lost (or no gating worker is alive), so it is recovered like an expired one.
    rows = store.stale_jobs(conn, states=list(RUNNING), lease_s=settings.job_lease_s)
    changed = []
    for r in rows:
        if r["attempts"] >= r["max_attempts"]:
            changed.append(store.fail_stale(
                conn, job_id=r["id"], error=f"worker lost during {r['state']} on attempt "
                f"{r['attempts']} of {r['max_attempts']}; not retried again"))
        else:
            changed.append(store.requeue_stale(
                conn, job_id=r["id"],
                error=f"worker lost during {r['state']} on attempt {r['attempts']}; retrying"))
    return changed


def recover(settings: Settings) -> list[dict[str, Any]]:
    """Run recover_stale on its own (the periodic sweep): returns the jobs requeued or failed."""
    with db.connection(settings) as conn:
        return recover_stale(conn, settings)


def queued_count(settings: Settings) -> int:
    with db.connection(settings) as conn:
        return store.queued_count(conn)


def resend_due(settings: Settings, send: Callable[[str], Any], *, limit: int) -> list[str]:
    """Send again (send(job_id)) up to `limit` of the jobs queued for over job_requeue_after_s
    since their last change, oldest first: their message may have been lost. Bumps updated_at
    first, so each job is sent at most once per period even with several sweeps at once.
    Returns the ids sent.

    A spare message is harmless (claim takes only `queued` jobs, atomically). The bump commits
    before sending: a worker quick on the new message must not find the row still locked. If
    sending fails, the unsent jobs are made due again for the next sweep and the error raised."""
    if limit <= 0:
        return []
    with db.connection(settings) as conn:
        due = store.touch_due(conn, after_s=settings.job_requeue_after_s, limit=limit)
    for i, job_id in enumerate(due):
        try:
            send(job_id)
        except BaseException:
            with db.connection(settings) as conn:
                store.make_due(conn, job_ids=due[i:], after_s=settings.job_requeue_after_s)
            raise
    return due


def claim(settings: Settings, *, job_id: str | None = None,
          worker: str | None = None) -> dict[str, Any] | None:
    """Take the next queued job (highest priority, then oldest), or job_id if it is queued, into
    `screening` with a fresh lease. None when there is nothing to take."""
    with db.connection(settings) as conn:
        recover_stale(conn, settings)
        queued = store.lock_queued(conn, job_id=job_id)
        if queued is None:
            return None
        return store.start_job(conn, job_id=queued, lease_s=settings.job_lease_s,
                               worker=worker or worker_name())


def claim_gate(settings: Settings, job_id: str, *, worker: str | None = None
               ) -> dict[str, Any] | None:
    """Take a job waiting in `gating` (handed over by a GPU worker, lease NULL, or one whose
    gating worker died) for gating. None when it is not waiting. Bumps the fence, so a gating
    worker whose lease ran out can no longer write to the job."""
    with db.connection(settings) as conn:
        return store.lease_gating(conn, job_id=job_id, lease_s=settings.job_lease_s,
                                  worker=worker or worker_name())


def next_lease_expiry_s(settings: Settings) -> float | None:
    """Seconds until the soonest running lease runs out (None when nothing is running)."""
    with db.connection(settings) as conn:
        s = store.next_lease_expiry_s(conn, states=list(RUNNING))
    return None if s is None else max(0.0, s)


class LeaseLost(Exception):
    """This worker's attempt no longer owns the job (its lease ran out and it was taken over)."""


def update(settings: Settings, job: dict[str, Any], *, state: str | None = None,
           renew: bool = True, **fields: Any) -> dict[str, Any]:
    """Write fields of a job this worker holds (same fence, still running); renew its lease.
    Raises LeaseLost otherwise."""
    terminal = state in SETTLED  # the worker lets go of the job: no lease, finished_at
    with db.connection(settings) as conn:
        row = store.update_held_job(
            conn, job_id=job["id"], fence=job["fence"], states=list(RUNNING), fields=fields,
            state=state, finish=terminal,
            lease_s=settings.job_lease_s if renew and not terminal else None)
    if row is None:
        raise LeaseLost(f"job {job['id']} (fence {job['fence']}) no longer holds its lease")
    return row


@contextmanager
def keep_lease(settings: Settings, job: dict[str, Any]) -> Iterator[threading.Event]:
    """Renew the job's lease every third of a lease period while the block runs (a long call
    such as gating cannot report progress itself). The event yielded is set if the lease was
    lost meanwhile; the caller must then not act on the job."""
    lost, stop = threading.Event(), threading.Event()
    every = max(0.05, settings.job_lease_s / 3)

    def beat() -> None:
        while not stop.wait(every):
            try:
                update(settings, job)
            except LeaseLost:
                lost.set()
                return
            except Exception as e:  # noqa: BLE001 - a DB blip: try the next beat; lease may hold
                log.warning("could not renew the lease of job %s: %s", job["id"], e)

    t = threading.Thread(target=beat, name=f"lease-{job['id']}", daemon=True)
    t.start()
    try:
        yield lost
    finally:
        stop.set()
        t.join()


def release_of(settings: Settings, job_id: Any) -> dict[str, Any] | None:
    """The release already made for this job (its id is signed into the release's generator
    facts), or None. Makes gating idempotent: a job is never released twice."""
    return compliance.release_for_job(job_id, settings=settings)


def follow_review(conn: Any, item: dict[str, Any], reviewer: Any) -> None:
    """A held clip was decided (compliance calls this in the decision's transaction): its job,
    if it has one in review, becomes released (with the release) or blocked (with the reason)."""
    job_id = (item.get("generator") or {}).get("job_id")
    if not job_id:
        return
    decision = item.get("decision") or {}
    state = "released" if item["state"] == "released" else "blocked"
    how = ("timed out in review" if decision.get("timeout")
           else f"blocked in review ({reviewer.role})")
    error = None if state == "released" else f"{how}: {decision.get('reason', '')}"
    row = store.settle_review(conn, job_id=job_id, state=state, release_id=item["release_id"],
                              error=error)
    if row is None:
        log.warning("held clip %s was decided, but job %s is not in review",
                    item["review_id"], job_id)


def public_job(job: dict[str, Any]) -> dict[str, Any]:
    """A job as JSON: state, progress, timings, usage, and the signed clip's links once released."""
    release_id = str(job["release_id"]) if job.get("release_id") else None
    screening = job.get("screening")
    out = {
        "id": str(job["id"]),
        "tenant": job.get("tenant"),
        "user": job["user_ref"],
        "idempotency_key": job["idempotency_key"],
        "prompt_sha256": job["prompt_sha256"],
        "params": job["params"],
        "backend": job["backend"],
        "generator": job.get("generator"),
        "state": job["state"],
        "done": job["state"] in TERMINAL,
        "progress": round(float(job["progress"]), 3),
        "attempts": job["attempts"],
        "error": job["error"],
        "warnings": job["warnings"],
        "verdict": job["verdict"],
        "check_id": str(job["check_id"]) if job["check_id"] else None,
        "release_id": release_id,
        "gpu_seconds": round(float(job["gpu_seconds"]), 4),
        "gate_gpu_seconds": round(float(job["gate_gpu_seconds"]), 4),
        "timings": job["timings"],
        "created_at": job["created_at"].isoformat(),
        "started_at": job["started_at"].isoformat() if job["started_at"] else None,
        "finished_at": job["finished_at"].isoformat() if job["finished_at"] else None,
        "screening": None if not screening else {
            "id": str(screening["id"]), "decision": screening["decision"],
            "matches": screening["matches"], "signals": screening["signals"]},
    }
    review = job.get("review")
    if review:
        out["review"] = {k: review[k] for k in ("review_id", "state", "decided_at", "sla_left_s")}
    if release_id:
        out["release_url"] = f"/v1/releases/{release_id}"
        out["download_url"] = f"/v1/releases/{release_id}/file"
    return out


def _job_gauges(settings: Settings) -> Iterator[metrics.Sample]:
    """Generation jobs not yet finished, by state: the in-process queue's depth (for /metrics;
    with a broker the kernel also reports the broker's queues)."""
    with db.connection(settings) as conn:
        rows = {r["state"]: r["n"] for r in conn.execute(
            "SELECT state, count(*) AS n FROM generation_jobs WHERE state = ANY(%s) "
            "GROUP BY state", (list(_UNFINISHED),)).fetchall()}
    for state in _UNFINISHED:
        yield ("clipgate_generation_jobs", "Generation jobs not finished, by state",
               {"state": state}, rows.get(state, 0))


_UNFINISHED = ("queued", "screening", "generating", "gating", "in_review")
metrics.gauge_source("generator.jobs", _job_gauges)

"""Triage: the evidence for a claim, computed with the gate's own matcher, its score, whether it
duplicates an earlier claim on the same clip and work, and its priority in the queue.

Runs as a task (Celery with a broker, in-process right after filing without one). Media the
matcher cannot read is recorded as the triage error and the claim still reaches the queue; a
part that is down (database, index) leaves the claim submitted for the task to retry.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import compliance
from clipgate import db, leases, queue
from clipgate.errors import BadInput, ClipgateError
from clipgate.settings import Settings, get_settings
from complaints import store, workflow
from complaints.actors import system

log = logging.getLogger(__name__)

TRIAGE_CLAIM = "clipgate.triage_claim"  # the queue's name for triage_claim
LEASE_KIND = "triage"  # task_leases.kind of a claim's triage

TRIAGE = system("triage")
# Score at which a strong match is urgent.
URGENT_SCORE = 0.9


def submit(claim_id: str, settings: Settings) -> None:
    """Queue triage for a claim just filed. Filing has committed, so a failure here is logged and
    the claim waits, submitted, for `retriage_stuck` (or a worker's retry)."""
    try:
        queue.submit(TRIAGE_CLAIM, [claim_id], settings, run_triage)
    except ClipgateError as e:
        log.error("triage of claim %s not done yet: %s", claim_id, e)
    except Exception:  # in-process: the claim is filed whatever triage does; it stays submitted
        log.exception("triage of claim %s failed; it stays submitted", claim_id)


def triage_claim(claim_id: str, settings: Settings | None = None) -> dict[str, Any]:
    """Compute evidence, score, duplicate and priority, and move the claim to triaged.
    Running it again on a claim already triaged changes nothing."""
    settings = settings or get_settings()
    with db.connection(settings) as conn:
        claim = store.load_claim(conn, claim_id)
    if claim is None or claim["state"] != "submitted":
        return {"claim_id": claim_id, "state": claim["state"] if claim else None}
    release = compliance.get_release(str(claim["release_id"]), settings=settings)
    match, frames_sampled, error = _evidence(Path(release["path"]), str(claim["work_id"]),
                                             settings)
    score = match["score"] if match else 0.0
    priority = _priority(match, frames_sampled, settings)
    with db.connection(settings) as conn:
        claim = store.load_claim(conn, claim_id, lock=True)
        if claim["state"] != "submitted":
            return {"claim_id": claim_id, "state": claim["state"]}
        original = _original(conn, claim)
        row = workflow.transition(
            conn, TRIAGE, claim, "triaged", action="claim.triage",
            detail={"score": score, "priority": priority, "error": error,
                    "duplicate_of": str(original["id"]) if original else None},
            sets={"score": score, "priority": priority, "evidence": match,
                  "triage_error": error, "duplicate_of": original["id"] if original else None})
    log.info("triaged claim %s: score %.3f, priority %d", row["number"], score, priority)
    return {"claim_id": str(row["id"]), "state": row["state"], "score": score,
            "priority": priority, "duplicate_of": str(original["id"]) if original else None}


def run_triage(claim_id: str, settings: Settings | None = None) -> dict[str, Any]:
    """The task's body: triage_claim under a lease (clipgate.leases), so a worker killed mid-way
    is noticed by the sweep; a claim whose triage lost task_max_attempts workers reaches the
    queue untriaged, with the reason as its triage error."""
    settings = settings or get_settings()
    with leases.held(settings, kind=LEASE_KIND, subject_id=claim_id) as lease:
        if lease is None:  # a spare message: another live worker is triaging it
            return {"claim_id": claim_id, "state": "submitted"}
        if lease.exhausted(settings.task_max_attempts):
            return _give_up(claim_id, lease.attempts - 1, settings)
        return triage_claim(claim_id, settings)


def _lost_reason(lost: int) -> str:
    return (f"triage stopped: its worker was lost {lost} time(s) while matching this claim's "
            "clip (killed or out of memory); assess the evidence by hand")


def _give_up(claim_id: str, lost: int, settings: Settings) -> dict[str, Any]:
    """Move a still-submitted claim to the queue with no evidence and the reason why."""
    with db.connection(settings) as conn:
        claim = store.load_claim(conn, claim_id, lock=True)
        if claim is None or claim["state"] != "submitted":
            return {"claim_id": claim_id, "state": claim["state"] if claim else None}
        error = _lost_reason(lost)
        row = workflow.transition(
            conn, TRIAGE, claim, "triaged", action="claim.triage", reason=error,
            detail={"score": 0.0, "priority": 2, "error": error, "duplicate_of": None},
            # Priority 2: nobody has weighed the evidence, so a person should, soon.
            sets={"score": 0.0, "priority": 2, "evidence": None, "triage_error": error})
        leases.forget(conn, kind=LEASE_KIND, subject_id=claim_id)
    log.error("claim %s: %s", row["number"], error)
    return {"claim_id": claim_id, "state": row["state"], "score": 0.0, "priority": 2,
            "duplicate_of": None, "error": error}


def _evidence(path: Path, work_id: str, settings: Settings
              ) -> tuple[dict[str, Any] | None, int, str | None]:
    """(the claimed work's match as WorkMatch.to_dict(), frames sampled, error)."""
    try:
        outcome = compliance.match_file(path, settings)
    except BadInput as e:
        return None, 0, f"the clip could not be matched: {e}"
    match = next((m for m in outcome.matches if m.work_id == work_id), None)
    return (match.to_dict() if match else None), len(outcome.fingerprint), None


def _priority(match: dict[str, Any] | None, frames_sampled: int, settings: Settings) -> int:
    """1 urgent (strong, near-exact copy) .. 4 low (nothing matched)."""
    if match is None:
        return 4
    strong = match["frames_matched"] >= min(settings.block_min_frames, max(1, frames_sampled))
    if strong and match["score"] >= URGENT_SCORE:
        return 1
    return 2 if strong else 3


def _original(conn: Any, claim: dict[str, Any]) -> dict[str, Any] | None:
    """The first claim on the same clip and work by another claimant, if this one repeats it."""
    return conn.execute(
        "SELECT id, number FROM claims WHERE release_id = %s AND work_id = %s AND id <> %s "
        "AND claimant_id <> %s AND duplicate_of IS NULL AND number < %s "
        "ORDER BY number LIMIT 1",
        (claim["release_id"], claim["work_id"], claim["id"], claim["claimant_id"],
         claim["number"])).fetchone()


def retriage_stuck(settings: Settings | None = None) -> int:
    """The sweep: claims left submitted that no live worker holds (the broker or database was
    down when they were filed, or their triage worker died) are queued for triage again, or
    moved on untriaged with the reason once they lost task_max_attempts workers."""
    settings = settings or get_settings()
    with db.connection(settings) as conn:
        rows = conn.execute(
            "SELECT c.id, coalesce(l.attempts, 0) AS attempts FROM claims c "
            "LEFT JOIN task_leases l ON l.kind = %s AND l.subject_id = c.id::text "
            "WHERE c.state = 'submitted' AND coalesce(l.lease_until, "
            "c.state_since + make_interval(secs => %s)) < now() ORDER BY c.number",
            (LEASE_KIND, settings.task_lease_s)).fetchall()
    for r in rows:
        claim_id = str(r["id"])
        if r["attempts"] >= settings.task_max_attempts:
            _give_up(claim_id, r["attempts"], settings)
            continue
        if settings.broker_url:  # looked at again a lease period on, unless a worker takes it
            with db.connection(settings) as conn:
                leases.mark_sent(conn, kind=LEASE_KIND, subject_id=claim_id,
                                 wait_s=settings.task_lease_s)
        submit(claim_id, settings)
    return len(rows)

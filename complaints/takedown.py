"""What an upheld claim does: block the work, take the clip down, rescan every release, and flag
the work for the ML team.

Block and takedown go through index's and compliance's public functions (both idempotent), then
their records are written in the decision's transaction. A rescan is a task: it matches every
active release against the work with the gate's matcher, keeps its progress in its `rescans` row,
and revokes or flags each match.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

import compliance
import index
from clipgate import db, leases, queue
from clipgate.errors import BadInput, ClipgateError, Unavailable
from clipgate.settings import Settings, get_settings
from complaints import audit, notify
from complaints.actors import Actor, system

log = logging.getLogger(__name__)

RUN_RESCAN = "clipgate.rescan"  # the queue's name for run_rescan_task
LEASE_KIND = "rescan"  # task_leases.kind of a rescan
RESCAN_TASK = system("rescan")


def carry_out(conn: psycopg.Connection, actor: Actor, claim: dict[str, Any], actions: list[str],
              reason: str, settings: Settings) -> dict[str, Any]:
    """Do an uphold's actions for a claim locked in conn. Returns what was done (for the audit
    row), with "rescans": the ids of rescans to start once conn commits.

    Block and revoke commit on their own connections (index's and compliance's functions), so
    they stand even if conn then rolls back; both are idempotent, so deciding again is safe, and
    they err on the side of the rights holder, which is the side a failed decision should err on.
    Their audit rows are committed right after each effect, on their own short transaction, so
    an effect that happened is audited even when the decision then fails.
    """
    done: dict[str, Any] = {}
    label = f"claim {claim['number']} upheld: {reason}"
    if "block" in actions:
        work = index.set_work_policy(str(claim["work_id"]), "block", settings)
        done["block"] = {"work_id": str(work["id"]), "policy": work["policy"]}
        _audit_effect(settings, actor, "work.block", subject_type="work",
                      subject_id=str(work["id"]), claim_id=claim["id"], reason=reason)
    if "takedown" in actions:
        release = compliance.get_release(str(claim["release_id"]), settings=settings)
        if release["status"] == "active":
            release = compliance.revoke_release(str(claim["release_id"]), reason=label[:500],
                                                settings=settings)
        record_takedown(conn, claim["id"], release["id"], "revoked", claim["score"], "claim")
        done["takedown"] = {"release_id": str(release["id"])}
        _audit_effect(settings, actor, "release.revoke", subject_type="release",
                      subject_id=str(release["id"]), claim_id=claim["id"], reason=reason)
    if "exclude_training" in actions:
        flag = conn.execute(
            "INSERT INTO retraining_flags (work_id, claim_id, model_versions) VALUES (%s, %s, %s) "
            "ON CONFLICT (claim_id) DO NOTHING RETURNING id",
            (claim["work_id"], claim["id"], Jsonb(_model_versions(conn, claim))),
        ).fetchone()
        if flag:
            done["retraining_flag"] = str(flag["id"])
            audit.record(conn, actor, "flag.create", subject_type="retraining_flag",
                         subject_id=str(flag["id"]), claim_id=claim["id"], reason=reason)
    done["rescans"] = []
    for action in ("rescan_revoke", "rescan_flag"):
        if action in actions:
            row = conn.execute(
                "INSERT INTO rescans (claim_id, work_id, action) VALUES (%s, %s, %s) RETURNING id",
                (claim["id"], claim["work_id"], action.removeprefix("rescan_")),
            ).fetchone()
            done["rescans"].append(str(row["id"]))
            audit.record(conn, actor, "rescan.queue", subject_type="rescan",
                         subject_id=str(row["id"]), claim_id=claim["id"],
                         detail={"action": action.removeprefix("rescan_")})
    return done


def _audit_effect(settings: Settings, actor: Actor, action: str, **row: Any) -> None:
    """Audit an effect that committed on its own, in a transaction of its own. (The decision's
    lock on the claim is FOR NO KEY UPDATE, so this row's reference to the claim does not wait
    for it.)"""
    with db.connection(settings) as conn:
        audit.record(conn, actor, action, **row)


def record_takedown(conn: psycopg.Connection, claim_id: Any, release_id: Any, action: str,
                    score: float | None, via: str) -> None:
    conn.execute(
        "INSERT INTO takedowns (claim_id, release_id, action, score, via) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (claim_id, release_id) DO NOTHING",
        (claim_id, release_id, action, score, via))


def _model_versions(conn: psycopg.Connection, claim: dict[str, Any]) -> list[dict[str, Any]]:
    """The distinct (model, version) of the claimed clip and of every clip the claim took down
    or flagged."""
    ids = [claim["release_id"], *_taken_down(conn, claim["id"])]
    found = {(_text(r["generator"].get("model")), _text(r["generator"].get("version")))
             for r in compliance.releases_matching(ids=ids, conn=conn)}
    # As SQL's ORDER BY 1, 2 did: NULLs last.
    return [{"model": m, "version": v} for m, v in sorted(
        found, key=lambda mv: tuple((x is None, x or "") for x in mv))]


def _text(value: Any) -> str | None:
    """A JSON value as PostgreSQL's ->> gives it: strings as they are, others as JSON."""
    return value if value is None or isinstance(value, str) else json.dumps(value)


def _taken_down(conn: psycopg.Connection, claim_id: Any) -> list[Any]:
    """The releases a claim took down or flagged."""
    return [r["release_id"] for r in conn.execute(
        "SELECT release_id FROM takedowns WHERE claim_id = %s", (claim_id,)).fetchall()]


def start_rescans(rescan_ids: list[str], settings: Settings) -> None:
    """Queue each rescan (Celery with a broker, in-process otherwise). A rescan that cannot be
    queued is marked failed with the reason, so the claim page says so."""
    for rescan_id in rescan_ids:
        try:
            queue.submit(RUN_RESCAN, [rescan_id], settings, run_rescan_task)
        except ClipgateError as e:
            log.error("rescan %s could not run: %s", rescan_id, e)
            _finish(rescan_id, "failed", str(e), settings)
        except Exception:  # in-process: run_rescan marked it failed; the decision stands
            log.exception("rescan %s failed", rescan_id)


def run_rescan_task(rescan_id: str, settings: Settings | None = None, *,
                    last_try: bool = True) -> dict[str, Any]:
    """The task's body: run_rescan under a lease (clipgate.leases), so a worker killed mid-way
    is noticed by recover_rescans; a rescan that lost task_max_attempts workers is failed with
    the reason."""
    settings = settings or get_settings()
    with leases.held(settings, kind=LEASE_KIND, subject_id=rescan_id) as lease:
        if lease is None:  # a spare message: another live worker is running it
            return _current(rescan_id, settings)
        if lease.exhausted(settings.task_max_attempts):
            _finish(rescan_id, "failed", _lost_reason(lease.attempts - 1), settings,
                    only_unfinished=True)
            return _current(rescan_id, settings)
        try:
            return run_rescan(rescan_id, settings, last_try=last_try, lease=lease)
        except leases.LeaseLost as e:
            # This worker stalled past its lease and another took the rescan over: its steps
            # so far are counted; the rest is the other worker's.
            log.warning("rescan %s: %s; stopping here", rescan_id, e)
            return _current(rescan_id, settings)


def _lost_reason(lost: int) -> str:
    return (f"the rescan's worker was lost {lost} time(s) (killed or out of memory); "
            "not retried again")


def _current(rescan_id: str, settings: Settings) -> dict[str, Any]:
    with db.connection(settings) as conn:
        row = conn.execute("SELECT * FROM rescans WHERE id = %s", (rescan_id,)).fetchone()
    return _public(row) if row else {}


def recover_rescans(settings: Settings | None = None) -> dict[str, int]:
    """The sweep: queued or running rescans that no live worker holds (the worker died, or the
    message was lost) are sent again, or failed with the reason once they lost
    task_max_attempts workers. Without a broker nothing is sent."""
    settings = settings or get_settings()
    with db.connection(settings) as conn:
        rows = conn.execute(
            "SELECT r.id, coalesce(l.attempts, 0) AS attempts FROM rescans r "
            "LEFT JOIN task_leases l ON l.kind = %s AND l.subject_id = r.id::text "
            "WHERE r.state IN ('queued', 'running') AND coalesce(l.lease_until, "
            "coalesce(r.started_at, r.created_at) + make_interval(secs => %s)) < now() "
            "ORDER BY r.created_at", (LEASE_KIND, settings.task_lease_s)).fetchall()
    counts = {"resent": 0, "failed": 0}
    for r in rows:
        rescan_id = str(r["id"])
        if r["attempts"] >= settings.task_max_attempts:
            _finish(rescan_id, "failed", _lost_reason(r["attempts"]), settings,
                    only_unfinished=True)
            counts["failed"] += 1
        elif settings.broker_url:
            leases.resend(settings, kind=LEASE_KIND, subject_id=rescan_id, task=RUN_RESCAN)
            counts["resent"] += 1
    return counts


def run_rescan(rescan_id: str, settings: Settings | None = None, *,
               last_try: bool = True, lease: leases.Lease | None = None) -> dict[str, Any]:
    """Match every active release against the rescan's work; revoke or flag each match.
    Progress (total, scanned, matched) is committed after each release. When a part is down
    (Unavailable) and this is not the last try, the rescan stays queued with the error noted and
    the error is raised for the task's retry, which carries on where this one stopped. With a
    lease, each release waits for it still to be this worker's (LeaseLost otherwise: two
    workers never scan one rescan at once)."""
    settings = settings or get_settings()
    with db.connection(settings) as conn:
        rescan = conn.execute("SELECT * FROM rescans WHERE id = %s FOR UPDATE",
                              (rescan_id,)).fetchone()
        if rescan is None or rescan["state"] not in ("queued", "running"):
            return _public(rescan) if rescan else {}
        claim = conn.execute("SELECT id, number FROM claims WHERE id = %s",
                             (rescan["claim_id"],)).fetchone()
        releases = compliance.releases_matching(
            status="active", exclude=_taken_down(conn, rescan["claim_id"]), conn=conn)
        conn.execute("UPDATE rescans SET state = 'running', started_at = now(), total = %s, "
                     "scanned = 0, matched = 0 WHERE id = %s", (len(releases), rescan["id"]))
    try:
        for release in releases:
            if lease is not None:
                lease.check()
            scan_one(rescan, claim, release, settings)
        _finish(rescan_id, "done", None, settings)
    except leases.LeaseLost:
        raise  # the rescan goes on in the worker that took it over: nothing to finish here
    except Unavailable as e:
        if last_try:
            _finish(rescan_id, "failed", str(e), settings)
        else:
            _requeue(rescan_id, str(e), settings)
        raise
    except Exception as e:
        _finish(rescan_id, "failed", str(e), settings)
        raise
    with db.connection(settings) as conn:
        _refresh_flag(conn, rescan["claim_id"])
        done = conn.execute("SELECT * FROM rescans WHERE id = %s", (rescan_id,)).fetchone()
        full = conn.execute("SELECT * FROM claims WHERE id = %s", (rescan["claim_id"],)).fetchone()
        what = "taken down" if done["action"] == "revoke" else "flagged for review"
        notify.enqueue(conn, full, event="rescan.done",
                       subject=f"Claim {full['number']}: the rescan is done",
                       text=f"We checked {done['scanned']} released clips against your work; "
                            f"{done['matched']} matched and were {what}.")
    notify.submit_send(settings)
    return _public(done)


def scan_one(rescan: dict[str, Any], claim: dict[str, Any], release: dict[str, Any],
             settings: Settings) -> None:
    """One step of a rescan: match one release against the work, revoke or flag it, count it."""
    work_id = str(rescan["work_id"])
    match = None
    try:
        outcome = compliance.match_file(Path(release["path"]), settings)
        match = next((m for m in outcome.matches if m.work_id == work_id), None)
    except BadInput as e:  # a release whose file is missing or unreadable: counted, not fatal
        log.warning("rescan %s: release %s not scanned: %s", rescan["id"], release["id"], e)
    if match is not None and rescan["action"] == "revoke":
        compliance.revoke_release(str(release["id"]), settings=settings,
                                  reason=f"matches the work of upheld claim {claim['number']}")
    with db.connection(settings) as conn:
        # The rescan's row before the audit chain's lock, the order _finish and _requeue take
        # them in: the other order deadlocks with them.
        conn.execute("UPDATE rescans SET scanned = scanned + 1, matched = matched + %s "
                     "WHERE id = %s", (int(match is not None), rescan["id"]))
        if match is not None:
            action = "revoked" if rescan["action"] == "revoke" else "flagged"
            record_takedown(conn, rescan["claim_id"], release["id"], action, match.score,
                            "rescan")
            audit.record(conn, RESCAN_TASK,
                         "release.revoke" if action == "revoked" else "release.flag",
                         subject_type="release", subject_id=str(release["id"]),
                         claim_id=rescan["claim_id"],
                         detail={"rescan_id": str(rescan["id"]), "score": match.score,
                                 "frames_matched": match.frames_matched})


def _finish(rescan_id: str, state: str, error: str | None, settings: Settings, *,
            only_unfinished: bool = False) -> None:
    unfinished = " AND state IN ('queued', 'running')" if only_unfinished else ""
    with db.connection(settings) as conn:
        row = conn.execute("UPDATE rescans SET state = %s, error = %s, finished_at = now() "
                           f"WHERE id = %s{unfinished} RETURNING *",
                           (state, error, rescan_id)).fetchone()
        if row and only_unfinished:
            leases.forget(conn, kind=LEASE_KIND, subject_id=str(rescan_id))
        if row:
            audit.record(conn, RESCAN_TASK, f"rescan.{state}", subject_type="rescan",
                         subject_id=str(rescan_id), claim_id=row["claim_id"], reason=error,
                         detail={"total": row["total"], "scanned": row["scanned"],
                                 "matched": row["matched"]})


def _requeue(rescan_id: str, error: str, settings: Settings) -> None:
    """Leave a rescan resumable (queued) after a transient error, noting why it paused."""
    with db.connection(settings) as conn:
        row = conn.execute("UPDATE rescans SET state = 'queued', error = %s WHERE id = %s "
                           "RETURNING claim_id", (f"will retry: {error}", rescan_id)).fetchone()
        if row:
            audit.record(conn, RESCAN_TASK, "rescan.retry", subject_type="rescan",
                         subject_id=str(rescan_id), claim_id=row["claim_id"], reason=error)


def _refresh_flag(conn: psycopg.Connection, claim_id: Any) -> None:
    """A retraining flag names every model version whose outputs matched, rescans included."""
    claim = conn.execute("SELECT id, release_id FROM claims WHERE id = %s", (claim_id,)).fetchone()
    conn.execute("UPDATE retraining_flags SET model_versions = %s WHERE claim_id = %s",
                 (Jsonb(_model_versions(conn, claim)), claim_id))


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(row["id"]), "action": row["action"], "state": row["state"],
            "total": row["total"], "scanned": row["scanned"], "matched": row["matched"],
            "error": row["error"],
            "started_at": row["started_at"].isoformat() if row["started_at"] else None,
            "finished_at": row["finished_at"].isoformat() if row["finished_at"] else None}

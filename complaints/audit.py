"""The append-only audit log: who did what, when and why.

Rows are only ever inserted (a trigger refuses UPDATE, DELETE and TRUNCATE). Callers write them
in the same transaction as the change they describe, so a change is never left unaudited.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from clipgate import db
from clipgate.settings import Settings
from complaints.actors import Actor


def record(
    conn: psycopg.Connection,
    actor: Actor,
    action: str,
    *,
    subject_type: str,
    subject_id: str | None = None,
    claim_id: str | uuid.UUID | None = None,
    from_state: str | None = None,
    to_state: str | None = None,
    reason: str | None = None,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Append one row, inside the caller's transaction. Returns it."""
    return conn.execute(
        "INSERT INTO audit_log (actor, actor_role, action, subject_type, subject_id, claim_id, "
        "from_state, to_state, reason, detail) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
        "RETURNING *",
        (actor.label, actor.role, action, subject_type, subject_id,
         uuid.UUID(str(claim_id)) if claim_id else None, from_state, to_state, reason,
         Jsonb(detail or {})),
    ).fetchone()


def record_review_decision(conn: psycopg.Connection, item: dict[str, Any], reviewer: Any
                           ) -> dict[str, Any]:
    """Audit a decision on a held clip (compliance calls this in the decision's transaction):
    review.release, review.block, or review.timeout when nobody decided in time."""
    decision = item.get("decision") or {}
    kind, _, ident = reviewer.label.partition(":")
    actor = Actor(kind, ident, reviewer.role, ident if kind == "account" else None)
    action = "review.timeout" if decision.get("timeout") else f"review.{decision.get('outcome')}"
    return record(conn, actor, action, subject_type="held_clip", subject_id=item["review_id"],
                  from_state="pending", to_state=item["state"], reason=decision.get("reason"),
                  detail={"decision_id": decision.get("id"), "check_id": item["check_id"],
                          "release_id": item["release_id"],
                          "job_id": (item.get("generator") or {}).get("job_id"),
                          "blocked_works": decision.get("blocked_works", [])})


def record_licence_change(conn: psycopg.Connection, change: Any) -> dict[str, Any]:
    """Audit a licence granted or revoked (compliance calls this in the change's transaction)."""
    kind, _, ident = change.by.partition(":")
    actor = Actor(kind, ident, change.by_role, ident if kind == "account" else None)
    lic = change.licence
    return record(conn, actor, change.action, subject_type="licence",
                  subject_id=lic["licence_id"], to_state=lic["state"], reason=change.reason,
                  detail={k: lic.get(k) for k in ("tenant", "tenant_id", "work_id", "owner",
                                                  "model", "valid_from", "valid_until")})


def claim_history(conn: psycopg.Connection, claim_id: str | uuid.UUID) -> list[dict[str, Any]]:
    """A claim's audit rows, oldest first, with the acting account's name where there is one."""
    return conn.execute(
        "SELECT a.id, a.at, a.actor, a.actor_role, a.action, a.from_state, a.to_state, "
        "a.reason, a.detail, acc.name AS actor_name FROM audit_log a "
        "LEFT JOIN api_keys k ON a.actor = 'api_key:' || k.id::text "
        "LEFT JOIN accounts acc ON acc.id::text = COALESCE(k.account_id::text, "
        "  CASE WHEN a.actor LIKE 'account:%%' THEN substr(a.actor, 9) END) "
        "WHERE a.claim_id = %s ORDER BY a.id",
        (uuid.UUID(str(claim_id)),),
    ).fetchall()


def entries(*, subject_type: str | None = None, subject_id: str | None = None,
            limit: int = 200, settings: Settings | None = None) -> list[dict[str, Any]]:
    """Recent audit rows, newest first (for operators)."""
    where, args = [], []
    if subject_type:
        where.append("subject_type = %s")
        args.append(subject_type)
    if subject_id:
        where.append("subject_id = %s")
        args.append(subject_id)
    sql = "SELECT * FROM audit_log" + (" WHERE " + " AND ".join(where) if where else "")
    with db.connection(settings) as conn:
        return conn.execute(sql + " ORDER BY id DESC LIMIT %s", (*args, limit)).fetchall()

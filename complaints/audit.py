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

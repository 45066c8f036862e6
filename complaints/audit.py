"""The append-only audit log: who did what, when and why.

Rows are only ever inserted (a trigger refuses UPDATE, DELETE and TRUNCATE). Callers write them
in the same transaction as the change they describe, so a change is never left unaudited.

The rows form a hash chain (clipgate.hashchain): each stores the hash of the row before it
(prev_hash) and its own hash over its fields and prev_hash (row_hash). Someone who edits a row
with SQL, with the trigger off, breaks the chain there, and `clipgate audit verify` names the row.
Writers take one transaction-scoped advisory lock before reading the chain's head, so two
transactions can never both link to the same head: the chain is serial in id order.
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from clipgate import db, hashchain
from clipgate.settings import Settings
from complaints.actors import Actor


# pg_advisory_xact_lock key that serialises the audit log's writers (held until commit).
CHAIN_LOCK = 7265032
# The columns a row's hash covers: every column but the hashes themselves.
HASHED = ("id", "at", "actor", "actor_role", "action", "subject_type", "subject_id", "claim_id",
          "from_state", "to_state", "reason", "detail")


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
    """Append one row, chained to the last, inside the caller's transaction. Returns it.

    The chain's lock is held until the caller's transaction ends, so other audited writes wait
    for it: call this once the change it describes is made, near the end of the transaction."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (CHAIN_LOCK,))
    head = conn.execute("SELECT row_hash FROM audit_log ORDER BY id DESC LIMIT 1").fetchone()
    # The id, time and detail as the database will store them (jsonb normalises the detail), so
    # the hash computed now is the one `verify` recomputes from the stored row.
    pre = conn.execute(
        "SELECT nextval(pg_get_serial_sequence('audit_log', 'id')) AS id, "
        "clock_timestamp() AS at, %s::jsonb AS detail", (Jsonb(detail or {}),)).fetchone()
    fields = {"id": pre["id"], "at": pre["at"], "actor": actor.label, "actor_role": actor.role,
              "action": action, "subject_type": subject_type, "subject_id": subject_id,
              "claim_id": uuid.UUID(str(claim_id)) if claim_id else None,
              "from_state": from_state, "to_state": to_state, "reason": reason,
              "detail": pre["detail"]}
    prev = bytes(head["row_hash"]) if head else hashchain.GENESIS
    return conn.execute(
        "INSERT INTO audit_log (id, at, actor, actor_role, action, subject_type, subject_id, "
        "claim_id, from_state, to_state, reason, detail, prev_hash, row_hash) "
        "OVERRIDING SYSTEM VALUE "
        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING *",
        (*(fields[c] for c in HASHED[:-1]), Jsonb(fields["detail"]), prev,
         hashchain.link(prev, fields)),
    ).fetchone()


def verify_chain(settings: Settings | None = None) -> hashchain.Verdict:
    """Recompute the chain from the first row and stop at the first broken link."""
    with db.connection(settings) as conn, conn.cursor(name="audit_verify") as cur:
        cur.itersize = 1000
        cur.execute(f"SELECT {', '.join(HASHED)}, prev_hash, row_hash FROM audit_log ORDER BY id")
        return hashchain.verify(
            (r["id"], r["prev_hash"], r["row_hash"], {c: r[c] for c in HASHED}) for r in cur)


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

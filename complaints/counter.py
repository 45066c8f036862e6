"""Counter-notices: the generator's user answers an upheld takedown. The clip is restored when
the waiting period (settings.counter_notice_wait_s) ends, unless the claimant escalates first.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg

import compliance
from clipgate import db
from clipgate.errors import Conflict, NotFound
from clipgate.settings import Settings, get_settings
from complaints import audit, notify, store
from complaints.actors import Actor, system
from complaints.workflow import required_text
from complaints.view import counter_view

log = logging.getLogger(__name__)

RESTORE_TASK = system("restore_due")


def file_counter_notice(actor: Actor, *, release_id: str, claim_id: str | None = None,
                        statement: str, contact: str,
                        settings: Settings | None = None) -> dict[str, Any]:
    """File a counter-notice against the takedown of release_id by an upheld claim (claim_id;
    None: the claim that took it down). Raises NotFound when that claim took no such release
    down, Conflict when a counter-notice was filed already."""
    settings = settings or get_settings()
    store.require_role(actor, "generator", doing="file counter-notices")
    statement = required_text(statement, "the counter-notice's statement")
    contact = required_text(contact, "a contact address")
    with db.connection(settings) as conn:
        rid = store.parse_id(release_id)
        if claim_id is None and rid is not None:
            found = conn.execute(
                "SELECT t.claim_id FROM takedowns t JOIN claims c ON c.id = t.claim_id WHERE "
                "t.release_id = %s AND t.action = 'revoked' AND t.restored_at IS NULL AND "
                "c.state = 'upheld' ORDER BY t.created_at LIMIT 1", (rid,)).fetchone()
            claim_id = str(found["claim_id"]) if found else None
        claim = store.load_claim(conn, claim_id, lock=True) if claim_id else None
        taken = conn.execute(
            "SELECT * FROM takedowns WHERE claim_id = %s AND release_id = %s AND "
            "action = 'revoked'", (claim["id"], rid)).fetchone() if claim and rid else None
        if claim is None or claim["state"] != "upheld" or taken is None:
            raise NotFound(f"no upheld claim {claim_id} took down release {release_id}")
        if taken["restored_at"] is not None:
            raise Conflict(f"release {release_id} was already restored")
        try:
            row = conn.execute(
                "INSERT INTO counter_notices (claim_id, release_id, filed_by, statement, contact, "
                "restore_after) VALUES (%s, %s, %s, %s, %s, now() + make_interval(secs => %s)) "
                "RETURNING *",
                (claim["id"], rid, actor.label, statement, contact,
                 settings.counter_notice_wait_s)).fetchone()
        except psycopg.errors.UniqueViolation:
            raise Conflict(f"a counter-notice against the takedown of release {release_id} by "
                           f"claim {claim['number']} was filed already") from None
        audit.record(conn, actor, "counter_notice.file", subject_type="counter_notice",
                     subject_id=str(row["id"]), claim_id=claim["id"],
                     detail={"release_id": str(rid),
                             "restore_after": row["restore_after"].isoformat()})
        notify.enqueue(conn, claim, event="counter_notice.filed",
                       subject=f"Claim {claim['number']}: a counter-notice was filed",
                       text=f"The generator's user disputes the takedown:\n\n{statement}\n\n"
                            f"Contact: {contact}\n\nThe clip will be restored after "
                            f"{row['restore_after']:%Y-%m-%d %H:%M} UTC unless you escalate "
                            "before then.")
    notify.submit_send(settings)
    return counter_view(row)


def escalate_counter_notice(actor: Actor, counter_id: str, reason: str, *,
                            settings: Settings | None = None) -> dict[str, Any]:
    """The claimant escalates (e.g. goes to court) before the waiting period ends: the clip stays
    down."""
    store.require_role(actor, "rights_holder", "reviewer", "admin",
                       doing="escalate a counter-notice")
    reason = required_text(reason, "a reason")
    with db.connection(settings) as conn:
        cid = store.parse_id(counter_id)
        row = conn.execute("SELECT * FROM counter_notices WHERE id = %s FOR UPDATE",
                           (cid,)).fetchone() if cid else None
        claim = store.load_claim(conn, row["claim_id"]) if row else None
        if row is None or not store.can_see(actor, claim):
            raise NotFound(f"no counter-notice with id {counter_id}")
        if row["state"] != "waiting":
            raise Conflict(f"this counter-notice is already {row['state']}",
                           existing_id=str(row["id"]))
        late = conn.execute("SELECT now() >= %s AS late", (row["restore_after"],)).fetchone()
        if late["late"]:
            raise Conflict("the waiting period has ended; the clip is being restored")
        row = conn.execute("UPDATE counter_notices SET state = 'escalated', resolved_at = now() "
                           "WHERE id = %s RETURNING *", (row["id"],)).fetchone()
        audit.record(conn, actor, "counter_notice.escalate", subject_type="counter_notice",
                     subject_id=str(row["id"]), claim_id=row["claim_id"], reason=reason)
    return counter_view(row)


def restore_due(settings: Settings | None = None) -> int:
    """Restore every release whose counter-notice waited out its period unescalated. Returns how
    many were restored (a task: Celery beat runs it; so does `clipgate claims restore-due`)."""
    settings = settings or get_settings()
    with db.connection(settings) as conn:
        due = conn.execute("SELECT id FROM counter_notices WHERE state = 'waiting' AND "
                           "restore_after <= now() ORDER BY restore_after").fetchall()
    restored = 0
    for r in due:
        restored += _restore_one(r["id"], settings)
    return restored


def _standing_takedowns(conn: psycopg.Connection, counter: dict[str, Any]) -> list[str]:
    """Numbers of the other claims whose takedown of the counter-notice's release still stands:
    not restored, and not answered by a counter-notice of their own whose waiting period has
    ended unescalated (that one will be restored in turn)."""
    rows = conn.execute(
        "SELECT c.number FROM takedowns t JOIN claims c ON c.id = t.claim_id "
        "WHERE t.release_id = %s AND t.claim_id <> %s AND t.action = 'revoked' "
        "AND t.restored_at IS NULL AND NOT EXISTS (SELECT 1 FROM counter_notices n "
        "WHERE n.claim_id = t.claim_id AND n.release_id = t.release_id "
        "AND n.state = 'waiting' AND n.restore_after <= now()) ORDER BY c.number",
        (counter["release_id"], counter["claim_id"])).fetchall()
    return [str(r["number"]) for r in rows]


def _restore_one(counter_id: Any, settings: Settings) -> int:
    with db.connection(settings) as conn:
        row = conn.execute("SELECT * FROM counter_notices WHERE id = %s AND state = 'waiting' "
                           "AND restore_after <= now() FOR UPDATE SKIP LOCKED",
                           (counter_id,)).fetchone()
        if row is None:  # escalated meanwhile, or another worker has it
            return 0
        claim = store.load_claim(conn, row["claim_id"])
        reason = f"counter-notice on claim {claim['number']}: waiting period ended"
        others = _standing_takedowns(conn, row)
        if not others:
            compliance.restore_release(str(row["release_id"]), reason=reason, settings=settings)
        conn.execute("UPDATE counter_notices SET state = 'restored', resolved_at = now() "
                     "WHERE id = %s", (row["id"],))
        # Only this claim's takedown ends here; another claim's stands until its own answer.
        conn.execute("UPDATE takedowns SET restored_at = now() WHERE release_id = %s AND "
                     "claim_id = %s AND restored_at IS NULL", (row["release_id"],
                                                               row["claim_id"]))
        detail = {"counter_notice_id": str(row["id"])}
        if others:
            detail["kept_down_by"] = others
            audit.record(conn, RESTORE_TASK, "takedown.restore", subject_type="release",
                         subject_id=str(row["release_id"]), claim_id=row["claim_id"],
                         reason=reason + "; the clip stays down for other claims",
                         detail=detail)
        else:
            audit.record(conn, RESTORE_TASK, "release.restore", subject_type="release",
                         subject_id=str(row["release_id"]), claim_id=row["claim_id"],
                         reason=reason, detail=detail)
        text = ("The waiting period after the counter-notice ended without an escalation, so "
                + ("your claim's takedown ended; the clip stays down because other claims took "
                   "it down too." if others else "the clip was restored."))
        notify.enqueue(conn, claim, event="release.restored",
                       subject=f"Claim {claim['number']}: "
                               + ("your takedown ended" if others else "the clip was restored"),
                       text=text)
    if others:
        log.info("takedown of release %s by claim %s ended; still down for claims %s",
                 row["release_id"], row["claim_id"], others)
        notify.submit_send(settings)
        return 0
    log.info("restored release %s after counter-notice %s", row["release_id"], row["id"])
    notify.submit_send(settings)
    return 1

"""Claims as the API and the pages show them: plain JSON-ready dicts."""

from __future__ import annotations

from typing import Any

import psycopg

import compliance
import index
from complaints import audit
from complaints.actors import Actor


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


# How a claimant sees a work another rights holder registered (the same file uploaded twice:
# their claims merge at triage): never its title, owner, policy or id.
_NOT_YOURS = {"id": None, "title": "The work you uploaded", "owner": None, "policy": None,
              "status": None}


def _work_for(work: dict[str, Any], staff: bool, account_id: Any) -> dict[str, Any]:
    shown = {"id": str(work["id"]), "title": work["title"], "owner": work["owner"],
             "policy": work.get("policy"), "kind": work.get("kind"), "status": work.get("status")}
    if staff or str(work.get("account_id")) == str(account_id):
        return shown
    return {**shown, **_NOT_YOURS}


def summary(row: dict[str, Any], staff: bool = True) -> dict[str, Any]:
    """One line of the queue (a row of claims.SUMMARY_COLUMNS). A claimant (staff False) learns that
    a claim was merged, never the id of the other claimant's claim it was merged with, nor
    another owner's work."""
    work = _work_for({"id": row["work_id"], "title": row["work_title"], "owner": row["work_owner"],
                      "account_id": row.get("work_account_id")}, staff, row["claimant_id"])
    return {
        "id": str(row["id"]), "number": row["number"], "state": row["state"],
        "state_since": _iso(row["state_since"]), "age_s": round(float(row["age_s"]), 1),
        "revision": row["revision"], "priority": row["priority"], "score": row["score"],
        "release_id": str(row["release_id"]),
        "work": {k: work[k] for k in ("id", "title", "owner")},
        "claimant": {"id": str(row["claimant_id"]), "name": row["claimant_name"]},
        "assignee": ({"id": str(row["assignee_id"]), "name": row["assignee_name"]}
                     if row["assignee_id"] else None),
        "duplicate_of": str(row["duplicate_of"]) if row["duplicate_of"] and staff else None,
        "merged": row["duplicate_of"] is not None,
        "remedies": row["remedies"], "created_at": _iso(row["created_at"]),
    }


def claim_view(conn: psycopg.Connection, actor: Actor, claim: dict[str, Any]) -> dict[str, Any]:
    staff = actor.role in ("reviewer", "admin", "system")
    cid = claim["id"]
    release = compliance.releases_matching(ids=[claim["release_id"]], conn=conn)[0]
    work = index.works_by_id([claim["work_id"]], conn=conn)[str(claim["work_id"])]
    people = {r["id"]: r for r in conn.execute(
        "SELECT id, name, email, organisation FROM accounts WHERE id = ANY(%s)",
        ([claim["claimant_id"]] + ([claim["assignee_id"]] if claim["assignee_id"] else []),)
    ).fetchall()}
    claimant = people[claim["claimant_id"]]
    age = conn.execute("SELECT extract(epoch FROM now() - %s::timestamptz) AS s",
                       (claim["state_since"],)).fetchone()["s"]
    return {
        "id": str(cid), "number": claim["number"], "state": claim["state"],
        "state_since": _iso(claim["state_since"]), "age_s": round(float(age), 1),
        "revision": claim["revision"], "priority": claim["priority"], "score": claim["score"],
        "release": compliance.public_release(release),
        "clip_identified_by": claim["clip_identified_by"], "clip_upload": claim["clip_upload"],
        "work": _work_for(work, staff, claim["claimant_id"]),
        "statement": claim["statement"], "remedies": claim["remedies"],
        "details": claim["details"], "evidence": claim["evidence"],
        "triage_error": claim["triage_error"],
        # Another claimant's claim id is staff's to see; the claimant learns only of the merge.
        "duplicate_of": str(claim["duplicate_of"]) if claim["duplicate_of"] and staff else None,
        "merged": claim["duplicate_of"] is not None,
        "duplicates": [str(r["id"]) for r in conn.execute(
            "SELECT id FROM claims WHERE duplicate_of = %s ORDER BY number", (cid,)).fetchall()]
        if staff else [],
        "assignee": ({"id": str(claim["assignee_id"]),
                      "name": people[claim["assignee_id"]]["name"]}
                     if claim["assignee_id"] else None),
        "decision": (claim["decision"] if staff or not claim["decision"] else
                     {k: v for k, v in claim["decision"].items() if k != "via_claim"}),
        "claimant": {"id": str(claimant["id"]), "name": claimant["name"],
                     "organisation": claimant["organisation"],
                     **({"email": claimant["email"]} if staff else {})},
        "messages": _messages(conn, cid),
        "history": _history(conn, cid, staff),
        "takedowns": _takedowns(conn, cid),
        "rescan": _rescan(conn, cid),
        "counter_notices": _counter_notices(conn, cid),
        "created_at": _iso(claim["created_at"]),
    }


def _messages(conn: psycopg.Connection, claim_id: Any) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT m.kind, m.body, m.created_at, a.name AS author FROM claim_messages m "
        "LEFT JOIN accounts a ON a.id = m.author_id WHERE m.claim_id = %s ORDER BY m.id",
        (claim_id,)).fetchall()
    return [{"kind": r["kind"], "body": r["body"], "author": r["author"],
             "at": _iso(r["created_at"])} for r in rows]


def _history(conn: psycopg.Connection, claim_id: Any, staff: bool) -> list[dict[str, Any]]:
    out = []
    for r in audit.claim_history(conn, claim_id):
        name = r["actor_name"] or ("clipgate" if r["actor"].startswith("system:") else None)
        out.append({"at": _iso(r["at"]), "actor": name or r["actor_role"],
                    "actor_label": r["actor"] if staff else None, "action": r["action"],
                    "from_state": r["from_state"], "to_state": r["to_state"],
                    "reason": r["reason"], **({"detail": r["detail"]} if staff else {})})
    return out


def _takedowns(conn: psycopg.Connection, claim_id: Any) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT * FROM takedowns WHERE claim_id = %s ORDER BY id",
                        (claim_id,)).fetchall()
    status = {r["id"]: r["status"] for r in compliance.releases_matching(
        ids=[r["release_id"] for r in rows], conn=conn)} if rows else {}
    return [{"release_id": str(r["release_id"]), "action": r["action"], "via": r["via"],
             "score": r["score"], "release_status": status[r["release_id"]],
             "created_at": _iso(r["created_at"]), "restored_at": _iso(r["restored_at"])}
            for r in rows]


def _rescan(conn: psycopg.Connection, claim_id: Any) -> dict[str, Any] | None:
    r = conn.execute("SELECT * FROM rescans WHERE claim_id = %s ORDER BY created_at DESC LIMIT 1",
                     (claim_id,)).fetchone()
    if r is None:
        return None
    return {"id": str(r["id"]), "action": r["action"], "state": r["state"], "total": r["total"],
            "scanned": r["scanned"], "matched": r["matched"], "error": r["error"]}


def _counter_notices(conn: psycopg.Connection, claim_id: Any) -> list[dict[str, Any]]:
    rows = conn.execute("SELECT * FROM counter_notices WHERE claim_id = %s ORDER BY created_at",
                        (claim_id,)).fetchall()
    return [counter_view(r) for r in rows]


def counter_view(r: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(r["id"]), "claim_id": str(r["claim_id"]),
            "release_id": str(r["release_id"]), "state": r["state"],
            "statement": r["statement"], "contact": r["contact"],
            "restore_after": _iso(r["restore_after"]), "created_at": _iso(r["created_at"]),
            "resolved_at": _iso(r["resolved_at"])}

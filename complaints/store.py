"""PostgreSQL access shared by the complaints modules: claims by id, with the access rule.

The rule: reviewers, admins and clipgate's own tasks see every claim; a rights holder sees only
the claims they filed, and any other claim does not exist for them (NotFound, never Forbidden).
"""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from clipgate import db
from clipgate.errors import Forbidden, NotFound
from clipgate.settings import Settings
from complaints.actors import Actor
from complaints.view import claim_view


def parse_id(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value))
    except (ValueError, TypeError):
        return None


def load_claim(conn: psycopg.Connection, claim_id: Any, *, lock: bool = False
               ) -> dict[str, Any] | None:
    cid = parse_id(claim_id)
    if cid is None:
        return None
    return conn.execute(
        "SELECT * FROM claims WHERE id = %s" + (" FOR NO KEY UPDATE" if lock else ""), (cid,)
    ).fetchone()


def can_see(actor: Actor, claim: dict[str, Any]) -> bool:
    if actor.role in ("reviewer", "admin", "system"):
        return True
    if actor.role == "rights_holder":
        return actor.account_id is not None and str(claim["claimant_id"]) == actor.account_id
    return False


def visible_claim(conn: psycopg.Connection, actor: Actor, claim_id: Any, *,
                  lock: bool = False) -> dict[str, Any]:
    """The claim, if this actor may see it; NotFound otherwise (same words either way)."""
    claim = load_claim(conn, claim_id, lock=lock)
    if claim is None or not can_see(actor, claim):
        raise NotFound(f"no claim with id {claim_id}")
    return claim


def require_role(actor: Actor, *roles: str, doing: str) -> None:
    if actor.role not in roles:
        raise Forbidden(f"a {actor.role.replace('_', ' ')} cannot {doing}; this needs the role "
                        f"{' or '.join(roles)}")


def account(conn: psycopg.Connection, account_id: Any) -> dict[str, Any] | None:
    aid = parse_id(account_id)
    if aid is None:
        return None
    return conn.execute(
        "SELECT id, email, name, organisation, role, webhook_url, disabled_at FROM accounts "
        "WHERE id = %s", (aid,)).fetchone()


def get_claim(actor: Actor, claim_id: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """Everything about one claim that this actor may see (claimant's email: staff only)."""
    with db.connection(settings) as conn:
        return claim_view(conn, actor, visible_claim(conn, actor, claim_id))

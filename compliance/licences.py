"""Licences: a work, or every work of an owner, licensed to a tenant (optionally to one model)
for a window of time. A clip made for that tenant that matches a licensed work is released, and
the manifest names the licence; outside its window, or revoked, the work's own policy decides.

Compliance keeps tenants as opaque ids (the generator's tenant id as text, and its name for
people): it never reads the generator's tables. The generator resolves a tenant's name, then
calls create_licence (its routes and CLI), and says whom a clip is for (Licensee) when it gates.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

import index
from clipgate import db
from clipgate.errors import BadInput, NotFound, Unprocessable
from clipgate.settings import Settings
from compliance import store


@dataclass(frozen=True)
class Licensee:
    """Whom a clip is made for, as the generator vouches: its tenant. Only a generation job says
    this (a plain API caller could name any tenant, so its clips are never licensed)."""

    tenant_id: str
    tenant_name: str


@dataclass(frozen=True)
class LicenceChange:
    """A licence granted or revoked, for the audit log: what, by whom (a label such as
    "api_key:ID" and its role), and why."""

    action: str  # licence.grant or licence.revoke
    licence: dict[str, Any]  # as public_licence shows it
    by: str
    by_role: str
    reason: str | None = None


# Called in the change's transaction (complaints audits it); a listener that raises undoes it.
_listeners: list[Callable[[psycopg.Connection, LicenceChange], None]] = []


def on_licence_changed(listener: Callable[[psycopg.Connection, LicenceChange], None]) -> None:
    if listener not in _listeners:
        _listeners.append(listener)


def _announce(conn: psycopg.Connection, change: LicenceChange) -> None:
    for listener in _listeners:
        listener(conn, change)


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    if value.tzinfo is None:  # a date without a zone is taken as UTC, as the API documents
        value = value.replace(tzinfo=dt.UTC)
    return value


def create_licence(*, tenant_id: str, tenant_name: str, work_id: str | None = None,
                   owner: str | None = None, model: str | None = None,
                   valid_from: dt.datetime | None = None, valid_until: dt.datetime | None = None,
                   note: str | None = None, by: str = "system:cli", by_role: str = "system",
                   settings: Settings | None = None) -> dict[str, Any]:
    """A licence of work_id (or of every work of owner) to the tenant, granted by `by` (in the
    audit log). NotFound (404) for an unknown work; Unprocessable (422) for a window that ends
    before it starts; BadInput for neither or both of work_id and owner."""
    if (work_id is None) == (owner is None or not owner.strip()):
        raise BadInput("a licence covers either one work (work_id) or every work of an owner "
                       "(owner), not both or neither")
    start = _aware(valid_from) or dt.datetime.now(dt.UTC)
    end = _aware(valid_until)
    if end is not None and end <= start:
        raise Unprocessable(f"the licence window ends ({end.isoformat()}) before it starts "
                            f"({start.isoformat()})")
    model = model.strip() if model and model.strip() else None
    with db.connection(settings) as conn:
        if work_id is not None:
            work = index.works_by_id([work_id], conn=conn).get(str(work_id).lower())
            if work is None or work["status"] == "removed":
                raise NotFound(f"no work with id {work_id}")
            work_id = str(work["id"])
        row = store.insert_licence(conn, licence={
            "id": uuid.uuid4(), "work_id": work_id, "owner": owner.strip() if owner else None,
            "tenant_id": str(tenant_id), "tenant_name": tenant_name, "model": model,
            "valid_from": start, "valid_until": end, "note": note})
        licence = public_licence(row)
        _announce(conn, LicenceChange("licence.grant", licence, by, by_role, note))
    return licence


def get_licence(licence_id: str, *, settings: Settings | None = None) -> dict[str, Any]:
    with db.connection(settings) as conn:
        row = store.get_licence(conn, licence_id=licence_id)
    if row is None:
        raise NotFound(f"no licence with id {licence_id}")
    return public_licence(row)


def list_licences(*, tenant_id: str | None = None, work_ids: list[Any] | None = None,
                  owners: list[str] | None = None, settings: Settings | None = None
                  ) -> list[dict[str, Any]]:
    """Licences newest first, revoked ones included (their state says so); filtered by tenant,
    or to those covering work_ids or owners."""
    with db.connection(settings) as conn:
        rows = store.list_licences(conn, tenant_id=tenant_id, work_ids=work_ids, owners=owners)
    return [public_licence(r) for r in rows]


def revoke_licence(licence_id: str, *, reason: str, by: str = "system:cli",
                   by_role: str = "system", settings: Settings | None = None) -> dict[str, Any]:
    """End a licence now: clips checked from now on fall back to the works' policies. Revoking
    again changes nothing (the first time and reason stay, and nothing more is audited)."""
    if not reason or not reason.strip():
        raise BadInput("a revocation needs a reason")
    with db.connection(settings) as conn:
        before = store.get_licence(conn, licence_id=licence_id, lock=True)
        if before is None:
            raise NotFound(f"no licence with id {licence_id}")
        row = store.revoke_licence(conn, licence_id=licence_id, reason=reason.strip())
        licence = public_licence(row)
        if before["revoked_at"] is None:
            _announce(conn, LicenceChange("licence.revoke", licence, by, by_role,
                                          reason.strip()))
    return licence


def licence_state(row: dict[str, Any], at: dt.datetime) -> str:
    """in_force, revoked, expired or not_yet_valid, at time `at`."""
    if row["revoked_at"] is not None:
        return "revoked"
    if row["valid_from"] > at:
        return "not_yet_valid"
    if row["valid_until"] is not None and row["valid_until"] <= at:
        return "expired"
    return "in_force"


def public_licence(row: dict[str, Any], at: dt.datetime | None = None) -> dict[str, Any]:
    """A licence as the API, the CLI and the pages show it."""
    at = at or dt.datetime.now(dt.UTC)

    def when(v: Any) -> str | None:
        return v.isoformat() if v else None

    return {
        "licence_id": str(row["id"]), "work_id": str(row["work_id"]) if row["work_id"] else None,
        "owner": row["owner"], "tenant_id": row["tenant_id"], "tenant": row["tenant_name"],
        "model": row["model"], "valid_from": when(row["valid_from"]),
        "valid_until": when(row["valid_until"]), "note": row["note"],
        "state": licence_state(row, at), "created_at": when(row["created_at"]),
        "revoked_at": when(row["revoked_at"]), "revoked_reason": row["revoked_reason"],
    }


def licences_for(licensee: Licensee | None, works: list[dict[str, Any]],
                 settings: Settings | None = None) -> list[dict[str, Any]]:
    """The licensee's licences (any state, as rows) that cover one of works (dicts with work_id
    and owner): the gate weighs them, and names the ones out of force in its reasons."""
    if licensee is None or not works:
        return []
    with db.connection(settings) as conn:
        return store.list_licences(conn, tenant_id=licensee.tenant_id,
                                   work_ids=[w["work_id"] for w in works],
                                   owners=sorted({w["owner"] for w in works}))


def tracked_counts(work_ids: list[Any], *, settings: Settings | None = None
                   ) -> list[dict[str, Any]]:
    """For a rights holder: released clips that matched these works under `track` or a licence,
    counted per work, rule (and licence), model and tenant."""
    if not work_ids:
        return []
    with db.connection(settings) as conn:
        rows = store.tracked_counts(conn, work_ids=work_ids)
    return [{"work_id": str(r["work_id"]), "rule": r["rule"],
             "licence_id": str(r["licence_id"]) if r["licence_id"] else None,
             "model": r["model"], "tenant": r["tenant_name"], "clips": int(r["clips"]),
             "last_at": r["last_at"].isoformat()} for r in rows]

"""Tenants, their tiers and credits: who may generate, how far ahead, and how much GPU time is left.

Credits are GPU-seconds. A grant adds to the usage ledger, a finished job subtracts what it used;
the balance is the ledger's sum, so nothing is ever overwritten.
"""

from __future__ import annotations

import re
from typing import Any

from clipgate import db
from clipgate.errors import BadInput, Conflict, NotFound
from clipgate.settings import Settings, get_settings
from generator import store

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_GRANT_S = 10_000_000.0


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise BadInput("tenant name must be 1-64 letters, digits, '.', '_' or '-', starting with "
                       f"a letter or digit; got {name!r}")
    return name


def list_tiers(settings: Settings | None = None) -> list[dict[str, Any]]:
    with db.connection(settings) as conn:
        return store.tiers(conn)


def _require_tier(conn, tier: str) -> dict[str, Any]:
    row = store.get_tier(conn, name=tier)
    if row is None:
        names = ", ".join(r["name"] for r in store.tiers(conn))
        raise BadInput(f"unknown tier {tier!r}; valid tiers: {names}")
    return row


def create_tenant(name: str, *, tier: str = "free", credits_gpu_s: float = 0.0,
                  settings: Settings | None = None) -> dict[str, Any]:
    """A new tenant with an opening grant of credits_gpu_s GPU-seconds. 409 if the name is taken."""
    _check_name(name)
    _check_grant(credits_gpu_s, allow_zero=True)
    with db.connection(settings) as conn:
        _require_tier(conn, tier)
        existing = store.find_tenant_id(conn, name=name)
        if existing is not None:
            raise Conflict(f"tenant {name!r} already exists", existing_id=str(existing))
        row = store.insert_tenant(conn, name=name, tier=tier)
        if credits_gpu_s:
            store.insert_grant(conn, tenant_id=row["id"], seconds=credits_gpu_s,
                               note="opening grant")
    return get_tenant(name, settings=settings)


def _check_grant(seconds: float, *, allow_zero: bool = False) -> None:
    if not isinstance(seconds, (int, float)) or seconds != seconds or seconds < 0 \
            or (seconds == 0 and not allow_zero) or seconds > MAX_GRANT_S:
        raise BadInput(f"credits must be a positive number of GPU-seconds up to {MAX_GRANT_S:g}, "
                       f"got {seconds!r}")


def grant_credits(name: str, seconds: float, *, note: str = "grant",
                  settings: Settings | None = None) -> dict[str, Any]:
    """Add seconds of GPU credit to a tenant; returns the tenant with its new balance."""
    _check_grant(seconds)
    with db.connection(settings) as conn:
        tenant = tenant_row(conn, name)
        store.insert_grant(conn, tenant_id=tenant["id"], seconds=seconds, note=note)
    return get_tenant(name, settings=settings)


def set_tier(name: str, tier: str, *, settings: Settings | None = None) -> dict[str, Any]:
    with db.connection(settings) as conn:
        _require_tier(conn, tier)
        tenant_row(conn, name)
        store.set_tenant_tier(conn, name=name, tier=tier)
    return get_tenant(name, settings=settings)


def tenant_row(conn, name: str, *, lock: bool = False) -> dict[str, Any]:
    if not isinstance(name, str) or not name:
        raise NotFound("unknown tenant: no tenant name given")
    if lock:
        # Serialises admissions of one tenant, so two requests cannot both take its last slot.
        store.lock_tenant(conn, name=name)
    row = store.get_tenant(conn, name=name)
    if row is None:
        raise NotFound(f"unknown tenant {name!r}; an operator adds it with "
                       "`clipgate tenants add` or POST /v1/tenants")
    return row


def get_tenant(name: str, *, settings: Settings | None = None) -> dict[str, Any]:
    with db.connection(settings) as conn:
        return tenant_row(conn, name)


def list_tenants(settings: Settings | None = None) -> list[dict[str, Any]]:
    with db.connection(settings) as conn:
        return store.tenants(conn)


def usage(*, tenant: str | None = None, settings: Settings | None = None) -> list[dict[str, Any]]:
    """Per tenant: jobs by outcome, GPU-seconds spent on generation and on gating, credits
    granted and left. One tenant when `tenant` is given (404 if unknown)."""
    settings = settings or get_settings()
    with db.connection(settings) as conn:
        if tenant is not None:
            tenant_row(conn, tenant)
        return store.usage(conn, tenant=tenant)


def charge(conn, *, tenant_id: Any, job_id: Any, kind: str, gpu_seconds: float,
           wall_seconds: float) -> None:
    """Record what a job used (once per job and kind: a retried report is ignored)."""
    store.insert_charge(conn, tenant_id=tenant_id, job_id=job_id, kind=kind,
                        gpu_seconds=gpu_seconds, wall_seconds=wall_seconds)


def public_tenant(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]), "name": row["name"], "tier": row["tier"], "paid": row["paid"],
        "priority": row["priority"], "max_concurrent_jobs": row["max_concurrent_jobs"],
        "credits_gpu_s": round(float(row["credits_gpu_s"]), 3),
        "created_at": row["created_at"].isoformat(),
    }

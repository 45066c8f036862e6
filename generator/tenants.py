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

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_GRANT_S = 10_000_000.0


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise BadInput("tenant name must be 1-64 letters, digits, '.', '_' or '-', starting with "
                       f"a letter or digit; got {name!r}")
    return name


def list_tiers(settings: Settings | None = None) -> list[dict[str, Any]]:
    with db.connection(settings) as conn:
        return conn.execute("SELECT * FROM tiers ORDER BY priority").fetchall()


def _require_tier(conn, tier: str) -> dict[str, Any]:
    row = conn.execute("SELECT * FROM tiers WHERE name = %s", (tier,)).fetchone()
    if row is None:
        names = ", ".join(r["name"] for r in conn.execute("SELECT name FROM tiers ORDER BY priority"))
        raise BadInput(f"unknown tier {tier!r}; valid tiers: {names}")
    return row


def create_tenant(name: str, *, tier: str = "free", credits_gpu_s: float = 0.0,
                  settings: Settings | None = None) -> dict[str, Any]:
    """A new tenant with an opening grant of credits_gpu_s GPU-seconds. 409 if the name is taken."""
    _check_name(name)
    _check_grant(credits_gpu_s, allow_zero=True)
    with db.connection(settings) as conn:
        _require_tier(conn, tier)
        existing = conn.execute("SELECT id FROM tenants WHERE name = %s", (name,)).fetchone()
        if existing:
            raise Conflict(f"tenant {name!r} already exists", existing_id=str(existing["id"]))
        row = conn.execute("INSERT INTO tenants (name, tier) VALUES (%s, %s) RETURNING *",
                           (name, tier)).fetchone()
        if credits_gpu_s:
            _grant(conn, row["id"], credits_gpu_s, "opening grant")
    return get_tenant(name, settings=settings)


def _check_grant(seconds: float, *, allow_zero: bool = False) -> None:
    if not isinstance(seconds, (int, float)) or seconds != seconds or seconds < 0 \
            or (seconds == 0 and not allow_zero) or seconds > MAX_GRANT_S:
        raise BadInput(f"credits must be a positive number of GPU-seconds up to {MAX_GRANT_S:g}, "
                       f"got {seconds!r}")


def _grant(conn, tenant_id: Any, seconds: float, note: str) -> None:
    conn.execute("INSERT INTO usage_ledger (tenant_id, kind, credits_delta, note) "
                 "VALUES (%s, 'grant', %s, %s)", (tenant_id, float(seconds), note))


def grant_credits(name: str, seconds: float, *, note: str = "grant",
                  settings: Settings | None = None) -> dict[str, Any]:
    """Add seconds of GPU credit to a tenant; returns the tenant with its new balance."""
    _check_grant(seconds)
    with db.connection(settings) as conn:
        tenant = tenant_row(conn, name)
        _grant(conn, tenant["id"], seconds, note)
    return get_tenant(name, settings=settings)


def set_tier(name: str, tier: str, *, settings: Settings | None = None) -> dict[str, Any]:
    with db.connection(settings) as conn:
        _require_tier(conn, tier)
        tenant_row(conn, name)
        conn.execute("UPDATE tenants SET tier = %s WHERE name = %s", (tier, name))
    return get_tenant(name, settings=settings)


_TENANT_SQL = """
    SELECT t.id, t.name, t.tier, t.created_at, t.disabled_at, r.priority, r.paid,
           r.max_concurrent_jobs,
           COALESCE((SELECT sum(credits_delta) FROM usage_ledger u WHERE u.tenant_id = t.id), 0)
               AS credits_gpu_s
    FROM tenants t JOIN tiers r ON r.name = t.tier
"""


def tenant_row(conn, name: str, *, lock: bool = False) -> dict[str, Any]:
    if not isinstance(name, str) or not name:
        raise NotFound("unknown tenant: no tenant name given")
    if lock:
        # Serialises admissions of one tenant, so two requests cannot both take its last slot.
        conn.execute("SELECT 1 FROM tenants WHERE name = %s FOR UPDATE", (name,))
    row = conn.execute(_TENANT_SQL + " WHERE t.name = %s", (name,)).fetchone()
    if row is None:
        raise NotFound(f"unknown tenant {name!r}; an operator adds it with "
                       "`clipgate tenants add` or POST /v1/tenants")
    return row


def get_tenant(name: str, *, settings: Settings | None = None) -> dict[str, Any]:
    with db.connection(settings) as conn:
        return tenant_row(conn, name)


def list_tenants(settings: Settings | None = None) -> list[dict[str, Any]]:
    with db.connection(settings) as conn:
        return conn.execute(_TENANT_SQL + " ORDER BY t.name").fetchall()


def usage(*, tenant: str | None = None, settings: Settings | None = None) -> list[dict[str, Any]]:
    """Per tenant: jobs by outcome, GPU-seconds spent on generation and on gating, credits
    granted and left. One tenant when `tenant` is given (404 if unknown)."""
    settings = settings or get_settings()
    with db.connection(settings) as conn:
        if tenant is not None:
            tenant_row(conn, tenant)
        return conn.execute(
            """
            SELECT t.name AS tenant, t.tier,
                   COALESCE(l.granted, 0) AS credits_granted_gpu_s,
                   COALESCE(l.generation, 0) AS generation_gpu_s,
                   COALESCE(l.gating, 0) AS gating_gpu_s,
                   COALESCE(l.balance, 0) AS credits_left_gpu_s,
                   COALESCE(j.jobs, 0) AS jobs,
                   COALESCE(j.by_state, '{}'::jsonb) AS jobs_by_state
            FROM tenants t
            LEFT JOIN (
                SELECT tenant_id,
                       sum(credits_delta) FILTER (WHERE kind = 'grant') AS granted,
                       sum(gpu_seconds) FILTER (WHERE kind = 'generation') AS generation,
                       sum(gpu_seconds) FILTER (WHERE kind = 'gating') AS gating,
                       sum(credits_delta) AS balance
                FROM usage_ledger GROUP BY tenant_id) l ON l.tenant_id = t.id
            LEFT JOIN (
                SELECT tenant_id, sum(n)::bigint AS jobs, jsonb_object_agg(state, n) AS by_state
                FROM (SELECT tenant_id, state, count(*) AS n FROM generation_jobs
                      GROUP BY tenant_id, state) s GROUP BY tenant_id) j ON j.tenant_id = t.id
            WHERE %(name)s::text IS NULL OR t.name = %(name)s
            ORDER BY t.name
            """,
            {"name": tenant},
        ).fetchall()


def charge(conn, *, tenant_id: Any, job_id: Any, kind: str, gpu_seconds: float,
           wall_seconds: float) -> None:
    """Record what a job used (once per job and kind: a retried report is ignored)."""
    conn.execute(
        "INSERT INTO usage_ledger (tenant_id, job_id, kind, gpu_seconds, wall_seconds, "
        "credits_delta) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (tenant_id, job_id, kind, float(gpu_seconds), float(wall_seconds), -float(gpu_seconds)),
    )


def public_tenant(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": str(row["id"]), "name": row["name"], "tier": row["tier"], "paid": row["paid"],
        "priority": row["priority"], "max_concurrent_jobs": row["max_concurrent_jobs"],
        "credits_gpu_s": round(float(row["credits_gpu_s"]), 3),
        "created_at": row["created_at"].isoformat(),
    }

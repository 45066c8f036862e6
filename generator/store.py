"""PostgreSQL access for generation jobs, prompt screenings, tenants, tiers and the usage ledger.

Keyword-only, one statement each; the caller owns the transaction (every function takes its
connection). Job states are the caller's (generator.jobs): the queries that filter on them take
the states as a list.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

# The key of the advisory lock that admits one job at a time (see generator.admission).
ADMISSION_LOCK = 0x636C6970_0005

TENANT_SQL = """
    SELECT t.id, t.name, t.tier, t.created_at, t.disabled_at, r.priority, r.paid,
           r.max_concurrent_jobs,
           COALESCE((SELECT sum(credits_delta) FROM usage_ledger u WHERE u.tenant_id = t.id), 0)
               AS credits_gpu_s
    FROM tenants t JOIN tiers r ON r.name = t.tier
"""


def _json(value: Any) -> Any:
    return Jsonb(value) if isinstance(value, (dict, list)) else value


# --- tiers and tenants ----------------------------------------------------------------------


def tiers(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Every tier, lowest priority first."""
    return conn.execute("SELECT * FROM tiers ORDER BY priority").fetchall()


def get_tier(conn: psycopg.Connection, *, name: str) -> dict[str, Any] | None:
    return conn.execute("SELECT * FROM tiers WHERE name = %s", (name,)).fetchone()


def find_tenant_id(conn: psycopg.Connection, *, name: str) -> Any | None:
    row = conn.execute("SELECT id FROM tenants WHERE name = %s", (name,)).fetchone()
    return None if row is None else row["id"]


def insert_tenant(conn: psycopg.Connection, *, name: str, tier: str) -> dict[str, Any]:
    return conn.execute("INSERT INTO tenants (name, tier) VALUES (%s, %s) RETURNING *",
                        (name, tier)).fetchone()


def set_tenant_tier(conn: psycopg.Connection, *, name: str, tier: str) -> None:
    conn.execute("UPDATE tenants SET tier = %s WHERE name = %s", (tier, name))


def lock_tenant(conn: psycopg.Connection, *, name: str) -> None:
    """Hold the tenant's row until this transaction ends."""
    conn.execute("SELECT 1 FROM tenants WHERE name = %s FOR UPDATE", (name,))


def get_tenant(conn: psycopg.Connection, *, name: str) -> dict[str, Any] | None:
    """The tenant with its tier's terms and its credit balance (GPU-seconds)."""
    return conn.execute(TENANT_SQL + " WHERE t.name = %s", (name,)).fetchone()


def tenant_name(conn: psycopg.Connection, *, tenant_id: Any) -> str | None:
    row = conn.execute("SELECT name FROM tenants WHERE id = %s", (tenant_id,)).fetchone()
    return row["name"] if row else None


def tenants(conn: psycopg.Connection) -> list[dict[str, Any]]:
    """Every tenant as get_tenant() gives it, by name."""
    return conn.execute(TENANT_SQL + " ORDER BY t.name").fetchall()


def usage(conn: psycopg.Connection, *, tenant: str | None) -> list[dict[str, Any]]:
    """Per tenant (only this one when given), by name: jobs by state, GPU-seconds spent on
    generation and on gating, credits granted and left."""
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


# --- the usage ledger -----------------------------------------------------------------------


def insert_grant(conn: psycopg.Connection, *, tenant_id: Any, seconds: float, note: str) -> None:
    conn.execute("INSERT INTO usage_ledger (tenant_id, kind, credits_delta, note) "
                 "VALUES (%s, 'grant', %s, %s)", (tenant_id, float(seconds), note))


def insert_charge(conn: psycopg.Connection, *, tenant_id: Any, job_id: Any, kind: str,
                  gpu_seconds: float, wall_seconds: float) -> None:
    """What a job used, taken off the credits (once per job and kind: a repeat is ignored)."""
    conn.execute(
        "INSERT INTO usage_ledger (tenant_id, job_id, kind, gpu_seconds, wall_seconds, "
        "credits_delta) VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
        (tenant_id, job_id, kind, float(gpu_seconds), float(wall_seconds), -float(gpu_seconds)),
    )


# --- admission ------------------------------------------------------------------------------


def lock_admissions(conn: psycopg.Connection) -> None:
    """Hold the admission lock until this transaction ends."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (ADMISSION_LOCK,))


def job_by_key(conn: psycopg.Connection, *, tenant_id: Any, idempotency_key: str
               ) -> dict[str, Any] | None:
    return conn.execute(
        "SELECT * FROM generation_jobs WHERE tenant_id = %s AND idempotency_key = %s",
        (tenant_id, idempotency_key)).fetchone()


def uncharged_jobs(conn: psycopg.Connection, *, tenant_id: Any, states: list[str]) -> int:
    """The tenant's jobs in these states not yet charged for their generation."""
    return conn.execute(
        "SELECT count(*) AS n FROM generation_jobs j WHERE j.tenant_id = %s "
        "AND j.state = ANY(%s) AND NOT EXISTS (SELECT 1 FROM usage_ledger u "
        "WHERE u.job_id = j.id AND u.kind = 'generation')",
        (tenant_id, states)).fetchone()["n"]


def job_load(conn: psycopg.Connection, *, tenant_id: Any, states: list[str]) -> dict[str, Any]:
    """Of the jobs in these states: `queued`, those queued; `mine`, the tenant's."""
    return conn.execute(
        """
        SELECT count(*) FILTER (WHERE state = 'queued') AS queued,
               count(*) FILTER (WHERE tenant_id = %s) AS mine
        FROM generation_jobs WHERE state = ANY(%s)
        """, (tenant_id, states)).fetchone()


def insert_job(conn: psycopg.Connection, *, tenant_id: Any, user_ref: str,
               idempotency_key: str, prompt: str, prompt_sha256: str, params: dict[str, Any],
               backend: str, priority: int, max_attempts: int) -> dict[str, Any]:
    """A new queued job."""
    return conn.execute(
        """
        INSERT INTO generation_jobs (tenant_id, user_ref, idempotency_key, prompt,
            prompt_sha256, params, backend, priority, max_attempts)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING *
        """,
        (tenant_id, user_ref, idempotency_key, prompt, prompt_sha256, Jsonb(params), backend,
         priority, max_attempts),
    ).fetchone()


# --- jobs -----------------------------------------------------------------------------------


def get_job(conn: psycopg.Connection, *, job_id: Any) -> dict[str, Any] | None:
    """The job, with its tenant's name as `tenant`."""
    return conn.execute(
        "SELECT j.*, t.name AS tenant FROM generation_jobs j JOIN tenants t "
        "ON t.id = j.tenant_id WHERE j.id = %s", (job_id,)).fetchone()


def stale_jobs(conn: psycopg.Connection, *, states: list[str], lease_s: float
               ) -> list[dict[str, Any]]:
    """Jobs in these states whose lease ran out, or left in `gating` with no lease for over
    lease_s seconds, locked (those locked elsewhere are skipped)."""
    return conn.execute(
        """
        SELECT id, state, attempts, max_attempts FROM generation_jobs WHERE state = ANY(%s)
        AND (lease_until < now() OR (state = 'gating' AND lease_until IS NULL
             AND updated_at < now() - make_interval(secs => %s)))
        FOR UPDATE SKIP LOCKED
        """, (states, lease_s)).fetchall()


def fail_stale(conn: psycopg.Connection, *, job_id: Any, error: str) -> dict[str, Any]:
    return conn.execute(
        "UPDATE generation_jobs SET state = 'failed', lease_until = NULL, worker = NULL, "
        "error = %s, finished_at = now(), updated_at = now() WHERE id = %s RETURNING *",
        (error, job_id)).fetchone()


def requeue_stale(conn: psycopg.Connection, *, job_id: Any, error: str) -> dict[str, Any]:
    return conn.execute(
        "UPDATE generation_jobs SET state = 'queued', lease_until = NULL, worker = NULL, "
        "progress = 0, error = %s, updated_at = now() WHERE id = %s RETURNING *",
        (error, job_id)).fetchone()


def queued_count(conn: psycopg.Connection) -> int:
    return int(conn.execute(
        "SELECT count(*) AS n FROM generation_jobs WHERE state = 'queued'").fetchone()["n"])


def touch_due(conn: psycopg.Connection, *, after_s: float, limit: int) -> list[str]:
    """Bump updated_at of up to `limit` jobs queued for over after_s seconds since their last
    change, oldest first (those locked elsewhere are skipped). Returns their ids."""
    return [str(r["id"]) for r in conn.execute(
        """
        UPDATE generation_jobs SET updated_at = now() WHERE id IN (
            SELECT id FROM generation_jobs WHERE state = 'queued'
            AND updated_at < now() - make_interval(secs => %s)
            ORDER BY updated_at LIMIT %s FOR UPDATE SKIP LOCKED)
        RETURNING id
        """, (after_s, limit)).fetchall()]


def make_due(conn: psycopg.Connection, *, job_ids: list[str], after_s: float) -> None:
    """Undo touch_due for those of job_ids still queued."""
    conn.execute(
        "UPDATE generation_jobs SET updated_at = updated_at - make_interval(secs => %s)"
        " WHERE id = ANY(%s::uuid[]) AND state = 'queued'",
        (after_s, job_ids))


def lock_queued(conn: psycopg.Connection, *, job_id: Any | None = None) -> Any | None:
    """Lock job_id if it is queued, or with no job_id the next queued job (highest priority,
    then oldest); skips jobs locked elsewhere. Returns its id, or None."""
    if job_id is None:
        row = conn.execute(
            "SELECT id FROM generation_jobs WHERE state = 'queued' "
            "ORDER BY priority DESC, created_at LIMIT 1 FOR UPDATE SKIP LOCKED").fetchone()
    else:
        row = conn.execute(
            "SELECT id FROM generation_jobs WHERE id = %s AND state = 'queued' "
            "FOR UPDATE SKIP LOCKED", (job_id,)).fetchone()
    return None if row is None else row["id"]


def start_job(conn: psycopg.Connection, *, job_id: Any, lease_s: float, worker: str
              ) -> dict[str, Any]:
    """Into `screening` for a new attempt, with a fresh lease and fence."""
    return conn.execute(
        """
        UPDATE generation_jobs SET state = 'screening', attempts = attempts + 1,
            fence = fence + 1,
            lease_until = now() + make_interval(secs => %s), worker = %s, progress = 0.02,
            started_at = COALESCE(started_at, now()), updated_at = now()
        WHERE id = %s RETURNING *
        """, (lease_s, worker, job_id)).fetchone()


def lease_gating(conn: psycopg.Connection, *, job_id: Any, lease_s: float, worker: str
                 ) -> dict[str, Any] | None:
    """A fresh lease and fence on a job in `gating` that no live lease holds; None otherwise."""
    return conn.execute(
        """
        UPDATE generation_jobs SET lease_until = now() + make_interval(secs => %s),
            worker = %s, fence = fence + 1, updated_at = now()
        WHERE id = %s AND state = 'gating' AND (lease_until IS NULL OR lease_until < now())
        RETURNING *
        """, (lease_s, worker, job_id)).fetchone()


def next_lease_expiry_s(conn: psycopg.Connection, *, states: list[str]) -> float | None:
    """Seconds (negative when past) until the soonest lease of a job in these states runs out;
    None when none holds a lease."""
    row = conn.execute(
        "SELECT extract(epoch FROM min(lease_until) - now()) AS s FROM generation_jobs "
        "WHERE state = ANY(%s) AND lease_until IS NOT NULL", (states,)).fetchone()
    return None if row["s"] is None else float(row["s"])


def update_held_job(conn: psycopg.Connection, *, job_id: Any, fence: int, states: list[str],
                    fields: Mapping[str, Any], state: str | None = None, finish: bool = False,
                    lease_s: float | None = None) -> dict[str, Any] | None:
    """Write fields (column -> value; dicts and lists as JSON) of a job still at this fence and
    in one of these states; state: its new state; finish: stamp finished_at and drop the lease;
    lease_s: renew the lease for that long. None when the job is no longer so."""
    sets, args = ["updated_at = now()"], []
    if state is not None:
        sets.append("state = %s")
        args.append(state)
    if finish:
        sets += ["finished_at = now()", "lease_until = NULL"]
    if lease_s is not None:
        sets.append("lease_until = now() + make_interval(secs => %s)")
        args.append(lease_s)
    for k, v in fields.items():
        sets.append(f"{k} = %s")
        args.append(_json(v))
    return conn.execute(
        f"UPDATE generation_jobs SET {', '.join(sets)} WHERE id = %s AND fence = %s "
        "AND state = ANY(%s) RETURNING *",
        (*args, job_id, fence, states)).fetchone()


def settle_review(conn: psycopg.Connection, *, job_id: Any, state: str, release_id: Any | None,
                  error: str | None) -> dict[str, Any] | None:
    """Move a job in review to its reviewer's outcome (its verdict stays the gate's, review);
    None when it is not in review."""
    return conn.execute(
        "UPDATE generation_jobs SET state = %s, release_id = %s, error = %s, "
        "updated_at = now(), finished_at = now() "
        "WHERE id = %s AND state = 'in_review' RETURNING *",
        (state, release_id, error, job_id)).fetchone()


def delete_queued(conn: psycopg.Connection, *, job_id: Any) -> None:
    """Withdraw a job that is still queued."""
    conn.execute("DELETE FROM generation_jobs WHERE id = %s AND state = 'queued'", (job_id,))


# --- prompt screenings ----------------------------------------------------------------------


def get_screening(conn: psycopg.Connection, *, screening_id: Any) -> dict[str, Any] | None:
    return conn.execute(
        "SELECT id, decision, matches, signals FROM prompt_screenings WHERE id = %s",
        (screening_id,)).fetchone()


def insert_screening(conn: psycopg.Connection, *, job_id: Any, tenant_id: Any,
                     prompt_sha256: str, prompt: str, decision: str, matches: list[Any],
                     signals: dict[str, Any]) -> str:
    """Returns the screening's id."""
    row = conn.execute(
        "INSERT INTO prompt_screenings (job_id, tenant_id, prompt_sha256, prompt, decision, "
        "matches, signals) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (job_id, tenant_id, prompt_sha256, prompt, decision, Jsonb(matches),
         Jsonb(signals))).fetchone()
    return str(row["id"])

"""One release per generation job, enforced by the database.

A gating worker whose lease lapses mid-release can race the worker that took the job over; both
passed the release_of check before either inserted. The unique index makes the second insert fail
(and its transaction roll back), so a job is never released twice. It replaces the plain index
from 0003, whose `generator ? 'job_id'` predicate the planner cannot match to release_of's
`generator->>'job_id' = ...` anyway.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

INDEX = "releases_one_per_job"


def upgrade() -> None:
    # Fail with the jobs named, not a bare unique violation, if the race already happened here.
    dupes = op.get_bind().exec_driver_sql(
        "SELECT generator->>'job_id' AS job_id, count(*) AS n FROM releases "
        "WHERE generator->>'job_id' IS NOT NULL GROUP BY 1 HAVING count(*) > 1"
    ).fetchall()
    if dupes:
        listed = ", ".join(f"{job_id} ({n} releases)" for job_id, n in dupes)
        raise RuntimeError(
            f"migration 0004 needs at most one release per generation job, but these jobs have "
            f"more: {listed}. Revoke the extra releases and remove their job_id from "
            f"releases.generator, then migrate again.")
    op.execute(
        f"CREATE UNIQUE INDEX {INDEX} ON releases ((generator->>'job_id')) "
        "WHERE generator->>'job_id' IS NOT NULL; "
        "DROP INDEX IF EXISTS releases_generation_job"
    )


def downgrade() -> None:
    op.execute(
        "CREATE INDEX releases_generation_job ON releases ((generator->>'job_id')) "
        f"WHERE generator ? 'job_id'; DROP INDEX IF EXISTS {INDEX}"
    )

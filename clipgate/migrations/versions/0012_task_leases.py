"""Task leases: which worker holds a queued piece of work (a registration, a rescan, a triage),
until when, and how many takes it has had.

A worker takes the lease before it starts and renews it while it works; a clean end (success or a
recorded failure) gives it back. A lease that runs out means its worker died (SIGKILL, OOM, a lost
machine): the domain's recovery sweep sends the work again, or fails it with the reason once it
has lost too many workers. `attempts` counts the takes that did not end cleanly, the current one
included. holder NULL with a lease_until: a message is on its way, look again after that.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE task_leases (
            kind text NOT NULL,          -- 'register', 'rescan', 'triage'
            subject_id text NOT NULL,    -- the work, rescan or claim id
            attempts int NOT NULL DEFAULT 0,
            holder text,                 -- host:pid of the worker, NULL when none holds it
            lease_until timestamptz,
            updated_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (kind, subject_id)
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE task_leases")

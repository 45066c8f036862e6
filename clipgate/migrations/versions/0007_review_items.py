"""Held clips: a check with verdict `review` keeps a private copy of the clip for a person to
release or block.

state: pending (waiting for a reviewer), released (signed; release_id names the release) or
blocked (by a reviewer, or by the timeout: decision.timeout). revision counts changes, so a
decision drawn on a stale view is refused. One item per generation job at most: a retried job
finds the item its first attempt made.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE review_items (
            id uuid PRIMARY KEY,
            check_id uuid NOT NULL UNIQUE REFERENCES checks (id),
            created_at timestamptz NOT NULL DEFAULT now(),
            state text NOT NULL DEFAULT 'pending'
                CHECK (state IN ('pending', 'released', 'blocked')),
            revision int NOT NULL DEFAULT 1,
            source text NOT NULL,
            filename text,
            path text NOT NULL,
            file_sha256 text NOT NULL,
            size_bytes bigint NOT NULL,
            generator jsonb NOT NULL,
            held_by jsonb NOT NULL,
            decided_at timestamptz,
            decision jsonb,
            release_id uuid REFERENCES releases (id)
        );
        CREATE INDEX review_items_pending ON review_items (created_at) WHERE state = 'pending';
        CREATE UNIQUE INDEX review_items_one_per_job ON review_items ((generator->>'job_id'))
            WHERE generator->>'job_id' IS NOT NULL;
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE review_items")

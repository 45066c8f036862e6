"""The index's change log: one row per index version, written in the transaction that bumps it.

Every process holding an index applies the rows between its version and the database's (adds
read only the added work's frames; removals become tombstones) instead of rebuilding the whole
index from PostgreSQL. Old rows are pruned (`CLIPGATE_INDEX_CHANGE_LOG_KEEP`); a process whose
version is older than the oldest row rebuilds, as all did before.

kind: "add" (a work's frames became active), "remove" (a work's frames went), "policy" (the
version moved, the index's content did not), "rebuild" (the content changed wholesale: a
re-embedding, a bulk load; processes rebuild).

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE index_changes (
            epoch uuid NOT NULL,
            version bigint NOT NULL,
            kind text NOT NULL CHECK (kind IN ('add', 'remove', 'policy', 'rebuild')),
            work_id uuid,
            at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (version, epoch)
        );
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE index_changes")

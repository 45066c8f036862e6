"""The audit log becomes a hash chain: prev_hash and row_hash on every row.

row_hash = sha256(prev_hash || canonical(fields)) (clipgate.hashchain); the first row's prev_hash
is 32 zero bytes. Existing rows are chained here, in id order, with the append-only trigger
briefly off inside this migration's transaction; from now on complaints.audit.record computes
both hashes as it inserts, under an advisory lock.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

from clipgate import hashchain

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# The columns hashed, as complaints.audit.HASHED had them when this migration was written.
_HASHED = ("id", "at", "actor", "actor_role", "action", "subject_type", "subject_id", "claim_id",
           "from_state", "to_state", "reason", "detail")


def upgrade() -> None:
    conn = op.get_bind()
    conn.exec_driver_sql("LOCK TABLE audit_log IN EXCLUSIVE MODE")
    conn.exec_driver_sql("ALTER TABLE audit_log ADD COLUMN prev_hash bytea, "
                         "ADD COLUMN row_hash bytea")
    conn.exec_driver_sql("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_change")
    rows = conn.exec_driver_sql(
        f"SELECT {', '.join(_HASHED)} FROM audit_log ORDER BY id").mappings().all()
    prev = hashchain.GENESIS
    for row in rows:
        h = hashchain.link(prev, {c: row[c] for c in _HASHED})
        conn.exec_driver_sql("UPDATE audit_log SET prev_hash = %s, row_hash = %s WHERE id = %s",
                             (prev, h, row["id"]))
        prev = h
    conn.exec_driver_sql("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_change")
    conn.exec_driver_sql(
        "ALTER TABLE audit_log ALTER COLUMN prev_hash SET NOT NULL, "
        "ALTER COLUMN row_hash SET NOT NULL, "
        "ADD CONSTRAINT audit_log_hash_len CHECK "
        "(octet_length(prev_hash) = 32 AND octet_length(row_hash) = 32)")


def downgrade() -> None:
    op.execute("ALTER TABLE audit_log DROP CONSTRAINT audit_log_hash_len, "
               "DROP COLUMN prev_hash, DROP COLUMN row_hash")

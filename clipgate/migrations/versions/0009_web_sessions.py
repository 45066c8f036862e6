"""Server-side sessions of the web pages.

web_sessions: one row per signed-in session; the cookie carries its random id (only its sha256
is stored). Signing out deletes the row, so a copied cookie stops working at once, not when it
expires. The account's session_epoch still ends every session at once (sign out everywhere).

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE web_sessions (
            id_sha256 text PRIMARY KEY,
            account_id uuid NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz NOT NULL
        );
        CREATE INDEX web_sessions_account ON web_sessions (account_id);
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE web_sessions")

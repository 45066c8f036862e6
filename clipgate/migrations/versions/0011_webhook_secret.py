"""Each account gets a webhook signing secret: notices posted to its webhook are signed with it
(Standard Webhooks: webhook-id, webhook-timestamp, webhook-signature), so the receiver can tell
they came from clipgate and were not replayed.

accounts.webhook_secret: "whsec_" and the base64 of 32 random bytes (from two gen_random_uuid(),
PostgreSQL's strong random source, without needing pgcrypto). Existing accounts get one here.

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

# 32 bytes: the two UUIDs' hex digits; each UUID v4 holds 122 random bits.
NEW_SECRET = ("'whsec_' || encode(decode(replace(gen_random_uuid()::text || "
              "gen_random_uuid()::text, '-', ''), 'hex'), 'base64')")


def upgrade() -> None:
    op.execute(f"ALTER TABLE accounts ADD COLUMN webhook_secret text NOT NULL "
               f"DEFAULT ({NEW_SECRET})")


def downgrade() -> None:
    op.execute("ALTER TABLE accounts DROP COLUMN webhook_secret")

"""Policies beyond block and review, licences, and tracked matches.

works.policy gains `track` (release, record the match for the rights holder) and `allow`.

licences: a work (work_id), or every work of an owner (owner), licensed to a tenant (tenant_id,
the generator's tenant id as text: compliance keeps it as an opaque key and never reads the
tenants table; tenant_name is kept for people), optionally to one model, from valid_from until
valid_until (open-ended when NULL). A revoked licence stays, for the record of what it decided.

tracked_matches: a released clip's match with a work whose policy is `track` (rule 'track') or
that a licence released (rule 'licence', licence_id), so the rights holder sees the use, with
counts per model and tenant.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE works DROP CONSTRAINT IF EXISTS works_policy_check;
        ALTER TABLE works ADD CONSTRAINT works_policy_check
            CHECK (policy IN ('block', 'review', 'track', 'allow'));

        CREATE TABLE licences (
            id uuid PRIMARY KEY,
            created_at timestamptz NOT NULL DEFAULT now(),
            work_id uuid REFERENCES works (id),
            owner text,
            tenant_id text NOT NULL,
            tenant_name text NOT NULL,
            model text,
            valid_from timestamptz NOT NULL,
            valid_until timestamptz,
            note text,
            revoked_at timestamptz,
            revoked_reason text,
            CHECK ((work_id IS NULL) <> (owner IS NULL)),
            CHECK (valid_until IS NULL OR valid_until > valid_from)
        );
        CREATE INDEX licences_tenant ON licences (tenant_id) WHERE revoked_at IS NULL;

        CREATE TABLE tracked_matches (
            id bigserial PRIMARY KEY,
            created_at timestamptz NOT NULL DEFAULT now(),
            release_id uuid NOT NULL REFERENCES releases (id),
            check_id uuid NOT NULL REFERENCES checks (id),
            work_id uuid NOT NULL REFERENCES works (id),
            owner text NOT NULL,
            rule text NOT NULL CHECK (rule IN ('track', 'licence')),
            licence_id uuid REFERENCES licences (id),
            model text NOT NULL,
            tenant_id text,
            tenant_name text,
            frames_matched int NOT NULL,
            score real NOT NULL
        );
        CREATE INDEX tracked_matches_work ON tracked_matches (work_id, created_at);
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE tracked_matches;
        DROP TABLE licences;
        ALTER TABLE works DROP CONSTRAINT IF EXISTS works_policy_check;
        ALTER TABLE works ADD CONSTRAINT works_policy_check
            CHECK (policy IN ('block', 'review'));
        """
    )

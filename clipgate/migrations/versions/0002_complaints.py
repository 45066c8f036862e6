"""Complaints: accounts, claims and their workflow, the audit log, takedowns, retraining flags,
notifications, and the index of released clips.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- People who sign in to the web pages. The generator service has API keys only.
        CREATE TABLE accounts (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            email text NOT NULL CHECK (email = lower(email) AND position('@' in email) > 1),
            name text NOT NULL CHECK (length(name) > 0),
            organisation text,
            role text NOT NULL CHECK (role IN ('rights_holder', 'reviewer', 'admin')),
            password_hash text NOT NULL,
            webhook_url text,
            -- Bumped on password change or sign-out everywhere: older session cookies stop working.
            session_epoch int NOT NULL DEFAULT 0,
            created_at timestamptz NOT NULL DEFAULT now(),
            disabled_at timestamptz
        );
        CREATE UNIQUE INDEX accounts_email ON accounts (email);

        -- An API key may act for an account (a rights holder's or a reviewer's integration).
        ALTER TABLE api_keys ADD COLUMN account_id uuid REFERENCES accounts (id);

        -- Works a rights holder registered belong to their account; text for prompt screening.
        ALTER TABLE works ADD COLUMN account_id uuid REFERENCES accounts (id);
        ALTER TABLE works ADD COLUMN aliases jsonb NOT NULL DEFAULT '[]';
        ALTER TABLE works ADD COLUMN description text;
        CREATE INDEX works_account ON works (account_id);

        CREATE TABLE claims (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            number bigint GENERATED ALWAYS AS IDENTITY UNIQUE,  -- shown to people: "claim 17"
            claimant_id uuid NOT NULL REFERENCES accounts (id),
            -- The clip: a release, found by id, by its C2PA manifest, or by fingerprint.
            release_id uuid NOT NULL REFERENCES releases (id),
            clip_identified_by text NOT NULL
                CHECK (clip_identified_by IN ('release_id', 'manifest', 'fingerprint')),
            clip_upload jsonb,                 -- name, sha256, size of an uploaded copy
            work_id uuid NOT NULL REFERENCES works (id),
            statement jsonb NOT NULL,          -- good_faith, accurate, authorised, signature
            remedies jsonb NOT NULL,           -- subset of takedown, block, exclude_training
            details text,
            state text NOT NULL DEFAULT 'submitted' CHECK (state IN (
                'submitted', 'triaged', 'in_review', 'info_requested', 'upheld', 'rejected')),
            state_since timestamptz NOT NULL DEFAULT now(),
            -- Optimistic concurrency: every change bumps it; a form carries the one it was drawn at.
            revision int NOT NULL DEFAULT 1,
            priority int,                      -- 1 (urgent) .. 4 (low), set at triage
            score double precision,            -- the matcher's score for (clip, work)
            evidence jsonb,
            triage_error text,
            duplicate_of uuid REFERENCES claims (id),
            assignee_id uuid REFERENCES accounts (id),
            decision jsonb,                    -- outcome, actions, reason, by, at
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX claims_state ON claims (state, state_since);
        CREATE INDEX claims_claimant ON claims (claimant_id, created_at);
        -- A claimant files one claim per (clip, work); a second points to the first.
        CREATE UNIQUE INDEX claims_once ON claims (claimant_id, release_id, work_id);
        CREATE INDEX claims_clip_work ON claims (release_id, work_id);

        -- Requests for more information and the claimant's answers.
        CREATE TABLE claim_messages (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            claim_id uuid NOT NULL REFERENCES claims (id),
            author_id uuid REFERENCES accounts (id),
            kind text NOT NULL CHECK (kind IN ('info_request', 'answer', 'note')),
            body text NOT NULL CHECK (length(body) > 0),
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX claim_messages_claim ON claim_messages (claim_id, id);

        -- Append-only: who did what, when and why. Rows are never updated or deleted.
        CREATE TABLE audit_log (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            at timestamptz NOT NULL DEFAULT clock_timestamp(),
            actor text NOT NULL,               -- "account:<id>", "api_key:<id>", "system:<task>"
            actor_role text,
            action text NOT NULL,
            subject_type text NOT NULL,
            subject_id text,
            claim_id uuid REFERENCES claims (id),
            from_state text,
            to_state text,
            reason text,
            detail jsonb NOT NULL DEFAULT '{}'
        );
        CREATE INDEX audit_log_claim ON audit_log (claim_id, id);
        CREATE INDEX audit_log_subject ON audit_log (subject_type, subject_id, id);
        CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit_log is append-only';
        END $$;
        CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
            FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
        CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
            FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

        -- Released clips can be restored after a counter-notice: remember when and why.
        ALTER TABLE releases ADD COLUMN restored_at timestamptz;

        -- The index of released clips: frame hashes kept at release time, so an upload whose
        -- manifest was stripped can still be traced to its release.
        CREATE TABLE release_frames (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            release_id uuid NOT NULL REFERENCES releases (id) ON DELETE CASCADE,
            t_s double precision NOT NULL,
            pdq bytea NOT NULL,
            pdq_quality int NOT NULL,
            phash bytea NOT NULL
        );
        CREATE INDEX release_frames_release ON release_frames (release_id);

        -- A rescan of every active release against an upheld claim's work.
        CREATE TABLE rescans (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            claim_id uuid NOT NULL REFERENCES claims (id),
            work_id uuid NOT NULL REFERENCES works (id),
            action text NOT NULL CHECK (action IN ('revoke', 'flag')),
            state text NOT NULL DEFAULT 'queued'
                CHECK (state IN ('queued', 'running', 'done', 'failed')),
            total int,
            scanned int NOT NULL DEFAULT 0,
            matched int NOT NULL DEFAULT 0,
            error text,
            created_at timestamptz NOT NULL DEFAULT now(),
            started_at timestamptz,
            finished_at timestamptz
        );
        CREATE INDEX rescans_claim ON rescans (claim_id);

        -- What a claim took down or flagged, and the score that did it.
        CREATE TABLE takedowns (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            claim_id uuid NOT NULL REFERENCES claims (id),
            release_id uuid NOT NULL REFERENCES releases (id),
            action text NOT NULL CHECK (action IN ('revoked', 'flagged')),
            score double precision,
            via text NOT NULL CHECK (via IN ('claim', 'rescan')),
            created_at timestamptz NOT NULL DEFAULT now(),
            restored_at timestamptz,
            UNIQUE (claim_id, release_id)
        );

        -- A generator user's answer to an upheld takedown.
        CREATE TABLE counter_notices (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            claim_id uuid NOT NULL REFERENCES claims (id),
            release_id uuid NOT NULL REFERENCES releases (id),
            filed_by text NOT NULL,            -- "api_key:<id>"
            statement text NOT NULL CHECK (length(statement) > 0),
            contact text NOT NULL,
            state text NOT NULL DEFAULT 'waiting'
                CHECK (state IN ('waiting', 'restored', 'escalated')),
            restore_after timestamptz NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            resolved_at timestamptz,
            UNIQUE (claim_id, release_id)
        );

        -- For the ML team: a work, the claim, and the model versions whose outputs matched it.
        CREATE TABLE retraining_flags (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            work_id uuid NOT NULL REFERENCES works (id),
            claim_id uuid NOT NULL REFERENCES claims (id) UNIQUE,
            model_versions jsonb NOT NULL DEFAULT '[]',
            created_at timestamptz NOT NULL DEFAULT now(),
            handled_at timestamptz,
            handled_by text,
            handled_note text
        );

        -- An outbox: each notice is written with the decision, then sent (and retried) by a task.
        CREATE TABLE notifications (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            claim_id uuid REFERENCES claims (id),
            account_id uuid NOT NULL REFERENCES accounts (id),
            channel text NOT NULL CHECK (channel IN ('email', 'webhook')),
            target text NOT NULL,
            subject text NOT NULL,
            body jsonb NOT NULL,
            state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
            attempts int NOT NULL DEFAULT 0,
            last_error text,
            created_at timestamptz NOT NULL DEFAULT now(),
            sent_at timestamptz
        );
        CREATE INDEX notifications_pending ON notifications (state) WHERE state = 'pending';
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DROP TABLE notifications, retraining_flags, counter_notices, takedowns, rescans,
            release_frames, audit_log, claim_messages, claims CASCADE;
        DROP FUNCTION audit_log_append_only();
        ALTER TABLE releases DROP COLUMN restored_at;
        ALTER TABLE works DROP COLUMN account_id, DROP COLUMN aliases, DROP COLUMN description;
        ALTER TABLE api_keys DROP COLUMN account_id;
        DROP TABLE accounts;
        """
    )

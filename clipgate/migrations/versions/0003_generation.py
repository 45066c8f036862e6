"""Generation: tiers, tenants and their credits (a usage ledger), generation jobs, prompt screenings.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        -- A tier says how far ahead a tenant's jobs go (higher priority first) and how many may
        -- run at once. Paid tiers may fill the whole queue; free ones only part of it.
        CREATE TABLE tiers (
            name text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_-]{0,31}$'),
            priority int NOT NULL,
            max_concurrent_jobs int NOT NULL CHECK (max_concurrent_jobs > 0),
            paid boolean NOT NULL
        );
        INSERT INTO tiers (name, priority, max_concurrent_jobs, paid) VALUES
            ('free', 0, 1, false), ('pro', 10, 4, true), ('enterprise', 20, 16, true);

        CREATE TABLE tenants (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            name text NOT NULL UNIQUE CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$'),
            tier text NOT NULL REFERENCES tiers (name),
            created_at timestamptz NOT NULL DEFAULT now(),
            disabled_at timestamptz
        );

        -- Append-only money: grants add credits (GPU-seconds), jobs spend them. A tenant's
        -- balance is the sum of credits_delta.
        CREATE TABLE usage_ledger (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant_id uuid NOT NULL REFERENCES tenants (id),
            job_id uuid,
            kind text NOT NULL CHECK (kind IN ('grant', 'generation', 'gating')),
            gpu_seconds double precision NOT NULL DEFAULT 0 CHECK (gpu_seconds >= 0),
            wall_seconds double precision NOT NULL DEFAULT 0,
            credits_delta double precision NOT NULL,
            note text,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX usage_ledger_tenant ON usage_ledger (tenant_id, created_at);
        -- A job is charged once per kind, even when a retried worker reports twice.
        CREATE UNIQUE INDEX usage_ledger_once ON usage_ledger (job_id, kind) WHERE job_id IS NOT NULL;

        CREATE TABLE generation_jobs (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            tenant_id uuid NOT NULL REFERENCES tenants (id),
            user_ref text NOT NULL,
            idempotency_key text NOT NULL,
            prompt text NOT NULL,
            prompt_sha256 text NOT NULL,
            params jsonb NOT NULL,
            backend text NOT NULL,
            state text NOT NULL DEFAULT 'queued' CHECK (state IN (
                'queued', 'screening', 'generating', 'gating',
                'released', 'blocked', 'in_review', 'failed')),
            progress real NOT NULL DEFAULT 0 CHECK (progress >= 0 AND progress <= 1),
            priority int NOT NULL,
            attempts int NOT NULL DEFAULT 0,  -- generation tries, against max_attempts
            -- Fencing token: bumped by every claim (generation or gating); a write must name it.
            fence int NOT NULL DEFAULT 0,
            max_attempts int NOT NULL,
            -- A running stage holds a lease that its worker renews; an expired lease means the
            -- worker died, and the job is retried or failed (never left running, never lost).
            lease_until timestamptz,
            worker text,
            error text,
            warnings jsonb NOT NULL DEFAULT '[]',
            screening_id uuid,
            clip_path text,
            generator jsonb,                   -- model, version, device that made the clip
            check_id uuid REFERENCES checks (id),
            release_id uuid REFERENCES releases (id),
            verdict text,
            gpu_seconds double precision NOT NULL DEFAULT 0,
            gate_gpu_seconds double precision NOT NULL DEFAULT 0,
            timings jsonb NOT NULL DEFAULT '{}',
            created_at timestamptz NOT NULL DEFAULT now(),
            started_at timestamptz,
            finished_at timestamptz,
            updated_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (tenant_id, idempotency_key)
        );
        CREATE INDEX generation_jobs_queue ON generation_jobs (priority DESC, created_at)
            WHERE state = 'queued';
        CREATE INDEX generation_jobs_running ON generation_jobs (state, lease_until)
            WHERE state IN ('screening', 'generating', 'gating');
        CREATE INDEX generation_jobs_tenant ON generation_jobs (tenant_id, created_at);
        -- A generated clip's release names its job; gating looks it up so it never releases twice.
        CREATE INDEX releases_generation_job ON releases ((generator->>'job_id'))
            WHERE generator ? 'job_id';

        -- Every screening decision, with the works it matched and why.
        CREATE TABLE prompt_screenings (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            job_id uuid REFERENCES generation_jobs (id),
            tenant_id uuid REFERENCES tenants (id),
            prompt_sha256 text NOT NULL,
            prompt text NOT NULL,
            decision text NOT NULL CHECK (decision IN ('pass', 'warn', 'refuse')),
            matches jsonb NOT NULL,
            signals jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX prompt_screenings_job ON prompt_screenings (job_id);
        ALTER TABLE generation_jobs ADD CONSTRAINT generation_jobs_screening
            FOREIGN KEY (screening_id) REFERENCES prompt_screenings (id);
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP INDEX IF EXISTS releases_generation_job; "
        "DROP TABLE prompt_screenings, generation_jobs, usage_ledger, tenants, tiers CASCADE"
    )

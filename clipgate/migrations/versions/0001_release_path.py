"""The release path: works and their frames, the index version, checks, releases, API keys.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE index_state (
            id int PRIMARY KEY CHECK (id = 1),
            version bigint NOT NULL DEFAULT 0,
            -- Names this database's index history: an index file from another database (or an
            -- older backup) with the same version number must not be trusted.
            epoch uuid NOT NULL DEFAULT gen_random_uuid(),
            embedder text,
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        INSERT INTO index_state (id, version) VALUES (1, 0);

        CREATE TABLE works (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            owner text NOT NULL CHECK (length(owner) > 0),
            title text NOT NULL CHECK (length(title) > 0),
            policy text NOT NULL CHECK (policy IN ('block', 'review')),
            kind text NOT NULL CHECK (kind IN ('image', 'video')),
            filename text NOT NULL,
            sha256 text NOT NULL,
            size_bytes bigint NOT NULL,
            width int,
            height int,
            duration_s double precision,
            media_path text,
            status text NOT NULL DEFAULT 'active'
                CHECK (status IN ('pending', 'active', 'removed', 'failed')),
            error text,
            embedder text,
            created_at timestamptz NOT NULL DEFAULT now(),
            removed_at timestamptz
        );
        CREATE INDEX works_status ON works (status);
        -- One live registration per file.
        CREATE UNIQUE INDEX works_sha256_live ON works (sha256) WHERE status IN ('active', 'pending');

        -- One row per sampled frame; the id is the FAISS id.
        CREATE TABLE work_frames (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            work_id uuid NOT NULL REFERENCES works (id) ON DELETE CASCADE,
            t_s double precision NOT NULL,
            clip_embedding bytea NOT NULL,   -- float32, L2-normalised
            pdq bytea NOT NULL,              -- 32 bytes
            pdq_quality int NOT NULL,
            phash bytea NOT NULL             -- 8 bytes
        );
        CREATE INDEX work_frames_work ON work_frames (work_id);

        -- ORB keypoints of each work frame, for the geometric check of candidate pairs.
        CREATE TABLE work_frame_features (
            frame_id bigint PRIMARY KEY REFERENCES work_frames (id) ON DELETE CASCADE,
            width int NOT NULL,
            height int NOT NULL,
            keypoints bytea NOT NULL,        -- float32 (n, 2)
            descriptors bytea NOT NULL       -- uint8 (n, 32)
        );

        CREATE TABLE checks (
            id uuid PRIMARY KEY,
            created_at timestamptz NOT NULL DEFAULT now(),
            source text NOT NULL,
            filename text,
            sha256 text NOT NULL,
            size_bytes bigint NOT NULL,
            duration_s double precision,
            frames_sampled int NOT NULL,
            verdict text NOT NULL CHECK (verdict IN ('release', 'block', 'review')),
            reasons jsonb NOT NULL,
            index_version bigint NOT NULL,
            embedder text NOT NULL,
            clip_weights text NOT NULL,
            evidence jsonb NOT NULL,
            timings jsonb NOT NULL
        );
        CREATE INDEX checks_sha256 ON checks (sha256);

        CREATE TABLE releases (
            id uuid PRIMARY KEY,
            check_id uuid NOT NULL UNIQUE REFERENCES checks (id),
            created_at timestamptz NOT NULL DEFAULT now(),
            file_sha256 text NOT NULL,
            size_bytes bigint NOT NULL,
            path text NOT NULL,
            generator jsonb NOT NULL,
            manifest_label text,
            status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'revoked')),
            revoked_at timestamptz,
            revoked_reason text
        );
        CREATE INDEX releases_file_sha256 ON releases (file_sha256);

        CREATE TABLE api_keys (
            id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
            name text NOT NULL,
            role text NOT NULL DEFAULT 'generator',
            prefix text NOT NULL,
            key_hash text NOT NULL UNIQUE,
            created_at timestamptz NOT NULL DEFAULT now(),
            revoked_at timestamptz
        );
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP TABLE api_keys, releases, checks, work_frame_features, work_frames, works, "
        "index_state CASCADE"
    )

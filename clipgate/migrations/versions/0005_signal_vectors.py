"""Signal vectors stored generically, keyed by (frame, signal) with the version of their space.

Before, every signal had a column of its own in work_frames (clip_embedding, pdq, phash) and in
release_frames (pdq, phash). Now a frame's vectors are rows of work_frame_signals and
release_frame_signals, so a new signal (SSCD now, others later) needs no migration, and
index_signals records which version of each signal the stored vectors are, so vectors of two
models are never compared.

The hashes move over as they are (versions "pdq/1" and "phash/1"). CLIP embeddings move over only
when they came from real weights: random-weight vectors measure nothing, and CLIP is no longer
computed without a checkpoint. Works registered before SSCD get its vectors from
`clipgate index rebuild --reembed`.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE index_signals (
            signal text PRIMARY KEY,
            version text NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE work_frame_signals (
            frame_id bigint NOT NULL REFERENCES work_frames (id) ON DELETE CASCADE,
            signal text NOT NULL,
            version text NOT NULL,
            vector bytea NOT NULL,     -- float32 (d,) L2-normalised, or packed bits
            quality smallint,          -- 0..100 for signals that rate a frame's detail
            PRIMARY KEY (frame_id, signal)
        );
        CREATE INDEX work_frame_signals_signal ON work_frame_signals (signal, version);

        INSERT INTO work_frame_signals (frame_id, signal, version, vector, quality)
            SELECT id, 'pdq', 'pdq/1', pdq, pdq_quality FROM work_frames;
        INSERT INTO work_frame_signals (frame_id, signal, version, vector, quality)
            SELECT id, 'phash', 'phash/1', phash, NULL FROM work_frames;
        INSERT INTO work_frame_signals (frame_id, signal, version, vector, quality)
            SELECT f.id, 'clip', s.embedder, f.clip_embedding, NULL
            FROM work_frames f, index_state s
            WHERE s.embedder IS NOT NULL AND strpos(s.embedder, 'random-seed') = 0;
        INSERT INTO index_signals (signal, version)
            SELECT DISTINCT signal, version FROM work_frame_signals;

        ALTER TABLE work_frames DROP COLUMN clip_embedding, DROP COLUMN pdq, DROP COLUMN phash,
            DROP COLUMN pdq_quality;
        ALTER TABLE index_state DROP COLUMN embedder;
        ALTER TABLE works DROP COLUMN embedder;

        CREATE TABLE release_frame_signals (
            frame_id bigint NOT NULL REFERENCES release_frames (id) ON DELETE CASCADE,
            signal text NOT NULL,
            version text NOT NULL,
            vector bytea NOT NULL,
            quality smallint,
            PRIMARY KEY (frame_id, signal)
        );
        INSERT INTO release_frame_signals (frame_id, signal, version, vector, quality)
            SELECT id, 'pdq', 'pdq/1', pdq, pdq_quality FROM release_frames;
        INSERT INTO release_frame_signals (frame_id, signal, version, vector, quality)
            SELECT id, 'phash', 'phash/1', phash, NULL FROM release_frames;
        ALTER TABLE release_frames DROP COLUMN pdq, DROP COLUMN phash, DROP COLUMN pdq_quality;

        -- A check records the version of every signal it used, not one CLIP embedder.
        ALTER TABLE checks ADD COLUMN signals jsonb;
        UPDATE checks SET signals = jsonb_build_object('clip', embedder);
        ALTER TABLE checks DROP COLUMN embedder, DROP COLUMN clip_weights;
        """
    )


def downgrade() -> None:
    # Back to one column per signal. CLIP vectors that were not kept come back as zeros of the
    # random model's width, so run `clipgate index rebuild --reembed` on the old code after.
    op.execute(
        """
        ALTER TABLE checks ADD COLUMN embedder text, ADD COLUMN clip_weights text;
        UPDATE checks SET embedder = coalesce(signals->>'clip', 'none'),
            clip_weights = CASE WHEN signals ? 'clip' THEN 'checkpoint' ELSE 'random' END;
        ALTER TABLE checks ALTER COLUMN embedder SET NOT NULL,
            ALTER COLUMN clip_weights SET NOT NULL, DROP COLUMN signals;

        ALTER TABLE release_frames ADD COLUMN pdq bytea, ADD COLUMN phash bytea,
            ADD COLUMN pdq_quality int;
        UPDATE release_frames f SET pdq = s.vector, pdq_quality = coalesce(s.quality, 0)
            FROM release_frame_signals s WHERE s.frame_id = f.id AND s.signal = 'pdq';
        UPDATE release_frames f SET phash = s.vector
            FROM release_frame_signals s WHERE s.frame_id = f.id AND s.signal = 'phash';
        DELETE FROM release_frames WHERE pdq IS NULL OR phash IS NULL;
        ALTER TABLE release_frames ALTER COLUMN pdq SET NOT NULL,
            ALTER COLUMN phash SET NOT NULL, ALTER COLUMN pdq_quality SET NOT NULL;
        DROP TABLE release_frame_signals;

        ALTER TABLE works ADD COLUMN embedder text;
        ALTER TABLE index_state ADD COLUMN embedder text;
        ALTER TABLE work_frames ADD COLUMN clip_embedding bytea, ADD COLUMN pdq bytea,
            ADD COLUMN phash bytea, ADD COLUMN pdq_quality int;
        UPDATE work_frames f SET pdq = s.vector, pdq_quality = coalesce(s.quality, 0)
            FROM work_frame_signals s WHERE s.frame_id = f.id AND s.signal = 'pdq';
        UPDATE work_frames f SET phash = s.vector
            FROM work_frame_signals s WHERE s.frame_id = f.id AND s.signal = 'phash';
        UPDATE work_frames f SET clip_embedding = s.vector
            FROM work_frame_signals s WHERE s.frame_id = f.id AND s.signal = 'clip';
        UPDATE index_state SET embedder = (SELECT version FROM index_signals
                                           WHERE signal = 'clip');
        UPDATE work_frames SET clip_embedding = decode(repeat('00', 2048), 'hex')
            WHERE clip_embedding IS NULL;
        UPDATE index_state SET embedder = 'ViT-B-32:random-seed0' WHERE embedder IS NULL
            AND EXISTS (SELECT 1 FROM work_frames);
        DELETE FROM work_frames WHERE pdq IS NULL OR phash IS NULL;
        ALTER TABLE work_frames ALTER COLUMN clip_embedding SET NOT NULL,
            ALTER COLUMN pdq SET NOT NULL, ALTER COLUMN phash SET NOT NULL,
            ALTER COLUMN pdq_quality SET NOT NULL;
        DROP TABLE work_frame_signals;
        DROP TABLE index_signals;
        """
    )

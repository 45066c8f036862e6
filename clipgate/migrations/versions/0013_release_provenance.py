"""Provenance that survives stripping: each release keeps the manifest it was signed with and the
key its frames were watermarked with; a held clip keeps the key it was watermarked with before its
check, for the release a reviewer may make of it.

releases.manifest: the active C2PA manifest as read back after signing (JSON), shown by verify
when a copy is recovered without its own.
releases.watermark_key / review_items.watermark_key: the invisible watermark's key (40 bits;
NULL for releases made before watermarking). Unique among releases: a key names one release.
claims.clip_identified_by may now say 'watermark'.

Revision ID: 0013
Revises: 0012
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        ALTER TABLE releases ADD COLUMN manifest jsonb;
        ALTER TABLE releases ADD COLUMN watermark_key bigint;
        CREATE UNIQUE INDEX releases_watermark_key ON releases (watermark_key)
            WHERE watermark_key IS NOT NULL;
        ALTER TABLE review_items ADD COLUMN watermark_key bigint;
        ALTER TABLE claims DROP CONSTRAINT IF EXISTS claims_clip_identified_by_check;
        ALTER TABLE claims ADD CONSTRAINT claims_clip_identified_by_check
            CHECK (clip_identified_by IN ('release_id', 'manifest', 'watermark', 'fingerprint'));
        """
    )


def downgrade() -> None:
    op.execute(
        """
        ALTER TABLE claims DROP CONSTRAINT IF EXISTS claims_clip_identified_by_check;
        ALTER TABLE claims ADD CONSTRAINT claims_clip_identified_by_check
            CHECK (clip_identified_by IN ('release_id', 'manifest', 'fingerprint'));
        ALTER TABLE review_items DROP COLUMN watermark_key;
        DROP INDEX releases_watermark_key;
        ALTER TABLE releases DROP COLUMN watermark_key;
        ALTER TABLE releases DROP COLUMN manifest;
        """
    )

"""Test set-up: a fresh database on the real PostgreSQL, a fresh data directory per test, and
media made on the spot with PyAV and Pillow (never fetched)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from clipgate import db
from clipgate.settings import Settings
from tests.media import write_video  # noqa: F401  (re-exported for tests)

ADMIN_URL = os.environ.get("CLIPGATE_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
REDIS_URL = os.environ.get("CLIPGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A throwaway database on the machine's PostgreSQL, migrated once per test session."""
    name = f"clipgate_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    db.migrate(url)
    yield url
    db.close_pools()
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings for one test: its own data directory, an emptied database, no broker."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE releases, checks, work_frames, works, api_keys CASCADE")
        conn.execute("UPDATE index_state SET embedder = NULL")
    return Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        database_url=database_url,
        broker_url=None,
    )

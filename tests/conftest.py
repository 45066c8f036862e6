"""Test set-up: a fresh database on the real PostgreSQL, a fresh data directory per test, and
media made on the spot with PyAV and Pillow (never fetched)."""

from __future__ import annotations

import os
import shutil
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
        # The audit log refuses TRUNCATE by trigger; replica mode lets a test reset it.
        conn.execute("SET session_replication_role = replica")
        conn.execute(
            "TRUNCATE audit_log, notifications, retraining_flags, counter_notices, takedowns, "
            "rescans, release_frames, claim_messages, claims, releases, checks, work_frames, "
            "works, api_keys, accounts CASCADE"
        )
        conn.execute("SET session_replication_role = DEFAULT")
        conn.execute("UPDATE index_state SET embedder = NULL")
    return Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        database_url=database_url,
        broker_url=None,
    )


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
def browser_page():
    """A page in Debian's headless Chromium, driven by Playwright (no browser download here).
    Skips without Chromium, unless CLIPGATE_REQUIRE_BROWSER is set (CI), where it fails."""
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CLIPGATE_REQUIRE_BROWSER"):
            pytest.fail(f"Chromium not found at {CHROMIUM}")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser.new_page(viewport={"width": 390, "height": 844})  # a phone's screen
        browser.close()

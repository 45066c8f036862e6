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
import redis
from typer.testing import CliRunner

from clipgate import db
from clipgate.settings import Settings, get_settings
from tests.media import write_video  # noqa: F401  (re-exported for tests)

ADMIN_URL = os.environ.get("CLIPGATE_TEST_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _test_redis_url() -> str:
    """This test process's Redis database, which the tests flush. Under pytest-xdist (-n N) each
    worker needs its own: CLIPGATE_TEST_REDIS_URL may list one URL per worker, comma-separated;
    otherwise worker gwK takes the database K below the given one (15, 14, ... by default)."""
    urls = os.environ.get("CLIPGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15").split(",")
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    k = int(worker.removeprefix("gw") or 0)
    if k < len(urls):
        return urls[k].strip()
    base, _, number = urls[0].strip().rpartition("/")
    if int(number) - k < 1:  # never database 0, everyone's default
        raise RuntimeError(f"no Redis database left for xdist worker {worker}; list one per "
                           "worker in CLIPGATE_TEST_REDIS_URL")
    return f"{base}/{int(number) - k}"


REDIS_URL = _test_redis_url()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("clipgate")
    group.addoption("--long", action="store_true",
                    help="run the long versions of the fuzz suites (1,200 media cases)")
    group.addoption("--fuzz-cases", type=int, default=0, help="media fuzz cases (overrides --long)")
    group.addoption("--fuzz-seed", type=int, default=20261202, help="the media fuzz suite's seed")


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


# The tables the tests write; reset_database also empties every table that references one of
# them (as TRUNCATE ... CASCADE would). The index version and its epoch stay.
RESET_TABLES = (
    "task_leases", "prompt_screenings", "generation_jobs", "usage_ledger", "tenants", "audit_log",
    "notifications", "retraining_flags", "counter_notices", "takedowns", "rescans",
    "release_frames", "claim_messages", "claims", "tracked_matches", "licences", "review_items",
    "releases", "checks", "work_frames", "works", "api_keys", "web_sessions", "accounts")
_to_empty: dict[str, list[str]] = {}


def _tables_to_empty(conn: psycopg.Connection) -> list[str]:
    """RESET_TABLES and, transitively, every table with a foreign key to one of them."""
    refs = conn.execute("SELECT conrelid::regclass::text, confrelid::regclass::text "
                        "FROM pg_constraint WHERE contype = 'f'").fetchall()
    out = set(RESET_TABLES)
    grew = True
    while grew:
        grew = False
        for child, parent in refs:
            if parent in out and child not in out:
                out.add(child)
                grew = True
    return sorted(out)


def reset_database(database_url: str) -> None:
    """Empty every table the tests write (the index version and its epoch stay). DELETE, not
    TRUNCATE: on tables this small it is about ten times faster (TRUNCATE makes new files for
    each table), and it runs before every test. Replica mode fires no trigger: neither the audit
    log's refusal nor the foreign keys', so the order does not matter."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        if database_url not in _to_empty:
            _to_empty[database_url] = _tables_to_empty(conn)
        with conn.transaction():
            conn.execute("SET LOCAL session_replication_role = replica")
            for table in _to_empty[database_url]:
                conn.execute(f"DELETE FROM {table}")
        conn.execute("DELETE FROM index_signals")


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings for one test: its own data directory, an emptied database, no broker."""
    reset_database(database_url)
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


@pytest.fixture
def cli(settings, monkeypatch):
    """Run `clipgate ...` in-process against the test database and data directory."""
    from clipgate.cli import app

    runner = CliRunner()
    monkeypatch.setenv("CLIPGATE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("CLIPGATE_DATABASE_URL", settings.database_url)
    monkeypatch.delenv("CLIPGATE_BROKER_URL", raising=False)
    get_settings.cache_clear()
    yield lambda *args: runner.invoke(app, [str(a) for a in args])
    get_settings.cache_clear()


def flush_test_redis() -> None:
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).flushdb()
    except redis.ConnectionError:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}; start it (see README)")


@pytest.fixture
def broker_settings(settings, monkeypatch):
    """Settings with the test Redis as broker; a worker started from the environment (as
    `clipgate worker` is) sees the same database and data directory."""
    flush_test_redis()
    monkeypatch.setenv("CLIPGATE_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("CLIPGATE_DATABASE_URL", settings.database_url)
    get_settings.cache_clear()
    yield settings.model_copy(update={"broker_url": REDIS_URL, "result_backend": REDIS_URL})
    get_settings.cache_clear()

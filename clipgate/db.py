"""The database: where it is (configured or embedded), the connection pool, and migrations.

PostgreSQL is the source of truth. With no CLIPGATE_DATABASE_URL an embedded PostgreSQL (pgserver)
is started inside the data directory, so a newcomer needs no setup.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_exponential

from clipgate.errors import Unavailable
from clipgate.settings import Settings, get_settings

log = logging.getLogger(__name__)

_lock = threading.Lock()
_pools: dict[str, ConnectionPool] = {}
_embedded: dict[Path, object] = {}  # pgserver handles, kept alive for the process


# Errors of a reachable database whose transaction lost a race (a deadlock PostgreSQL broke, a
# lock or statement timeout, a serialisation failure): rolled back like a lost connection, but
# worth saying as what it is, so an operator does not look for an outage.
_CONTENTION = (psycopg.errors.DeadlockDetected, psycopg.errors.LockNotAvailable,
               psycopg.errors.SerializationFailure, psycopg.errors.QueryCanceled)


def unreachable(e: Exception) -> Unavailable:
    """The error callers see: no host, user or password from the driver's text (that is logged)."""
    if isinstance(e, _CONTENTION):
        log.warning("database busy (%s): %s", type(e).__name__, e)
        return Unavailable("the database was busy with a conflicting change; nothing was "
                           "changed, try again")
    log.error("database unreachable: %s", e)
    return Unavailable("database unreachable; nothing was changed")


def database_url(settings: Settings | None = None) -> str:
    """The configured URL, or the URL of the embedded server (started on first use)."""
    settings = settings or get_settings()
    if settings.database_url:
        return settings.database_url
    pgdata = settings.data_dir / "pgdata"
    with _lock:
        if pgdata not in _embedded:
            import pgserver  # imported lazily: only the embedded default needs it

            pgdata.parent.mkdir(parents=True, exist_ok=True)
            log.info("starting embedded PostgreSQL in %s", pgdata)
            _embedded[pgdata] = pgserver.get_server(pgdata, cleanup_mode="stop")
        return _embedded[pgdata].get_uri()  # type: ignore[attr-defined]


def sqlalchemy_url(url: str) -> str:
    """Alembic speaks SQLAlchemy URLs; point it at the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@retry(
    retry=retry_if_exception_type(psycopg.OperationalError),
    stop=stop_after_delay(20),
    wait=wait_exponential(multiplier=0.2, max=2),
    reraise=True,
)
def _wait_for(url: str) -> None:
    # A bounded retry while the database comes up (compose starts everything at once).
    with psycopg.connect(url, connect_timeout=3) as conn:
        conn.execute("SELECT 1")


def migrate(url: str | None = None, *, wait: bool = True) -> None:
    """Bring the schema to the newest revision (alembic upgrade head).

    wait: retry for a while until the database answers (start-up, `clipgate migrate`). The
    request path passes False, so a request fails fast when the database is down.
    """
    url = url or database_url()
    if wait:
        _wait_for(url)
    else:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.set_main_option("sqlalchemy.url", sqlalchemy_url(url).replace("%", "%%"))
    command.upgrade(cfg, "head")


def pool(settings: Settings | None = None) -> ConnectionPool:
    """The process-wide pool for this database, migrated on first use."""
    url = database_url(settings)
    with _lock:
        existing = _pools.get(url)
    if existing is not None:
        return existing
    try:
        migrate(url, wait=False)
    except psycopg.OperationalError as e:
        raise unreachable(e) from e
    # check: a connection is tried (one round trip) before it is handed out, so those a database
    # restart broke are replaced instead of failing the next requests one by one.
    new = ConnectionPool(
        url, min_size=1, max_size=8, kwargs={"row_factory": dict_row}, open=True, timeout=10,
        check=ConnectionPool.check_connection,
    )
    with _lock:
        if url in _pools:
            new.close()
        else:
            _pools[url] = new
        return _pools[url]


@contextmanager
def connection(settings: Settings | None = None) -> Iterator[psycopg.Connection]:
    """A pooled connection inside one transaction (committed on success, rolled back on error)."""
    try:
        p = pool(settings)
        cm = p.connection()
        conn = cm.__enter__()
    except (psycopg.OperationalError, TimeoutError) as e:
        raise unreachable(e) from e
    try:
        yield conn
    except BaseException as e:
        cm.__exit__(type(e), e, e.__traceback__)
        if isinstance(e, psycopg.OperationalError):
            # The server went away mid-transaction (a restart, a failover): rolled back, so fail
            # closed with 503 like an unreachable database, not with a 500.
            raise unreachable(e) from e
        raise
    else:
        try:
            cm.__exit__(None, None, None)  # commits
        except psycopg.OperationalError as e:
            raise unreachable(e) from e


def close_pools() -> None:
    with _lock:
        for p in _pools.values():
            p.close()
        _pools.clear()


def ping(settings: Settings | None = None) -> dict:
    """Health: can we reach the database, and where is it."""
    try:
        with connection(settings) as conn:
            conn.execute("SELECT 1")
        s = settings or get_settings()
        return {"ok": True, "embedded": s.embedded}
    except Exception as e:  # health reports, never raises
        log.error("database health check failed: %s", e)
        return {"ok": False, "error": "unreachable"}

"""The connection pool under a database that drops connections (a restart, a failover)."""

from __future__ import annotations

import psycopg
import pytest

from clipgate import db
from clipgate.errors import Unavailable


def test_a_connection_dropped_mid_transaction_is_unavailable(settings):
    # a 503, not a 500
    with pytest.raises(Unavailable, match="database unreachable"), db.connection(settings) as conn:
        conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
    with db.connection(settings) as conn:
        assert conn.execute("SELECT 1 AS one").fetchone()["one"] == 1


def test_pooled_connections_a_restart_broke_are_not_handed_out(settings):
    with db.connection(settings) as a, db.connection(settings) as b:  # two idle in the pool
        pids = [c.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"] for c in (a, b)]
    with psycopg.connect(settings.database_url, autocommit=True) as admin:
        for pid in pids:  # what a restart does to every connection
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    for _ in range(3):
        with db.connection(settings) as conn:
            assert conn.execute("SELECT 1 AS one").fetchone()["one"] == 1

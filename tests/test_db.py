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


def test_a_transaction_that_lost_a_lock_race_is_said_busy_not_unreachable(settings):
    """A lock timeout (as a deadlock or serialisation failure) rolls the transaction back and
    answers 503 like an outage, but says the database was busy: it used to say 'unreachable'."""
    with psycopg.connect(settings.database_url, autocommit=True) as holder:
        holder.execute("SELECT pg_advisory_lock(4242)")
        with pytest.raises(Unavailable, match="busy") as caught:
            with db.connection(settings) as conn:
                conn.execute("SET LOCAL lock_timeout = '100ms'")
                conn.execute("SELECT pg_advisory_xact_lock(4242)")
        assert "unreachable" not in str(caught.value)
        holder.execute("SELECT pg_advisory_unlock(4242)")
    with db.connection(settings) as conn:  # and the pool still serves
        assert conn.execute("SELECT 1 AS one").fetchone()["one"] == 1

"""The audit log's hash chain: every row links to the one before, writers never fork the chain,
and `clipgate audit verify` names the first row edited or removed behind the application's back."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import psycopg
from alembic import command
from alembic.config import Config
from psycopg.rows import dict_row

from clipgate import db, hashchain
from complaints import audit
from complaints.actors import system
from tests.conftest import ADMIN_URL

ACTOR = system("test")


def _write(settings, n: int) -> list[int]:
    ids = []
    for i in range(n):
        with db.connection(settings) as conn:
            row = audit.record(conn, ACTOR, "test.step", subject_type="thing",
                               subject_id=str(i), claim_id=None, reason=f"step {i} é",
                               detail={"i": i, "ratio": 0.1 * i, "nested": {"b": [1, "x"], "a": None},
                                       "text": "naïve ✓"})
            ids.append(row["id"])
    return ids


def _tamper(settings, sql: str, *args) -> None:
    """Change the log with SQL as an intruder with database rights would: triggers off (as
    tests/conftest.py does to reset the log)."""
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(sql, args)


def test_each_row_links_to_the_one_before_and_verify_passes(settings, cli):
    ids = _write(settings, 4)
    with db.connection(settings) as conn:
        rows = conn.execute("SELECT id, prev_hash, row_hash FROM audit_log ORDER BY id").fetchall()
    assert [r["id"] for r in rows] == ids
    assert bytes(rows[0]["prev_hash"]) == hashchain.GENESIS
    for before, after in zip(rows, rows[1:]):
        assert bytes(after["prev_hash"]) == bytes(before["row_hash"])
    result = cli("audit", "verify")
    assert result.exit_code == 0, result.output
    assert "intact: 4 row(s)" in result.output
    assert bytes(rows[-1]["row_hash"]).hex() in result.output


def test_a_row_edited_with_sql_is_named(settings, cli):
    ids = _write(settings, 5)
    _tamper(settings, "UPDATE audit_log SET reason = 'nothing happened' WHERE id = %s", ids[2])
    result = cli("audit", "verify")
    assert result.exit_code == 1
    assert f"broken at row {ids[2]}: its content does not match" in result.output
    out = json.loads(cli("audit", "verify", "--json").stdout)
    assert out["ok"] is False and out["broken"]["row_id"] == ids[2] and out["rows_checked"] == 3


def test_an_edited_detail_or_time_is_named_too(settings, cli):
    ids = _write(settings, 3)
    _tamper(settings, "UPDATE audit_log SET detail = jsonb_set(detail, '{i}', '7') WHERE id = %s",
            ids[1])
    assert f"broken at row {ids[1]}" in cli("audit", "verify").output
    reset_ids = ids
    _tamper(settings, "UPDATE audit_log SET detail = jsonb_set(detail, '{i}', '1') WHERE id = %s",
            reset_ids[1])
    assert cli("audit", "verify").exit_code == 0  # put back as it was: intact again
    _tamper(settings, "UPDATE audit_log SET at = at - interval '1 day' WHERE id = %s", ids[0])
    assert f"broken at row {ids[0]}" in cli("audit", "verify").output


def test_a_removed_row_breaks_the_link_of_the_next(settings, cli):
    ids = _write(settings, 4)
    _tamper(settings, "DELETE FROM audit_log WHERE id = %s", ids[1])
    result = cli("audit", "verify")
    assert result.exit_code == 1
    assert f"broken at row {ids[2]}: its link to the row before does not match" in result.output


def test_a_rewritten_row_with_a_recomputed_hash_breaks_the_next_link(settings, cli):
    """An intruder who also recomputes the edited row's own hash still breaks the row after."""
    ids = _write(settings, 3)
    with db.connection(settings) as conn:
        row = conn.execute(f"SELECT {', '.join(audit.HASHED)}, prev_hash FROM audit_log "
                           "WHERE id = %s", (ids[1],)).fetchone()
    fields = {c: row[c] for c in audit.HASHED} | {"reason": "rewritten"}
    _tamper(settings, "UPDATE audit_log SET reason = 'rewritten', row_hash = %s WHERE id = %s",
            hashchain.link(bytes(row["prev_hash"]), fields), ids[1])
    assert f"broken at row {ids[2]}: its link" in cli("audit", "verify").output


def test_a_second_writer_waits_for_the_first_so_the_chain_never_forks(settings):
    first = db.pool(settings).getconn()
    try:
        audit.record(first, ACTOR, "test.first", subject_type="thing")  # holds the chain's lock
        done = threading.Event()

        def second() -> None:
            with db.connection(settings) as conn:
                audit.record(conn, ACTOR, "test.second", subject_type="thing")
            done.set()

        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.5)
        assert not done.is_set(), "the second writer linked to the head before the first committed"
        first.commit()
        t.join(10)
        assert done.is_set()
    finally:
        db.pool(settings).putconn(first)
    with db.connection(settings) as conn:
        rows = conn.execute("SELECT action, prev_hash, row_hash FROM audit_log ORDER BY id").fetchall()
    assert [r["action"] for r in rows] == ["test.first", "test.second"]
    assert bytes(rows[1]["prev_hash"]) == bytes(rows[0]["row_hash"])
    assert audit.verify_chain(settings).broken is None


def test_concurrent_writers_keep_one_chain(settings):
    threads = [threading.Thread(target=_write, args=(settings, 8)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    result = audit.verify_chain(settings)
    assert result.broken is None and result.rows == 32


def test_the_migration_chains_the_rows_written_before_it(tmp_path: Path):
    """Rows from before the chain existed are backfilled in id order, and verify passes."""
    name = f"clipgate_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        cfg = Config()
        cfg.set_main_option("script_location", str(Path(db.__file__).parent / "migrations"))
        cfg.set_main_option("sqlalchemy.url", db.sqlalchemy_url(url))
        command.upgrade(cfg, "0008")
        with psycopg.connect(url) as conn:
            for i in range(3):
                conn.execute("INSERT INTO audit_log (actor, action, subject_type, reason, detail) "
                             "VALUES ('system:old', 'old.step', 'thing', %s, %s::jsonb)",
                             (f"old {i}", json.dumps({"i": i, "f": 1.5})))
        command.upgrade(cfg, "head")
        from clipgate.settings import Settings
        s = Settings(_env_file=None, data_dir=tmp_path, database_url=url, broker_url=None)
        with db.connection(s) as conn:
            audit.record(conn, ACTOR, "new.step", subject_type="thing")
        result = audit.verify_chain(s)
        assert result.broken is None and result.rows == 4
    finally:
        db.close_pools()
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_decision_and_a_writer_on_its_duplicate_never_deadlock(settings, tmp_path, holder,
                                                                  reviewer, copied_release):
    """Deciding a claim moves its open duplicates too. Those rows must be locked before the
    chain's lock: a move on a duplicate (assign, answer, decide, triage) locks the duplicate
    first and takes the chain's lock second, so the other order is a deadlock (a 500)."""
    from complaints import decide_claim, file_claim
    from tests.complaints.conftest import (
        STATEMENT,
        actor_of,
        file_and_assign,
        make_account,
        wait_until_blocked,
        work_image,
    )

    claim = file_and_assign(settings, tmp_path, holder, reviewer, copied_release)
    other = make_account(settings, "rights_holder")
    dup = file_claim(actor_of(other), release_id=str(copied_release["id"]),
                     work_path=work_image(tmp_path / "same.png"), work_title="Same",
                     statement=STATEMENT, remedies=["takedown"], settings=settings)
    # A move on the duplicate, half done: its row is locked, its audit row not yet written.
    mover = psycopg.connect(settings.database_url, row_factory=dict_row)
    try:
        mover.execute("SET lock_timeout = '15s'")
        mover.execute("SELECT 1 FROM claims WHERE id = %s FOR NO KEY UPDATE", (dup["id"],))
        outcome: dict = {}

        def decide() -> None:
            try:
                outcome["claim"] = decide_claim(
                    actor_of(reviewer), claim["id"], revision=claim["revision"],
                    outcome="reject", reason="Not a copy.", settings=settings)
            except Exception as e:  # noqa: BLE001 - reported by the assertion below
                outcome["error"] = e

        t = threading.Thread(target=decide)
        t.start()
        wait_until_blocked(settings, mover.info.backend_pid)
        # The move goes on: its audit row, then commit. Neither side may be chosen as a victim.
        audit.record(mover, ACTOR, "claim.assign", subject_type="claim",
                     subject_id=str(dup["id"]), claim_id=dup["id"])
        mover.commit()
        t.join(30)
    finally:
        mover.close()
    assert "error" not in outcome, outcome.get("error")
    assert outcome["claim"]["state"] == "rejected"
    with db.connection(settings) as conn:
        state = conn.execute("SELECT state FROM claims WHERE id = %s", (dup["id"],)).fetchone()
    assert state["state"] == "rejected"
    assert audit.verify_chain(settings).broken is None

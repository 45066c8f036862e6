"""What an upheld claim does, on real releases: the takedown (verify reports it revoked), the
block (the next check of the same content is blocked), the rescan with its progress, and the
retraining flag with the model versions whose outputs matched."""

from __future__ import annotations

import compliance
import index
from clipgate import db
from complaints import decide_claim, get_claim, list_flags
from tests.complaints.conftest import (
    actor_of,
    file_and_assign,
    make_account,
    noise_clip,
    photo_clip,
    release,
)


def test_upheld_takedown_and_block_change_what_clipgate_does(settings, tmp_path, holder,
                                                             reviewer, copied_release):
    claim = file_and_assign(settings, tmp_path, holder, reviewer, copied_release)
    # A second rights holder's claim on the same clip and work is decided with the first.
    other = make_account(settings, "rights_holder")
    from complaints import file_claim
    from tests.complaints.conftest import STATEMENT, work_image
    dup = file_claim(actor_of(other), release_id=str(copied_release["id"]),
                     work_path=work_image(tmp_path / "same.png"), work_title="Same",
                     statement=STATEMENT, remedies=["takedown"], settings=settings)
    assert dup["merged"] and dup["duplicate_of"] is None  # not the other claimant's claim id

    before = compliance.verify_clip(copied_release["path"], settings=settings)
    assert before["verified"] and before["release"]["status"] == "active"
    upheld = decide_claim(actor_of(reviewer), claim["id"], revision=claim["revision"],
                          outcome="uphold", reason="A frame-for-frame copy of the photo.",
                          actions=["takedown", "block", "exclude_training"], settings=settings)
    assert upheld["state"] == "upheld"

    after = compliance.verify_clip(copied_release["path"], settings=settings)
    assert after["release"]["status"] == "revoked" and not after["verified"]
    assert f"claim {claim['number']} upheld" in after["release"]["revoked_reason"]

    assert index.get_work(claim["work"]["id"], settings)["policy"] == "block"
    again = compliance.check_clip(photo_clip(tmp_path / "again.mp4"), settings=settings)
    assert again.verdict == "block"
    assert again.matches[0].work_id == claim["work"]["id"]

    mine = get_claim(actor_of(holder), claim["id"], settings=settings)
    assert [(t["release_id"], t["action"], t["via"], t["release_status"])
            for t in mine["takedowns"]] == [(str(copied_release["id"]), "revoked", "claim",
                                             "revoked")]
    flags = list_flags(actor_of(reviewer), settings=settings)
    assert [(f["claim_id"], f["work_id"], f["model_versions"]) for f in flags] == [
        (claim["id"], claim["work"]["id"], [{"model": "gen", "version": "1"}])]
    dup_view = get_claim(actor_of(other), dup["id"], settings=settings)
    assert dup_view["state"] == "upheld" and "via_claim" not in dup_view["decision"]
    assert claim["id"] not in str(dup_view)
    staff_view = get_claim(actor_of(reviewer), dup["id"], settings=settings)
    assert staff_view["decision"]["via_claim"] == staff_view["duplicate_of"] == claim["id"]
    assert [t["release_id"] for t in dup_view["takedowns"]] == [str(copied_release["id"])]
    actions = [h["action"] for h in get_claim(actor_of(reviewer), claim["id"],
                                              settings=settings)["history"]]
    assert {"work.block", "release.revoke", "flag.create", "claim.uphold"} <= set(actions)
    with db.connection(settings) as conn:
        told = conn.execute("SELECT subject FROM notifications WHERE claim_id = %s",
                            (claim["id"],)).fetchall()
    assert [t["subject"] for t in told] == [f"Claim {claim['number']} was upheld"]


def test_rescan_revokes_every_release_that_copies_the_work(settings, tmp_path, holder, reviewer):
    first = release(settings, photo_clip(tmp_path / "a.mp4"), model="gen", version="1")
    second = release(settings, photo_clip(tmp_path / "b.mp4", frames=48), model="gen",
                     version="2")
    unrelated = release(settings, noise_clip(tmp_path / "c.mp4", 3), model="other", version="9")
    claim = file_and_assign(settings, tmp_path, holder, reviewer, first)
    upheld = decide_claim(actor_of(reviewer), claim["id"], revision=claim["revision"],
                          outcome="uphold", reason="The model memorised the photo.",
                          actions=["rescan_revoke", "exclude_training"], settings=settings)
    assert upheld["rescan"] == {"id": upheld["rescan"]["id"], "action": "revoke", "state": "done",
                                "total": 3, "scanned": 3, "matched": 2, "error": None}
    status = {r["id"]: compliance.get_release(str(r["id"]), settings=settings)["status"]
              for r in (first, second, unrelated)}
    assert status == {first["id"]: "revoked", second["id"]: "revoked",
                      unrelated["id"]: "active"}
    assert sorted((t["release_id"], t["action"], t["via"]) for t in upheld["takedowns"]) == \
        sorted([(str(first["id"]), "revoked", "rescan"), (str(second["id"]), "revoked", "rescan")])
    assert all(t["score"] > 0.5 for t in upheld["takedowns"])
    flag = list_flags(actor_of(reviewer), settings=settings)[0]
    assert flag["model_versions"] == [{"model": "gen", "version": "1"},
                                      {"model": "gen", "version": "2"}]
    with db.connection(settings) as conn:
        told = conn.execute("SELECT subject, body FROM notifications WHERE claim_id = %s "
                            "ORDER BY id", (claim["id"],)).fetchall()
    assert [t["subject"] for t in told] == [f"Claim {claim['number']} was upheld",
                                            f"Claim {claim['number']}: the rescan is done"]
    assert "3 released clips" in told[1]["body"]["text"] and "2 matched" in told[1]["body"]["text"]


def test_rescan_that_flags_leaves_releases_active(settings, tmp_path, holder, reviewer):
    first = release(settings, photo_clip(tmp_path / "a.mp4"))
    unrelated = release(settings, noise_clip(tmp_path / "c.mp4", 3))
    claim = file_and_assign(settings, tmp_path, holder, reviewer, first)
    upheld = decide_claim(actor_of(reviewer), claim["id"], revision=claim["revision"],
                          outcome="uphold", reason="Flag for the legal team's records.",
                          actions=["rescan_flag"], settings=settings)
    assert upheld["rescan"]["state"] == "done" and upheld["rescan"]["matched"] == 1
    assert [(t["release_id"], t["action"]) for t in upheld["takedowns"]] == \
        [(str(first["id"]), "flagged")]
    for r in (first, unrelated):
        assert compliance.get_release(str(r["id"]), settings=settings)["status"] == "active"


def test_rescan_paused_by_a_part_that_is_down_carries_on_when_retried(settings, tmp_path, holder,
                                                                     reviewer, copied_release):
    """A transient error (Unavailable: here the CLIP checkpoint is missing) leaves the rescan
    queued for the task's retry, which then finishes it; only the last try marks it failed."""
    import pytest

    from clipgate.errors import Unavailable
    from complaints import takedown

    claim = file_and_assign(settings, tmp_path, holder, reviewer, copied_release)
    decide_claim(actor_of(reviewer), claim["id"], revision=claim["revision"], outcome="uphold",
                 reason="copy", actions=["block"], settings=settings)
    with db.connection(settings) as conn:
        ids = [str(conn.execute(
            "INSERT INTO rescans (claim_id, work_id, action) SELECT id, work_id, %s "
            "FROM claims WHERE id = %s RETURNING id", (action, claim["id"])).fetchone()["id"])
            for action in ("revoke", "flag")]
    down = settings.model_copy(update={"clip_checkpoint": tmp_path / "missing.pt"})
    with pytest.raises(Unavailable):
        takedown.run_rescan(ids[0], down, last_try=False)
    # The last try gives up: failed, with the reason.
    with pytest.raises(Unavailable):
        takedown.run_rescan(ids[1], down)
    with db.connection(settings) as conn:
        rows = {str(r["id"]): r for r in conn.execute(
            "SELECT id, state, error FROM rescans WHERE id = ANY(%s)", (ids,)).fetchall()}
    assert rows[ids[0]]["state"] == "queued" and "missing.pt" in rows[ids[0]]["error"]
    assert rows[ids[1]]["state"] == "failed" and "missing.pt" in rows[ids[1]]["error"]
    done = takedown.run_rescan(ids[0], settings, last_try=False)  # the retry
    assert (done["state"], done["scanned"], done["matched"], done["error"]) == ("done", 1, 1, None)
    assert compliance.get_release(str(copied_release["id"]), settings=settings)["status"] == \
        "revoked"


def test_block_and_takedown_are_audited_even_when_the_decision_fails(settings, tmp_path, holder,
                                                                     reviewer, copied_release):
    """Block and revoke commit on their own; if the decision's transaction then fails (here a
    trigger refuses the claim's move to upheld), their audit rows must still be there."""
    import psycopg
    import pytest

    claim = file_and_assign(settings, tmp_path, holder, reviewer, copied_release)
    with db.connection(settings) as conn:
        conn.execute("CREATE FUNCTION refuse_uphold() RETURNS trigger LANGUAGE plpgsql AS $$ "
                     "BEGIN RAISE EXCEPTION 'refused for the test'; END $$")
        conn.execute("CREATE TRIGGER refuse_uphold BEFORE UPDATE ON claims FOR EACH ROW "
                     "WHEN (NEW.state = 'upheld') EXECUTE FUNCTION refuse_uphold()")
    try:
        with pytest.raises(psycopg.Error, match="refused for the test"):
            decide_claim(actor_of(reviewer), claim["id"], revision=claim["revision"],
                         outcome="uphold", reason="copy", actions=["takedown", "block"],
                         settings=settings)
    finally:
        with db.connection(settings) as conn:
            conn.execute("DROP TRIGGER refuse_uphold ON claims")
            conn.execute("DROP FUNCTION refuse_uphold()")
    after = get_claim(actor_of(reviewer), claim["id"], settings=settings)
    assert after["state"] == "in_review"
    assert compliance.get_release(str(copied_release["id"]), settings=settings)["status"] == \
        "revoked"
    assert index.get_work(after["work"]["id"], settings)["policy"] == "block"
    actions = {h["action"] for h in after["history"]}
    assert {"work.block", "release.revoke"} <= actions and "claim.uphold" not in actions


def test_a_rescan_step_and_a_writer_on_its_rescan_never_deadlock(settings, tmp_path, holder,
                                                                 reviewer, copied_release):
    """A rescan's step counts its progress on the rescan's row before it takes the audit chain's
    lock, as every other writer of that row does (_finish, _requeue: the row, then the chain);
    the other order is a deadlock with them."""
    import threading

    import psycopg
    from psycopg.rows import dict_row

    from complaints import audit, takedown
    from tests.complaints.conftest import wait_until_blocked

    claim = file_and_assign(settings, tmp_path, holder, reviewer, copied_release)
    with db.connection(settings) as conn:
        rescan = conn.execute(
            "INSERT INTO rescans (claim_id, work_id, action) SELECT id, work_id, 'flag' "
            "FROM claims WHERE id = %s RETURNING *", (claim["id"],)).fetchone()
    # Another writer of the rescan's row (as _finish does), half done: row locked, not audited.
    writer = psycopg.connect(settings.database_url, row_factory=dict_row)
    outcome: dict = {}
    try:
        writer.execute("SET lock_timeout = '15s'")
        writer.execute("UPDATE rescans SET error = 'pausing' WHERE id = %s", (rescan["id"],))

        def step() -> None:
            try:
                takedown.scan_one(rescan, {"id": claim["id"], "number": claim["number"]},
                                   compliance.get_release(str(copied_release["id"]),
                                                          settings=settings), settings)
            except Exception as e:  # noqa: BLE001 - reported by the assertion below
                outcome["error"] = e

        t = threading.Thread(target=step)
        t.start()
        wait_until_blocked(settings, writer.info.backend_pid, timeout=120)
        try:
            audit.record(writer, takedown.RESCAN_TASK, "rescan.retry", subject_type="rescan",
                         subject_id=str(rescan["id"]), claim_id=claim["id"])
            writer.commit()
        except psycopg.Error as e:
            outcome["writer"] = e
            writer.rollback()
        t.join(60)
    finally:
        writer.close()
    assert not outcome, outcome
    with db.connection(settings) as conn:
        row = conn.execute("SELECT scanned, matched FROM rescans WHERE id = %s",
                           (rescan["id"],)).fetchone()
    assert (row["scanned"], row["matched"]) == (1, 1)
    assert audit.verify_chain(settings).broken is None


def test_a_rescan_whose_lease_was_taken_over_stops_and_leaves_it_to_the_new_worker(
        settings, tmp_path, holder, reviewer, copied_release):
    """A worker that stalled past its lease (another took the rescan over: Lease.lost) scans no
    further release and finishes nothing; the worker that took over completes the rescan."""
    import pytest

    from clipgate import leases
    from complaints import takedown

    claim = file_and_assign(settings, tmp_path, holder, reviewer, copied_release)
    decide_claim(actor_of(reviewer), claim["id"], revision=claim["revision"], outcome="uphold",
                 reason="copy", actions=["block"], settings=settings)
    with db.connection(settings) as conn:
        rid = str(conn.execute(
            "INSERT INTO rescans (claim_id, work_id, action) SELECT id, work_id, 'revoke' "
            "FROM claims WHERE id = %s RETURNING id", (claim["id"],)).fetchone()["id"])
    stalled = leases.Lease(takedown.LEASE_KIND, rid, "stalled-worker:1", 1)
    stalled.lost.set()
    with pytest.raises(leases.LeaseLost):
        takedown.run_rescan(rid, settings, lease=stalled)
    with db.connection(settings) as conn:
        row = conn.execute("SELECT state, scanned, error FROM rescans WHERE id = %s",
                           (rid,)).fetchone()
    assert (row["state"], row["scanned"], row["error"]) == ("running", 0, None)
    assert compliance.get_release(str(copied_release["id"]), settings=settings)["status"] == \
        "active"
    done = takedown.run_rescan(rid, settings)  # the worker that took it over
    assert (done["state"], done["scanned"], done["matched"]) == ("done", 1, 1)

"""Task leases (clipgate.leases) and the recovery sweeps that use them: a registration, rescan or
triage whose worker died is sent again, and one that lost too many workers fails with a reason
instead of coming back for ever."""

from __future__ import annotations

import time

import index
from clipgate import db, leases
from complaints import file_claim, get_claim, takedown, triage
from index import tasks as index_tasks
from tests.complaints.conftest import (
    STATEMENT,
    actor_of,
    make_account,
    noise_clip,
    release,
    work_image,
)
from tests.conftest import flush_test_redis
from tests.media import noise_frame, write_video

DEAD_BROKER = "redis://127.0.0.1:1/0"


def _lost(settings, kind: str, subject_id: str, attempts: int) -> None:
    """As if `attempts` workers took the work and died: the last lease ran out a while ago."""
    with db.connection(settings) as conn:
        conn.execute("INSERT INTO task_leases (kind, subject_id, attempts, holder, lease_until) "
                     "VALUES (%s, %s, %s, 'gone:1', now() - interval '1 minute')",
                     (kind, subject_id, attempts))


def _lease(settings, kind: str, subject_id: str):
    with db.connection(settings) as conn:
        return conn.execute("SELECT * FROM task_leases WHERE kind = %s AND subject_id = %s",
                            (kind, subject_id)).fetchone()


def test_a_lease_is_held_once_until_it_runs_out(settings):
    with db.connection(settings) as conn:
        first = leases.take(conn, kind="k", subject_id="1", lease_s=0.5, holder="a:1")
        assert first.attempts == 1
        assert leases.take(conn, kind="k", subject_id="1", lease_s=0.5, holder="b:2") is None
        assert leases.renew(conn, first, 0.5)
    time.sleep(0.7)  # the lease runs out: holder a is taken to be dead
    with db.connection(settings) as conn:
        second = leases.take(conn, kind="k", subject_id="1", lease_s=30, holder="b:2")
        assert second.attempts == 2 and not leases.renew(conn, first, 30)
        leases.give_back(conn, second, wait_s=30)  # a clean end is not a lost worker
    assert _lease(settings, "k", "1")["attempts"] == 1
    with leases.held(settings, kind="k", subject_id="1") as lease:
        assert lease is not None and lease.attempts == 2
    assert _lease(settings, "k", "1") is None  # finished: forgotten


def test_a_registration_that_keeps_killing_its_worker_fails_with_the_reason(settings, tmp_path):
    video = write_video(tmp_path / "v.mp4", [noise_frame(i) for i in range(24)])
    work = index.create_pending_work(video, owner="o", title="t", policy="block",
                                     settings=settings)
    work_id = str(work["id"])
    _lost(settings, index_tasks.LEASE_KIND, work_id, settings.task_max_attempts)
    # The message comes back once more (Celery's reject_on_worker_lost): it does not run again.
    result = index_tasks.submit_register(work_id, settings).result  # in-process: no broker
    assert result["status"] == "failed" and "worker was lost 3 time(s)" in result["error"]


def test_the_sweep_fails_a_registration_out_of_attempts_and_resends_the_others(
        settings, tmp_path):
    from tests.conftest import REDIS_URL

    flush_test_redis()
    s = settings.model_copy(update={"broker_url": REDIS_URL, "result_backend": REDIS_URL})
    works = [str(index.create_pending_work(
        write_video(tmp_path / f"v{i}.mp4", [noise_frame(10 * i + j) for j in range(24)]),
        owner="o", title=f"t{i}", policy="block", settings=s)["id"]) for i in range(3)]
    _lost(s, index_tasks.LEASE_KIND, works[0], s.task_max_attempts)
    _lost(s, index_tasks.LEASE_KIND, works[1], 1)
    with db.connection(s) as conn:  # works[2] was never taken: its message was lost
        conn.execute("UPDATE works SET created_at = now() - interval '1 hour'")
    assert index_tasks.recover_registrations(s) == {"resent": 2, "failed": 1}
    failed = index.get_work(works[0], settings=s)
    assert failed["status"] == "failed" and "not retried again" in failed["error"]
    assert _lease(s, index_tasks.LEASE_KIND, works[0]) is None
    assert _lease(s, index_tasks.LEASE_KIND, works[1])["holder"] is None
    # Sent: not again until a lease period has passed.
    assert index_tasks.recover_registrations(s) == {"resent": 0, "failed": 0}


def _submitted_claim(settings, tmp_path):
    """A claim filed while the broker was down: it stays submitted, untriaged."""
    holder = make_account(settings, "rights_holder")
    rel = release(settings, noise_clip(tmp_path / "c.mp4", 3))
    down = settings.model_copy(update={"broker_url": DEAD_BROKER})
    claim = file_claim(actor_of(holder), release_id=str(rel["id"]),
                       work_path=work_image(tmp_path / "w.png"), work_title="Astronaut",
                       statement=STATEMENT, remedies=["takedown"], settings=down)
    assert claim["state"] == "submitted"
    return claim


def test_a_triage_that_keeps_killing_its_worker_reaches_the_queue_with_the_reason(
        settings, tmp_path):
    claim = _submitted_claim(settings, tmp_path)
    _lost(settings, triage.LEASE_KIND, str(claim["id"]), settings.task_max_attempts)
    assert triage.retriage_stuck(settings) == 1
    reviewer = make_account(settings, "reviewer")
    done = get_claim(actor_of(reviewer), claim["id"], settings=settings)
    assert done["state"] == "triaged" and done["priority"] == 2
    assert "worker was lost 3 time(s)" in done["triage_error"]
    assert _lease(settings, triage.LEASE_KIND, str(claim["id"])) is None


def test_a_rescan_that_keeps_killing_its_worker_fails_with_the_reason(settings, tmp_path):
    claim = _submitted_claim(settings, tmp_path)
    with db.connection(settings) as conn:
        rescan_id = str(conn.execute(
            "INSERT INTO rescans (claim_id, work_id, action, state, started_at) "
            "SELECT id, work_id, 'revoke', 'running', now() FROM claims WHERE id = %s "
            "RETURNING id", (claim["id"],)).fetchone()["id"])
    _lost(settings, takedown.LEASE_KIND, rescan_id, settings.task_max_attempts)
    assert takedown.recover_rescans(settings) == {"resent": 0, "failed": 1}
    with db.connection(settings) as conn:
        row = conn.execute("SELECT state, error FROM rescans WHERE id = %s",
                           (rescan_id,)).fetchone()
    assert row["state"] == "failed" and "worker was lost 3 time(s)" in row["error"]


def test_a_clean_end_leaves_alone_a_lease_another_worker_took_over(settings):
    """A worker whose lease ran out (and was taken over) forgets only its own lease when it ends:
    the live worker that took it keeps its lease and its count of lost workers."""
    with leases.held(settings, kind="k", subject_id="2") as lease:
        assert lease is not None
        with db.connection(settings) as conn:  # as another worker's take after the lease ran out
            conn.execute("UPDATE task_leases SET holder = 'b:2', attempts = attempts + 1, "
                         "lease_until = now() + interval '1 hour' WHERE kind = 'k' "
                         "AND subject_id = '2'")
    kept = _lease(settings, "k", "2")
    assert kept is not None and (kept["holder"], kept["attempts"]) == ("b:2", 2)

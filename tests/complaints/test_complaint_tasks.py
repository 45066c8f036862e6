"""Triage and rescans on a real Celery worker over the machine's Redis, and the released-clips
index written with each release."""

from __future__ import annotations

import time

import pytest
from celery.contrib.testing.worker import start_worker

import compliance
import clipgate.tasks  # noqa: F401  (the worker's assembly: installs every domain's tasks)
from clipgate import db, queue
from clipgate.errors import NotFound
from complaints import decide_claim, file_claim, get_claim
from tests.complaints.conftest import (
    STATEMENT,
    actor_of,
    make_account,
    noise_clip,
    photo_clip,
    release,
    work_image,
)


def _wait_for(fn, timeout=180.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError("timed out")


def test_triage_and_rescan_run_on_a_worker(broker_settings, tmp_path):
    s = broker_settings
    holder = make_account(s, "rights_holder")
    reviewer = make_account(s, "reviewer")
    copied = release(s, photo_clip(tmp_path / "a.mp4"))
    other = release(s, noise_clip(tmp_path / "b.mp4", 4))
    app = queue.app_for(s)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        claim = file_claim(actor_of(holder), release_id=str(copied["id"]),
                           work_path=work_image(tmp_path / "w.png"), work_title="Astronaut",
                           statement=STATEMENT, remedies=["takedown"], settings=s)
        assert claim["state"] == "submitted"  # queued, not run here
        rev = actor_of(reviewer)
        triaged = _wait_for(lambda: (c := get_claim(rev, claim["id"], settings=s))["state"]
                            == "triaged" and c)
        assert triaged["score"] > 0.5 and triaged["evidence"]["frames_matched"] >= 2
        from complaints import assign_claim
        mine = assign_claim(rev, claim["id"], revision=triaged["revision"], settings=s)
        decided = decide_claim(rev, claim["id"], revision=mine["revision"], outcome="uphold",
                               reason="copy", actions=["rescan_revoke"], settings=s)
        assert decided["rescan"]["state"] in ("queued", "running", "done")
        done = _wait_for(lambda: (c := get_claim(rev, claim["id"], settings=s))["rescan"][
            "state"] == "done" and c)
    assert (done["rescan"]["total"], done["rescan"]["scanned"], done["rescan"]["matched"]) == \
        (2, 2, 1)
    assert compliance.get_release(str(copied["id"]), settings=s)["status"] == "revoked"
    assert compliance.get_release(str(other["id"]), settings=s)["status"] == "active"


def test_a_release_indexes_its_frames_with_the_release_row(settings, tmp_path):
    from compliance import check_clip

    rel = release(settings, noise_clip(tmp_path / "n.mp4", 11))
    with db.connection(settings) as conn:
        rows = conn.execute("SELECT id, t_s FROM release_frames WHERE release_id = %s "
                            "ORDER BY t_s", (rel["id"],)).fetchall()
        vectors = conn.execute(
            "SELECT s.signal, length(s.vector) AS n, count(*) AS frames FROM "
            "release_frame_signals s JOIN release_frames f ON f.id = s.frame_id "
            "WHERE f.release_id = %s GROUP BY 1, 2", (rel["id"],)).fetchall()
    frames = check_clip(tmp_path / "n.mp4", settings=settings).frames_sampled
    assert len(rows) == frames >= 3
    # Every frame carries every signal the gate computed: the same vectors it matched with.
    assert {(v["signal"], v["n"], v["frames"]) for v in vectors} == {
        ("pdq", 32, frames), ("phash", 8, frames), ("sscd", 2048, frames)}
    # A clip the gate stops is never released, so it is never indexed either.
    import index
    from tests.media import photo, write_image
    index.register_work(write_image(tmp_path / "c.png", photo("coffee")), owner="o", title="t",
                        policy="block", settings=settings)
    outcome = compliance.release_clip(photo_clip(tmp_path / "c.mp4", "coffee"),
                                      generator={"model": "g", "version": "1"}, settings=settings)
    assert not outcome.released
    with db.connection(settings) as conn:
        assert conn.execute("SELECT count(*) AS n FROM release_frames").fetchone()["n"] == \
            len(rows)


def test_releases_made_before_the_index_can_be_indexed_later(settings, tmp_path):
    from complaints.released import identify_clip
    from tests.complaints.conftest import strip_manifest

    rel = release(settings, photo_clip(tmp_path / "old.mp4"))
    with db.connection(settings) as conn:
        # As if released before this index and the watermark existed.
        conn.execute("DELETE FROM release_frames")
        conn.execute("UPDATE releases SET watermark_key = NULL")
    stripped = strip_manifest(rel["path"], tmp_path / "stripped.mp4")
    with pytest.raises(NotFound, match="not one clipgate released"):
        identify_clip(stripped, settings=settings)
    assert compliance.backfill_release_frames(settings) == 1
    assert compliance.backfill_release_frames(settings) == 0  # once
    assert identify_clip(stripped, settings=settings).release["id"] == rel["id"]

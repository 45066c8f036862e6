"""SIGKILL a real Celery worker in the middle of each kind of task, start another, and check that
the work ends done (or failed with a reason): never stuck, never lost, never released unchecked.

The first worker is paused inside the task (tests/faults/paused_worker.py) so the kill lands
mid-task, then killed with its pool processes (an OOM kill, a lost host): its message stays
unacknowledged in Redis, which would hand it out again only after an hour. The second worker
runs the recovery sweeps (--beat, every second here): they notice the run-out lease and send the
work again.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import compliance
import index
from clipgate import apikeys, db
from clipgate.app import create_app
from complaints import assign_claim, decide_claim, file_claim, get_claim
from generator import jobs, tenants
from index import tasks as index_tasks
from tests.complaints.conftest import (
    STATEMENT,
    actor_of,
    make_account,
    noise_clip,
    photo_clip,
    release,
    work_image,
)
from tests.faults.conftest import wait_for
from tests.media import pan, photo, write_video

pytestmark = pytest.mark.slow

DONE_WITHIN_S = 240  # a fresh worker's start (models load) plus the task, on 2 busy cores


def assert_released_signed(settings, release_id) -> None:
    """The release has a check that said `release`, and its file's manifest verifies."""
    rel = compliance.get_release(str(release_id), settings=settings)
    check = compliance.get_check(str(rel["check_id"]), settings=settings)
    assert check["verdict"] == "release"
    assert compliance.verify_clip(Path(rel["path"]), settings=settings)["verified"] is True


def test_registration_survives_a_killed_worker(fault_settings, workers, tmp_path):
    s = fault_settings
    key = apikeys.create_key("operator", "admin", s)[1]
    video = write_video(tmp_path / "w.mp4", [pan(photo("chelsea"), i, 24) for i in range(24)])
    a = workers.start("a", pause="index.registry:fingerprint_file")
    with TestClient(create_app(s), headers={"X-API-Key": key}) as api, video.open("rb") as f:
        r = api.post("/v1/works", files={"file": ("w.mp4", f, "video/mp4")},
                     data={"owner": "Studio", "title": "Cat", "policy": "block"})
    assert r.status_code == 202 and r.json()["task_id"], r.text
    work_id = r.json()["id"]
    workers.wait_paused("a", a)
    workers.kill(a)
    assert index.get_work(work_id, settings=s)["status"] == "pending"

    workers.start("b", beat=True)
    done = wait_for(lambda: (w := index.get_work(work_id, settings=s))["status"] != "pending"
                    and w, timeout=DONE_WITHIN_S, what="the registration to finish")
    assert done["status"] == "active" and done["frames"] >= 2, done


def test_registration_survives_a_killed_pool_process(fault_settings, workers, tmp_path):
    """Only the pool process dies (the OOM killer picks the biggest): Celery requeues the message
    at once (reject_on_worker_lost), but the dead process's lease still holds, so the redelivery
    runs nothing; the sweep sends it again once the lease runs out, and the same worker's new
    pool process registers it."""
    import os
    import signal

    s = fault_settings
    video = write_video(tmp_path / "w.mp4", [pan(photo("coffee"), i, 24) for i in range(24)])
    a = workers.start("a", pause="index.registry:fingerprint_file", beat=True)
    work, task_id = index_tasks.add_work(video, owner="Studio", title="Coffee", policy="block",
                                         settings=s)
    assert task_id and work["status"] == "pending"
    workers.wait_paused("a", a)
    os.kill(int(workers.mark("a").read_text()), signal.SIGKILL)
    done = wait_for(lambda: (w := index.get_work(str(work["id"]), settings=s))["status"]
                    != "pending" and w, timeout=DONE_WITHIN_S, what="the registration to finish")
    assert done["status"] == "active" and done["frames"] >= 2, done
    assert a.poll() is None  # the same worker did it


def test_rescan_survives_a_killed_worker(fault_settings, workers, tmp_path):
    s = fault_settings
    here = s.model_copy(update={"broker_url": None, "result_backend": None})  # triage in-process
    holder, reviewer = make_account(s, "rights_holder"), make_account(s, "reviewer")
    copied = release(here, photo_clip(tmp_path / "a.mp4"))
    other = release(here, noise_clip(tmp_path / "b.mp4", 4))
    claim = file_claim(actor_of(holder), release_id=str(copied["id"]),
                       work_path=work_image(tmp_path / "w.png"), work_title="Astronaut",
                       statement=STATEMENT, remedies=["takedown"], settings=here)
    rev = actor_of(reviewer)
    mine = assign_claim(rev, claim["id"], revision=get_claim(rev, claim["id"], settings=s)[
        "revision"], settings=s)
    a = workers.start("a", pause="complaints.takedown:scan_one")
    decided = decide_claim(rev, claim["id"], revision=mine["revision"], outcome="uphold",
                           reason="copy", actions=["rescan_revoke"], settings=s)
    assert decided["rescan"]["state"] == "queued"
    workers.wait_paused("a", a)
    workers.kill(a)
    assert get_claim(rev, claim["id"], settings=s)["rescan"]["state"] == "running"

    workers.start("b", beat=True)
    done = wait_for(lambda: (c := get_claim(rev, claim["id"], settings=s))["rescan"]["state"]
                    in ("done", "failed") and c["rescan"], timeout=DONE_WITHIN_S,
                    what="the rescan to finish")
    assert (done["state"], done["total"], done["scanned"], done["matched"]) == \
        ("done", 2, 2, 1), done
    assert compliance.get_release(str(copied["id"]), settings=s)["status"] == "revoked"
    assert compliance.get_release(str(other["id"]), settings=s)["status"] == "active"


def test_triage_survives_a_killed_worker(fault_settings, workers, tmp_path):
    s = fault_settings
    here = s.model_copy(update={"broker_url": None, "result_backend": None})
    holder, reviewer = make_account(s, "rights_holder"), make_account(s, "reviewer")
    copied = release(here, photo_clip(tmp_path / "a.mp4"))
    a = workers.start("a", pause="complaints.triage:_evidence")
    claim = file_claim(actor_of(holder), release_id=str(copied["id"]),
                       work_path=work_image(tmp_path / "w.png"), work_title="Astronaut",
                       statement=STATEMENT, remedies=["takedown"], settings=s)
    assert claim["state"] == "submitted"
    workers.wait_paused("a", a)
    workers.kill(a)
    rev = actor_of(reviewer)
    assert get_claim(rev, claim["id"], settings=s)["state"] == "submitted"

    workers.start("b", beat=True)
    done = wait_for(lambda: (c := get_claim(rev, claim["id"], settings=s))["state"] != "submitted"
                    and c, timeout=DONE_WITHIN_S, what="the claim to be triaged")
    assert done["state"] == "triaged" and done["triage_error"] is None
    assert done["score"] > 0.5 and done["evidence"]["frames_matched"] >= 2


def test_generation_survives_a_killed_worker(fault_settings, workers):
    s = fault_settings
    key = apikeys.create_key("generator", "generator", s)[1]
    tenants.create_tenant("acme", tier="pro", credits_gpu_s=600, settings=s)
    a = workers.start("a", pause="generator.worker:get_generator")
    with TestClient(create_app(s), headers={"X-API-Key": key}) as api:
        r = api.post("/v1/generations", json={
            "tenant": "acme", "user": "u", "idempotency_key": "k1", "prompt":
            "slow clouds over a green valley", "seconds": 1.0, "width": 320, "height": 180,
            "fps": 12})
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    workers.wait_paused("a", a)
    workers.kill(a)
    assert jobs.get_job(job_id, settings=s)["state"] == "generating"

    workers.start("b", beat=True)
    done = wait_for(lambda: (j := jobs.get_job(job_id, settings=s))["state"] in jobs.TERMINAL
                    and j, timeout=DONE_WITHIN_S, what="the generation job to finish")
    assert done["state"] == "released" and done["attempts"] == 2, done["error"]
    assert_released_signed(s, done["release_id"])
    with db.connection(s) as conn:
        n = conn.execute("SELECT count(*) AS n FROM releases WHERE generator->>'job_id' = %s",
                         (job_id,)).fetchone()["n"]
    assert n == 1

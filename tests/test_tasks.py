"""Slow work on a real Celery worker over the machine's Redis."""

from __future__ import annotations

import pytest
from celery.contrib.testing.worker import start_worker

import index
import clipgate.tasks  # noqa: F401  (the worker's assembly: installs every domain's tasks)
from clipgate import queue
from index.tasks import add_work, submit_register
from tests.media import noise_frame, pan, photo, write_video


def test_video_work_is_fingerprinted_by_a_worker(broker_settings, tmp_path):
    cat = photo("chelsea")
    video = write_video(tmp_path / "v.mp4", [pan(cat, i, 36) for i in range(36)])
    app = queue.app_for(broker_settings)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        work = index.create_pending_work(video, owner="Studio", title="Cat", policy="block",
                                         settings=broker_settings)
        assert work["status"] == "pending"
        sub = submit_register(str(work["id"]), broker_settings)
        assert sub.task_id and sub.result is None
        result = app.AsyncResult(sub.task_id).get(timeout=120)
    assert result["status"] == "active"
    done = index.get_work(str(work["id"]), settings=broker_settings)
    assert done["status"] == "active" and done["frames"] >= 3
    assert queue.task_status(sub.task_id, broker_settings)["state"] == "SUCCESS"


def test_broken_video_is_marked_failed_not_lost(broker_settings, tmp_path):
    video = write_video(tmp_path / "v.mp4", [noise_frame(i) for i in range(48)])
    work = index.create_pending_work(video, owner="o", title="t", policy="block",
                                     settings=broker_settings)
    # Damage the stored copy after acceptance: the worker must record why, not crash or hang.
    stored = broker_settings.data_dir / "works" / f"{work['id']}.mp4"
    stored.write_bytes(stored.read_bytes()[:2000])
    app = queue.app_for(broker_settings)
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        sub = submit_register(str(work["id"]), broker_settings)
        result = app.AsyncResult(sub.task_id).get(timeout=120)
    assert result["status"] == "failed" and result["error"]
    assert index.get_work(str(work["id"]), settings=broker_settings)["frames"] == 0


def test_broker_health_reports_redis(broker_settings):
    assert queue.broker_health(broker_settings)["ok"] is True
    down = broker_settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    assert queue.broker_health(down)["ok"] is False


def test_dead_broker_fails_fast_and_leaves_nothing(settings, tmp_path):
    import time

    from clipgate.errors import Unavailable

    dead = settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    video = write_video(tmp_path / "v.mp4", [noise_frame(i) for i in range(24)])
    t0 = time.perf_counter()
    with pytest.raises(Unavailable, match="unreachable"):
        add_work(video, owner="o", title="t", policy="block", settings=dead)
    assert time.perf_counter() - t0 < 10
    assert index.list_works(include_removed=True, settings=settings) == []
    assert not any((settings.data_dir / "works").glob("*"))

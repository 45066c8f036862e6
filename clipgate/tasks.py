"""The task queue: Celery with a Redis broker when one is configured, in-process otherwise.

Slow work (fingerprinting a registered video, rebuilding the index) is submitted through
`submit_*`. With CLIPGATE_BROKER_URL set it goes to a worker (`clipgate worker`) on the `cpu`
queue; without one it runs right here, so the embedded default needs no broker.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from celery import Celery

from clipgate.settings import Settings, get_settings

log = logging.getLogger(__name__)

CPU_QUEUE = "cpu"


def make_celery(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    app = Celery(
        "clipgate",
        broker=settings.broker_url or "memory://",
        backend=settings.result_backend or settings.broker_url or "cache+memory://",
    )
    app.conf.update(
        task_default_queue=CPU_QUEUE,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # A task is acknowledged after it ran: a worker that dies mid-task leaves it queued.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        result_expires=24 * 3600,
        broker_connection_retry_on_startup=True,
    )
    return app


celery_app = make_celery()


@celery_app.task(name="clipgate.register_work", bind=True, max_retries=3)
def register_work_task(self, work_id: str) -> dict[str, Any]:
    import index

    work = index.process_pending_work(work_id)
    return {"work_id": str(work["id"]), "status": work["status"], "error": work["error"]}


@celery_app.task(name="clipgate.rebuild_index")
def rebuild_index_task() -> dict[str, Any]:
    import index

    return index.rebuild()


@dataclass
class Submitted:
    task_id: str | None  # None when the work ran in-process
    result: dict[str, Any] | None  # set when it ran in-process


def submit_register(work_id: str, settings: Settings | None = None) -> Submitted:
    settings = settings or get_settings()
    if not settings.broker_url:
        import index

        work = index.process_pending_work(work_id, settings)
        return Submitted(None, {"work_id": str(work["id"]), "status": work["status"],
                                "error": work["error"]})
    return Submitted(register_work_task.delay(work_id).id, None)


def submit_rebuild(settings: Settings | None = None) -> Submitted:
    settings = settings or get_settings()
    if not settings.broker_url:
        import index

        return Submitted(None, index.rebuild(settings))
    return Submitted(rebuild_index_task.delay().id, None)


def task_status(task_id: str) -> dict[str, Any]:
    res = celery_app.AsyncResult(task_id)
    out: dict[str, Any] = {"task_id": task_id, "state": res.state}
    if res.successful():
        out["result"] = res.result
    elif res.failed():
        out["error"] = str(res.result)
    return out


def broker_health(settings: Settings | None = None) -> dict[str, Any]:
    settings = settings or get_settings()
    if not settings.broker_url:
        return {"ok": True, "mode": "in-process"}
    try:
        import redis

        redis.Redis.from_url(settings.broker_url, socket_connect_timeout=2).ping()
        return {"ok": True, "mode": "celery", "broker": _redact(settings.broker_url)}
    except Exception as e:  # health reports, never raises
        return {"ok": False, "mode": "celery", "error": str(e)}


def _redact(url: str) -> str:
    # Never echo a broker password in a health answer.
    if "@" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url

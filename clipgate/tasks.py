"""The task queue: Celery with a Redis broker when one is configured, in-process otherwise.

Slow work (fingerprinting a registered video, rebuilding the index) is submitted through
`submit_*`. With CLIPGATE_BROKER_URL set it goes to a worker (`clipgate worker`) on the `cpu`
queue; without one it runs right here, so the embedded default needs no broker.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from celery import Celery

from clipgate.errors import Unavailable
from clipgate.settings import Settings, get_settings

log = logging.getLogger(__name__)

CPU_QUEUE = "cpu"
REGISTER_WORK = "clipgate.register_work"
REBUILD_INDEX = "clipgate.rebuild_index"
TRIAGE_CLAIM = "clipgate.triage_claim"
RESCAN = "clipgate.rescan"
SEND_NOTIFICATIONS = "clipgate.send_notifications"
RESTORE_DUE = "clipgate.restore_due"
RETRIAGE_STUCK = "clipgate.retriage_stuck"
GPU_QUEUE = "gpu"
RUN_GENERATION = "clipgate.run_generation"
GATE_GENERATION = "clipgate.gate_generation"
RECOVER_GENERATION = "clipgate.recover_generation"


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
    app.task(name=REGISTER_WORK)(_register_work)
    app.task(name=REBUILD_INDEX)(_rebuild_index)
    _complaints_tasks(app)
    _generation_tasks(app)
    return app


def _generation_tasks(app: Celery) -> None:
    """Generation jobs: generated on the `gpu` queue, gated and signed on the `cpu` queue or on
    the same GPU worker (CLIPGATE_GATE_QUEUE). The job's state lives in PostgreSQL."""

    @app.task(name=RUN_GENERATION, shared=False, bind=True, max_retries=None)
    def run_generation(self: Any, job_id: str) -> dict[str, Any] | None:
        from generator import worker

        return worker.celery_run_generation(self, job_id, get_settings())

    @app.task(name=GATE_GENERATION, shared=False, bind=True, max_retries=None)
    def gate_generation(self: Any, job_id: str) -> dict[str, Any] | None:
        from generator import worker

        return worker.celery_gate(self, job_id, get_settings())

    @app.task(name=RECOVER_GENERATION, shared=False)
    def recover_generation() -> dict[str, int]:
        from generator import worker

        return worker.celery_recover(get_settings())

    app.conf.beat_schedule = {**(app.conf.beat_schedule or {}),
                              "recover-generation-jobs": {"task": RECOVER_GENERATION,
                                                          "schedule": 60.0}}


def _complaints_tasks(app: Celery) -> None:
    """Claims: triage and rescans (retried when a part is down), the notice outbox, and the
    counter-notice clock. `clipgate worker --beat` runs the periodic ones. Not shared: each
    app gets its own closures, and Celery would otherwise copy them into every later app."""
    from clipgate.errors import Unavailable as _Down

    @app.task(name=TRIAGE_CLAIM, shared=False, autoretry_for=(_Down,), retry_backoff=True,
              max_retries=5)
    def triage_claim(claim_id: str) -> dict[str, Any]:
        from complaints import triage

        return triage.triage_claim(claim_id)

    @app.task(name=RESCAN, shared=False, bind=True, autoretry_for=(_Down,), retry_backoff=True,
              max_retries=5)
    def rescan(self: Any, rescan_id: str) -> dict[str, Any]:
        from complaints import takedown

        # Only the last try marks the rescan failed; earlier ones leave it for the retry.
        return takedown.run_rescan(rescan_id,
                                   last_try=self.request.retries >= self.max_retries)

    @app.task(name=SEND_NOTIFICATIONS, shared=False, bind=True)
    def send_notifications(self: Any) -> dict[str, int]:
        from complaints import notify

        settings = get_settings()
        counts = notify.send_due(settings)
        wait = notify.next_due_s(settings)
        if wait is not None:  # retries still pending: come back when the first is due
            self.apply_async(countdown=max(1.0, wait))
        return counts

    @app.task(name=RESTORE_DUE, shared=False)
    def restore_due() -> int:
        from complaints import counter

        return counter.restore_due(get_settings())

    @app.task(name=RETRIAGE_STUCK, shared=False)
    def retriage_stuck() -> int:
        from complaints import triage

        return triage.retriage_stuck(get_settings())

    app.conf.beat_schedule = {
        **(app.conf.beat_schedule or {}),
        "restore-due-counter-notices": {"task": RESTORE_DUE, "schedule": 600.0},
        "send-notifications": {"task": SEND_NOTIFICATIONS, "schedule": 300.0},
        "retriage-stuck-claims": {"task": RETRIAGE_STUCK, "schedule": 600.0},
    }


def _register_work(work_id: str, settings: Settings | None = None) -> dict[str, Any]:
    import index

    work = index.process_pending_work(work_id, settings)
    return {"work_id": str(work["id"]), "status": work["status"], "error": work["error"]}


def _rebuild_index() -> dict[str, Any]:
    import index

    return index.rebuild()


celery_app = make_celery()  # what `clipgate worker` runs, configured from the environment
_apps: dict[str, Celery] = {}


def _app_for(settings: Settings) -> Celery:
    """The Celery app that sends to settings' broker (the API may be given other settings than
    the environment's, as the tests do)."""
    if settings.broker_url == celery_app.conf.broker_url:
        return celery_app
    key = f"{settings.broker_url}|{settings.result_backend}"
    if key not in _apps:
        _apps[key] = make_celery(settings)
    return _apps[key]


@dataclass
class Submitted:
    task_id: str | None  # None when the work ran in-process
    result: dict[str, Any] | None  # set when it ran in-process


def add_work(
    path: Path, *, owner: str, title: str, policy: str, filename: str | None = None,
    aliases: list[str] | tuple[str, ...] = (), description: str | None = None,
    settings: Settings | None = None,
) -> tuple[dict[str, Any], str | None]:
    """Register a work the way the settings say: a video goes to a worker when a broker is
    configured (returns the pending work and its task id); anything else is registered here."""
    import index

    settings = settings or get_settings()
    index.validate_meta(owner=owner, title=title, policy=policy, aliases=aliases,
                        description=description)
    meta = {"owner": owner, "title": title, "policy": policy, "filename": filename,
            "aliases": list(aliases), "description": description}
    if settings.broker_url:
        kind = index.probe(Path(path), max_frame_pixels=settings.max_frame_pixels).kind
        if kind == "video":
            _require_broker(settings)
            work = index.create_pending_work(path, **meta, settings=settings)
            try:
                return work, _send(settings, REGISTER_WORK, [str(work["id"])])
            except Unavailable:
                index.discard_pending_work(str(work["id"]), settings)
                raise
    return index.register_work(path, **meta, settings=settings), None


def _require_broker(settings: Settings) -> None:
    health = broker_health(settings)
    if not health["ok"]:
        raise Unavailable(f"the task queue at {_redact(settings.broker_url or '')} is unreachable; "
                          "nothing was queued")


def _send(settings: Settings, name: str, args: list[Any]) -> str:
    try:
        # No retries: a caller waiting on a dead broker should hear so at once.
        return _app_for(settings).send_task(name, args=args, retry=False).id
    except Exception as e:  # kombu's connection errors have no common public base
        raise Unavailable(f"the task queue is unreachable, nothing was queued: {e}") from e


def submit_register(work_id: str, settings: Settings | None = None) -> Submitted:
    settings = settings or get_settings()
    if not settings.broker_url:
        return Submitted(None, _register_work(work_id, settings))
    _require_broker(settings)
    return Submitted(_send(settings, REGISTER_WORK, [work_id]), None)


def submit_rebuild(settings: Settings | None = None) -> Submitted:
    settings = settings or get_settings()
    if not settings.broker_url:
        import index

        return Submitted(None, index.rebuild(settings))
    _require_broker(settings)
    return Submitted(_send(settings, REBUILD_INDEX, []), None)


def _submit(name: str, args: list[Any], settings: Settings, local: Any) -> Submitted:
    """Send a task to the broker, or run `local(*args, settings)` here when there is none."""
    if not settings.broker_url:
        return Submitted(None, local(*args, settings))
    _require_broker(settings)
    return Submitted(_send(settings, name, args), None)


def submit_triage(claim_id: str, settings: Settings | None = None) -> Submitted:
    from complaints import triage

    return _submit(TRIAGE_CLAIM, [claim_id], settings or get_settings(), triage.triage_claim)


def submit_rescan(rescan_id: str, settings: Settings | None = None) -> Submitted:
    from complaints import takedown

    return _submit(RESCAN, [rescan_id], settings or get_settings(), takedown.run_rescan)


def submit_notifications(settings: Settings | None = None) -> Submitted:
    from complaints import notify

    return _submit(SEND_NOTIFICATIONS, [], settings or get_settings(), notify.send_due)


def send_generation(job_id: str, settings: Settings, *, priority: int = 0) -> str:
    """Queue a generation job for the `gpu` workers (each message runs the best queued job)."""
    _require_broker(settings)
    try:
        return _app_for(settings).send_task(RUN_GENERATION, args=[job_id], queue=GPU_QUEUE,
                                            priority=priority, retry=False).id
    except Exception as e:  # kombu's connection errors have no common public base
        raise Unavailable(f"the task queue is unreachable, nothing was queued: {e}") from e


def waiting_messages(settings: Settings, queue: str = GPU_QUEUE) -> int:
    """Messages waiting in a queue of the broker (0 when it has none yet)."""
    from kombu.exceptions import ChannelError

    _require_broker(settings)
    try:
        with _app_for(settings).connection_for_write() as conn:
            return int(conn.default_channel.queue_declare(queue=queue, passive=True).message_count)
    except ChannelError:  # the broker keeps no empty queue: none waiting
        return 0
    except Exception as e:  # kombu's connection errors have no common public base
        raise Unavailable(f"the task queue is unreachable: {e}") from e


def send_gate(job_id: str, settings: Settings) -> str:
    """Queue the gating of a generated clip on the queue the settings name."""
    try:
        return _app_for(settings).send_task(GATE_GENERATION, args=[job_id],
                                            queue=settings.gate_queue, retry=False).id
    except Exception as e:  # kombu's connection errors have no common public base
        raise Unavailable(f"the task queue is unreachable, nothing was queued: {e}") from e


def task_status(task_id: str, settings: Settings | None = None) -> dict[str, Any]:
    res = _app_for(settings or get_settings()).AsyncResult(task_id)
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
        log.error("broker health check failed: %s", e)
        return {"ok": False, "mode": "celery", "error": "unreachable"}


def _redact(url: str) -> str:
    # Never echo a broker password in a health answer.
    if "@" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url

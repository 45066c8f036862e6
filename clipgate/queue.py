"""The task queue: Celery with a Redis broker when one is configured, in-process otherwise.

Slow work (fingerprinting a registered video, triaging a claim, generating a clip) is submitted
through `submit`. With CLIPGATE_BROKER_URL set it goes to a worker (`clipgate worker`); without
one it runs right here, so the embedded default needs no broker.

The queue knows no domain. Each domain's `tasks.py` has a `register(app)` that adds its tasks to
a Celery app; the worker's assembly (`clipgate.tasks`) hands those to `install`, and every app
made here, before or after, gets them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import redis
from celery import Celery
from kombu.exceptions import ChannelError

from clipgate import logs, metrics
from clipgate.errors import Unavailable
from clipgate.settings import Settings, get_settings

log = logging.getLogger(__name__)

CPU_QUEUE = "cpu"
GPU_QUEUE = "gpu"

Registrar = Callable[[Celery], None]
_registrars: list[Registrar] = []
_apps: dict[str, Celery] = {}


def install(register: Registrar) -> None:
    """Add a domain's tasks to every Celery app, those made already and those to come."""
    if register in _registrars:
        return
    _registrars.append(register)
    for app in _apps.values():
        register(app)


def make_app(settings: Settings | None = None) -> Celery:
    """A Celery app configured for settings' broker, with every installed domain's tasks."""
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
        # The worker logs through clipgate's handler (JSON, request ids, secrets blanked).
        worker_hijack_root_logger=False,
    )
    for register in _registrars:
        register(app)
    logs.carry_request_ids()  # a task logs with the id of the request that queued it
    return app


def add_periodic(app: Celery, name: str, task: str, every_s: float) -> None:
    """Run a task every `every_s` seconds on the worker started with --beat."""
    app.conf.beat_schedule = {**(app.conf.beat_schedule or {}),
                              name: {"task": task, "schedule": every_s}}


def app_for(settings: Settings | None = None) -> Celery:
    """The Celery app that sends to settings' broker (the API may be given other settings than
    the environment's, as the tests do)."""
    settings = settings or get_settings()
    key = f"{settings.broker_url}|{settings.result_backend}"
    if key not in _apps:
        _apps[key] = make_app(settings)
    return _apps[key]


@dataclass
class Submitted:
    task_id: str | None  # None when the work ran in-process
    result: dict[str, Any] | None  # set when it ran in-process


def submit(name: str, args: list[Any], settings: Settings, local: Callable[..., Any]) -> Submitted:
    """Send a task to the broker, or run `local(*args, settings)` here when there is none."""
    if not settings.broker_url:
        return Submitted(None, local(*args, settings))
    require_broker(settings)
    return Submitted(send(name, args, settings), None)


def send(name: str, args: list[Any], settings: Settings, *, queue: str | None = None,
         priority: int | None = None) -> str:
    """Queue a task by name; raises Unavailable when the broker cannot take it."""
    options: dict[str, Any] = {}
    if queue is not None:
        options["queue"] = queue
    if priority is not None:
        options["priority"] = priority
    try:
        # No retries: a caller waiting on a dead broker should hear so at once.
        return app_for(settings).send_task(name, args=args, retry=False, **options).id
    except Exception as e:  # kombu's connection errors have no common public base
        raise Unavailable(f"the task queue is unreachable, nothing was queued: {e}") from e


def require_broker(settings: Settings) -> None:
    """Raise Unavailable unless settings' broker answers."""
    health = broker_health(settings)
    if not health["ok"]:
        raise Unavailable(f"the task queue at {_redact(settings.broker_url or '')} is unreachable; "
                          "nothing was queued")


def queue_depth(settings: Settings, queue: str = GPU_QUEUE) -> int:
    """Messages waiting in a queue of the broker (0 when it has none yet)."""
    require_broker(settings)
    try:
        with app_for(settings).connection_for_write() as conn:
            return int(conn.default_channel.queue_declare(queue=queue, passive=True).message_count)
    except ChannelError:  # the broker keeps no empty queue: none waiting
        return 0
    except Exception as e:  # kombu's connection errors have no common public base
        raise Unavailable(f"the task queue is unreachable: {e}") from e


def task_status(task_id: str, settings: Settings | None = None) -> dict[str, Any]:
    res = app_for(settings).AsyncResult(task_id)
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


def _depth_gauges(settings: Settings) -> Iterator[metrics.Sample]:
    """Messages waiting in each of the broker's queues (for /metrics; none without a broker,
    where the domains' own gauges say what waits)."""
    if not settings.broker_url:
        return
    for name in (CPU_QUEUE, GPU_QUEUE):
        yield ("clipgate_queue_depth", "Tasks waiting in a queue of the broker", {"queue": name},
               queue_depth(settings, name))


metrics.gauge_source("queue", _depth_gauges)

"""The index's slow work on the task queue: fingerprinting a registered video, rebuilding.

With a broker a video goes to a worker on the `cpu` queue; without one it runs in-process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from clipgate import db, leases, queue
from clipgate.errors import Unavailable
from clipgate.settings import Settings, get_settings
from index import live, registry, store
from index.media import probe

# Task names are kept from before the queue moved: queued messages name them.
REGISTER_WORK = "clipgate.register_work"
REBUILD_INDEX = "clipgate.rebuild_index"
RECOVER_REGISTRATIONS = "clipgate.recover_registrations"
LEASE_KIND = "register"  # task_leases.kind of a registration


def register(app: Celery) -> None:
    """Add the index's tasks to a Celery app, and have each worker process follow the index's
    changes (index.live.follow_changes) once it holds an index."""
    app.task(name=REGISTER_WORK, shared=False)(_register_work)
    app.task(name=REBUILD_INDEX, shared=False)(_rebuild_index)
    app.task(name=RECOVER_REGISTRATIONS, shared=False)(recover_registrations)
    worker_process_init.connect(_follow_changes, weak=False)
    queue.add_periodic(app, "recover-registrations", RECOVER_REGISTRATIONS,
                       get_settings().recover_sweep_s)


def _follow_changes(**_: Any) -> None:
    # In each pool process: threads do not survive the fork from the parent worker.
    live.follow_changes(get_settings())


def _register_work(work_id: str, settings: Settings | None = None) -> dict[str, Any]:
    settings = settings or get_settings()
    with leases.held(settings, kind=LEASE_KIND, subject_id=work_id) as lease:
        if lease is None:  # a spare message: another live worker is registering it
            work = registry.get_work(work_id, settings)
        elif lease.exhausted(settings.task_max_attempts):
            work = registry.fail_pending_work(work_id, _lost_reason(lease.attempts - 1),
                                              settings)
        else:
            work = registry.process_pending_work(work_id, settings)
    return {"work_id": str(work["id"]), "status": work["status"], "error": work["error"]}


def _lost_reason(lost: int) -> str:
    return (f"registration stopped: its worker was lost {lost} time(s) while fingerprinting "
            "this file (killed or out of memory); not retried again")


def recover_registrations(settings: Settings | None = None) -> dict[str, int]:
    """The sweep: pending works whose worker died (lease run out) or whose message was lost are
    sent to the workers again, or failed with the reason once they lost task_max_attempts
    workers. With no broker nothing is sent (nothing could carry it)."""
    settings = settings or get_settings()
    counts = {"resent": 0, "failed": 0}
    with db.connection(settings) as conn:
        stale = store.stale_pending(conn, kind=LEASE_KIND, lease_s=settings.task_lease_s)
    for row in stale:
        work_id = str(row["id"])
        if row["attempts"] >= settings.task_max_attempts:
            registry.fail_pending_work(work_id, _lost_reason(row["attempts"]), settings)
            with db.connection(settings) as conn:
                leases.forget(conn, kind=LEASE_KIND, subject_id=work_id)
            counts["failed"] += 1
        elif settings.broker_url:
            leases.resend(settings, kind=LEASE_KIND, subject_id=work_id, task=REGISTER_WORK)
            counts["resent"] += 1
    return counts


def _rebuild_index(settings: Settings | None = None) -> dict[str, Any]:
    return live.rebuild(settings)


def add_work(
    path: Path, *, owner: str, title: str, policy: str, filename: str | None = None,
    aliases: list[str] | tuple[str, ...] = (), description: str | None = None,
    settings: Settings | None = None,
) -> tuple[dict[str, Any], str | None]:
    """Register a work the way the settings say: a video goes to a worker when a broker is
    configured (returns the pending work and its task id); anything else is registered here."""
    settings = settings or get_settings()
    registry.validate_meta(owner=owner, title=title, policy=policy, aliases=aliases,
                           description=description)
    meta = {"owner": owner, "title": title, "policy": policy, "filename": filename,
            "aliases": list(aliases), "description": description}
    if settings.broker_url:
        kind = probe(Path(path), max_frame_pixels=settings.max_frame_pixels).kind
        if kind == "video":
            queue.require_broker(settings)
            work = registry.create_pending_work(path, **meta, settings=settings)
            try:
                return work, queue.send(REGISTER_WORK, [str(work["id"])], settings)
            except Unavailable:
                registry.discard_pending_work(str(work["id"]), settings)
                raise
    return registry.register_work(path, **meta, settings=settings), None


def submit_register(work_id: str, settings: Settings | None = None) -> queue.Submitted:
    """Fingerprint a pending work, on a worker when there is a broker."""
    return queue.submit(REGISTER_WORK, [work_id], settings or get_settings(), _register_work)


def submit_rebuild(settings: Settings | None = None) -> queue.Submitted:
    """Rebuild the FAISS index from PostgreSQL, on a worker when there is a broker."""
    return queue.submit(REBUILD_INDEX, [], settings or get_settings(), _rebuild_index)

"""The index's slow work on the task queue: fingerprinting a registered video, rebuilding.

With a broker a video goes to a worker on the `cpu` queue; without one it runs in-process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from celery import Celery
from celery.signals import worker_process_init

from clipgate import queue
from clipgate.errors import Unavailable
from clipgate.settings import Settings, get_settings
from index import live, registry
from index.media import probe

# Task names are kept from before the queue moved: queued messages name them.
REGISTER_WORK = "clipgate.register_work"
REBUILD_INDEX = "clipgate.rebuild_index"


def register(app: Celery) -> None:
    """Add the index's tasks to a Celery app, and have each worker process follow the index's
    changes (index.live.follow_changes) once it holds an index."""
    app.task(name=REGISTER_WORK, shared=False)(_register_work)
    app.task(name=REBUILD_INDEX, shared=False)(_rebuild_index)
    worker_process_init.connect(_follow_changes, weak=False)


def _follow_changes(**_: Any) -> None:
    # In each pool process: threads do not survive the fork from the parent worker.
    live.follow_changes(get_settings())


def _register_work(work_id: str, settings: Settings | None = None) -> dict[str, Any]:
    work = registry.process_pending_work(work_id, settings)
    return {"work_id": str(work["id"]), "status": work["status"], "error": work["error"]}


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

"""Generation on the task queue: jobs are generated on the `gpu` queue, gated and signed on the
`cpu` queue or on the same GPU worker (CLIPGATE_GATE_QUEUE). The job's state lives in
PostgreSQL; the bodies are in generator.worker."""

from __future__ import annotations

from typing import Any

from celery import Celery

from clipgate import queue
from clipgate.settings import get_settings
from generator import worker


def register(app: Celery) -> None:
    """Add generation's tasks to a Celery app (not shared: each app gets its own)."""

    @app.task(name=worker.RUN_GENERATION, shared=False, bind=True, max_retries=None)
    def run_generation(self: Any, job_id: str) -> dict[str, Any] | None:
        return worker.celery_run_generation(self, job_id, get_settings())

    @app.task(name=worker.GATE_GENERATION, shared=False, bind=True, max_retries=None)
    def gate_generation(self: Any, job_id: str) -> dict[str, Any] | None:
        return worker.celery_gate(self, job_id, get_settings())

    @app.task(name=worker.RECOVER_GENERATION, shared=False)
    def recover_generation() -> dict[str, int]:
        return worker.celery_recover(get_settings())

    queue.add_periodic(app, "recover-generation-jobs", worker.RECOVER_GENERATION,
                       get_settings().recover_sweep_s)

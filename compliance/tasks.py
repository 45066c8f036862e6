"""Compliance's work on the task queue: blocking held clips nobody decided in time.
`clipgate worker --beat` runs it; without a broker `clipgate serve` runs compliance's own loop."""

from __future__ import annotations

from celery import Celery

from clipgate import queue
from clipgate.settings import get_settings
from compliance.review import expire_reviews

EXPIRE_REVIEWS = "clipgate.expire_reviews"


def register(app: Celery) -> None:
    """Add compliance's tasks to a Celery app (not shared: each app gets its own)."""

    @app.task(name=EXPIRE_REVIEWS, shared=False)
    def expire_held_clips() -> int:
        return len(expire_reviews(get_settings()))

    queue.add_periodic(app, "expire-held-clips", EXPIRE_REVIEWS, get_settings().review_sweep_s)

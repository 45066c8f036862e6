"""The worker's assembly: every domain's tasks on the kernel's queue (`clipgate worker` runs
`celery_app`). The queue itself is `clipgate.queue`; each domain's tasks are in its `tasks.py`."""

from __future__ import annotations

from celery import Celery

import complaints.tasks
import compliance.tasks
import generator.tasks
import index.tasks
from clipgate import queue
from clipgate.settings import Settings

for _register in (index.tasks.register, compliance.tasks.register, complaints.tasks.register,
                  generator.tasks.register):
    queue.install(_register)


def make_celery(settings: Settings | None = None) -> Celery:
    """A Celery app for settings' broker with every domain's tasks."""
    return queue.make_app(settings)


celery_app = queue.app_for()  # what `clipgate worker` runs, configured from the environment

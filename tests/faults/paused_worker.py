"""`clipgate worker` with one function made to stop and wait, so a test can kill the worker in
the middle of a task, not before it or after it.

CLIPGATE_TEST_PAUSE="module:attribute" names the function. When a task first calls it, this
writes CLIPGATE_TEST_PAUSE_MARK (the pid of the process inside it) and sleeps a long time; the
test then sends SIGKILL. Once the mark exists, calls run straight through. The worker is otherwise the real one: the same CLI, Celery app, broker,
database and pool processes (forked after the patch, so they carry it).

Run as: python -m tests.faults.paused_worker worker --queues cpu
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
import time
from pathlib import Path
from typing import Any


def install() -> None:
    spec = os.environ.get("CLIPGATE_TEST_PAUSE")
    if not spec:
        return
    module_name, attr = spec.split(":")
    module = importlib.import_module(module_name)
    real = getattr(module, attr)
    mark = Path(os.environ["CLIPGATE_TEST_PAUSE_MARK"])

    @functools.wraps(real)
    def paused(*args: Any, **kwargs: Any) -> Any:
        if mark.exists():  # paused once already (this process's killed predecessor): run
            return real(*args, **kwargs)
        mark.write_text(str(os.getpid()))
        time.sleep(float(os.environ.get("CLIPGATE_TEST_PAUSE_S", "600")))
        return real(*args, **kwargs)

    setattr(module, attr, paused)


if __name__ == "__main__":
    install()
    from clipgate.cli import main

    sys.argv[0] = "clipgate"
    main()

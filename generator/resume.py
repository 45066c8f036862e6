"""Resuming generation jobs left behind when there is no broker (the embedded default).

Without a broker a job runs in the process that admitted it (the API's request, or `clipgate
generate`). If that process dies, the job stays `queued`, or in a running state whose lease runs
out, and no Celery beat sweep exists to pick it up. The API process (`clipgate serve`) therefore
runs a ResumeLoop: at start-up and then whenever a lease may have run out, it recovers expired
leases (back to the queue, or failed with the reason when out of attempts) and runs the queued
jobs here, one at a time, highest priority first. `clipgate jobs resume` does one pass from the
shell. Claims are atomic, so a job that its request (or another process) already holds is simply
not claimable: nothing runs twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from clipgate.settings import Settings
from generator import jobs, worker

log = logging.getLogger(__name__)

Run = Callable[[dict[str, Any], Settings], dict[str, Any]]  # runs a claimed job to its end
_MIN_WAKE_S = 0.1  # never spin, even on a lease that SKIP LOCKED could not recover yet
_WAKE_MARGIN_S = 0.1  # wake just after a lease runs out, not just before
_AFTER_ERROR_S = 30.0  # the database was unreachable: try again this soon (or at the lease)


@dataclass
class Resumed:
    """One pass: jobs recovered from dead workers, and the jobs run here (as they ended)."""

    requeued: int = 0
    failed: int = 0
    ran: list[dict[str, Any]] = field(default_factory=list)


def recover(settings: Settings) -> tuple[int, int]:
    """Expired leases back to the queue or failed (with the reason): (requeued, failed)."""
    changed = jobs.recover(settings)
    requeued = sum(1 for j in changed if j["state"] == "queued")
    for j in changed:
        log.warning("generation job %s recovered: %s", j["id"], j["error"])
    return requeued, len(changed) - requeued


def run_queued(settings: Settings, *, stop: threading.Event | None = None,
               run: Run | None = None) -> list[dict[str, Any]]:
    """Claim and run queued jobs one at a time, highest priority first, until none is left or
    `stop` is set (checked between jobs: a job once claimed is run to its end). A failed attempt
    goes back to the queue and is claimed again while it has attempts left. Returns the jobs run,
    as each run ended."""
    run = run or worker.run_claimed
    ran = []
    while stop is None or not stop.is_set():
        job = jobs.claim(settings)  # what worker.run_next does, with `run` pluggable
        if job is None:
            break
        log.info("resuming generation job %s (attempt %s)", job["id"], job["attempts"])
        ran.append(run(job, settings))
    return ran


def resume_once(settings: Settings, *, stop: threading.Event | None = None,
                run: Run | None = None) -> Resumed:
    """One pass: recover expired leases, then run every queued job (see run_queued)."""
    requeued, failed = recover(settings)
    return Resumed(requeued, failed, run_queued(settings, stop=stop, run=run))


def next_wake_s(settings: Settings) -> float:
    """Seconds until the next pass: just after the soonest running lease runs out (its worker
    may be dead), and at least once per lease period for jobs queued by other processes."""
    expiry = jobs.next_lease_expiry_s(settings)
    wait = settings.job_lease_s if expiry is None else min(settings.job_lease_s,
                                                           expiry + _WAKE_MARGIN_S)
    return max(_MIN_WAKE_S, wait)


class ResumeLoop:
    """A daemon thread that runs resume_once at start and then at next_wake_s, until stop()."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="generation-resume", daemon=True)

    def start(self) -> ResumeLoop:
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> bool:
        """Ask the loop to end and wait for it: at most the job it is running (or `timeout`
        seconds). True when it has ended; a job cut short by exit is recovered at next start."""
        self._stop.set()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._stop.wait(self._pass())

    def _pass(self) -> float:
        """One pass; returns how long to wait for the next."""
        try:
            done = resume_once(self.settings, stop=self._stop)
            if done.requeued or done.failed or done.ran:
                log.info("resumed generation jobs: %d requeued, %d failed, %d run",
                         done.requeued, done.failed, len(done.ran))
            return next_wake_s(self.settings)
        except Exception as e:  # noqa: BLE001 - a database blip must not end the loop
            log.error("could not resume generation jobs: %s: %s", type(e).__name__, e)
            return max(_MIN_WAKE_S, min(self.settings.job_lease_s, _AFTER_ERROR_S))


def start_loop(settings: Settings) -> ResumeLoop | None:
    """Start resuming left-behind jobs in this process; None with a broker (its workers and
    beat sweep do it)."""
    if settings.broker_url:
        return None
    return ResumeLoop(settings).start()

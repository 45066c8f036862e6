"""Claims' work on the task queue: triage and rescans (retried when a part is down), the notice
outbox, and the counter-notice clock. `clipgate worker --beat` runs the periodic ones."""

from __future__ import annotations

from typing import Any

from celery import Celery

from clipgate import queue
from clipgate.errors import Unavailable
from clipgate.settings import get_settings
from complaints import counter, notify, takedown, triage

# Task names are kept from before the queue moved: queued messages and beat schedules name them.
RESTORE_DUE = "clipgate.restore_due"
RETRIAGE_STUCK = "clipgate.retriage_stuck"
RECOVER_RESCANS = "clipgate.recover_rescans"


def register(app: Celery) -> None:
    """Add the claims' tasks to a Celery app. Not shared: each app gets its own closures, and
    Celery would otherwise copy them into every later app."""

    @app.task(name=triage.TRIAGE_CLAIM, shared=False, autoretry_for=(Unavailable,),
              retry_backoff=True, max_retries=5)
    def triage_claim(claim_id: str) -> dict[str, Any]:
        return triage.run_triage(claim_id)

    @app.task(name=takedown.RUN_RESCAN, shared=False, bind=True, autoretry_for=(Unavailable,),
              retry_backoff=True, max_retries=5)
    def rescan(self: Any, rescan_id: str) -> dict[str, Any]:
        # Only the last try marks the rescan failed; earlier ones leave it for the retry.
        return takedown.run_rescan_task(rescan_id,
                                        last_try=self.request.retries >= self.max_retries)

    @app.task(name=notify.SEND_NOTIFICATIONS, shared=False, bind=True)
    def send_notifications(self: Any) -> dict[str, int]:
        settings = get_settings()
        counts = notify.send_due(settings)
        wait = notify.next_due_s(settings)
        if wait is not None:  # retries still pending: come back when the first is due
            self.apply_async(countdown=max(1.0, wait))
        return counts

    @app.task(name=RESTORE_DUE, shared=False)
    def restore_due() -> int:
        return counter.restore_due(get_settings())

    @app.task(name=RECOVER_RESCANS, shared=False)
    def recover_rescans() -> dict[str, int]:
        return takedown.recover_rescans(get_settings())

    @app.task(name=RETRIAGE_STUCK, shared=False)
    def retriage_stuck() -> int:
        return triage.retriage_stuck(get_settings())

    queue.add_periodic(app, "restore-due-counter-notices", RESTORE_DUE, 600.0)
    queue.add_periodic(app, "send-notifications", notify.SEND_NOTIFICATIONS, 300.0)
    # The recovery sweeps: triage and rescans whose worker died, or whose message was lost.
    queue.add_periodic(app, "retriage-stuck-claims", RETRIAGE_STUCK,
                       get_settings().recover_sweep_s)
    queue.add_periodic(app, "recover-rescans", RECOVER_RESCANS, get_settings().recover_sweep_s)

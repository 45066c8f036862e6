"""Leases on queued work: a registration, a rescan or a triage is held by one worker at a time,
and work whose worker died is found and sent again.

Why: Celery acknowledges a task after it ran (acks_late), so a worker killed mid-task leaves its
message unacknowledged; but Redis hands such a message out again only after the broker's
visibility timeout (an hour), and a message that kills its worker every time would come back for
ever. So a task body takes a lease (task_leases, one row per piece of work) before it starts and
renews it while it works. A clean end gives it back; a lease that runs out names a dead worker,
and the owning domain's recovery sweep sends the work again, or fails it with the reason once it
has lost `task_max_attempts` workers. Taking is atomic, so a spare message runs nothing twice.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg

from clipgate import db, queue
from clipgate.settings import Settings

log = logging.getLogger(__name__)


def holder_name() -> str:
    """This worker process, as a lease names it."""
    return f"{socket.gethostname()}:{os.getpid()}"


class LeaseLost(Exception):
    """This worker's lease ran out and another worker took the work over: stop, leaving it to
    them (raised by long tasks that check `Lease.lost` between steps)."""


@dataclass
class Lease:
    kind: str
    subject_id: str
    holder: str
    attempts: int  # takes that did not end cleanly, this one included
    lost: threading.Event = field(default_factory=threading.Event)  # taken over meanwhile

    def check(self) -> None:
        """Raise LeaseLost if another worker has taken this work over (call between steps)."""
        if self.lost.is_set():
            raise LeaseLost(f"the {self.kind} lease of {self.subject_id} was taken over by "
                            "another worker")

    def exhausted(self, max_attempts: int) -> bool:
        """True when earlier takes lost their worker max_attempts times: do not run it again."""
        return self.attempts > max_attempts


def take(conn: psycopg.Connection, *, kind: str, subject_id: str, lease_s: float,
         holder: str | None = None) -> Lease | None:
    """Hold the work for lease_s seconds; None while another live worker holds it."""
    holder = holder or holder_name()
    row = conn.execute(
        "INSERT INTO task_leases (kind, subject_id, attempts, holder, lease_until) "
        "VALUES (%s, %s, 1, %s, now() + make_interval(secs => %s)) "
        "ON CONFLICT (kind, subject_id) DO UPDATE SET attempts = task_leases.attempts + 1, "
        "holder = EXCLUDED.holder, lease_until = EXCLUDED.lease_until, updated_at = now() "
        "WHERE task_leases.holder IS NULL OR task_leases.lease_until < now() "
        "RETURNING attempts", (kind, subject_id, holder, lease_s)).fetchone()
    return None if row is None else Lease(kind, subject_id, holder, row["attempts"])


def renew(conn: psycopg.Connection, lease: Lease, lease_s: float) -> bool:
    """Extend a lease this worker still holds; False when it was taken over."""
    row = conn.execute(
        "UPDATE task_leases SET lease_until = now() + make_interval(secs => %s), "
        "updated_at = now() WHERE kind = %s AND subject_id = %s AND holder = %s RETURNING 1",
        (lease_s, lease.kind, lease.subject_id, lease.holder)).fetchone()
    return row is not None


def give_back(conn: psycopg.Connection, lease: Lease, *, wait_s: float) -> None:
    """End this take cleanly without finishing (a retry is due): it does not count as lost, and
    the sweep leaves the work alone for wait_s seconds."""
    conn.execute(
        "UPDATE task_leases SET holder = NULL, attempts = greatest(attempts - 1, 0), "
        "lease_until = now() + make_interval(secs => %s), updated_at = now() "
        "WHERE kind = %s AND subject_id = %s AND holder = %s",
        (wait_s, lease.kind, lease.subject_id, lease.holder))


def forget(conn: psycopg.Connection, *, kind: str, subject_id: str) -> None:
    """The work is finished (or failed for good): no lease is kept."""
    conn.execute("DELETE FROM task_leases WHERE kind = %s AND subject_id = %s",
                 (kind, subject_id))


def _forget_own(conn: psycopg.Connection, lease: Lease) -> None:
    # Only while this worker still holds it: a lease taken over belongs to the live worker.
    conn.execute("DELETE FROM task_leases WHERE kind = %s AND subject_id = %s AND holder = %s",
                 (lease.kind, lease.subject_id, lease.holder))


def mark_sent(conn: psycopg.Connection, *, kind: str, subject_id: str, wait_s: float) -> None:
    """A message for the work was just sent again: held by no one, looked at again after wait_s."""
    conn.execute(
        "INSERT INTO task_leases (kind, subject_id, holder, lease_until) "
        "VALUES (%s, %s, NULL, now() + make_interval(secs => %s)) "
        "ON CONFLICT (kind, subject_id) DO UPDATE SET holder = NULL, "
        "lease_until = EXCLUDED.lease_until, updated_at = now()", (kind, subject_id, wait_s))


def resend(settings: Settings, *, kind: str, subject_id: str, task: str) -> None:
    """The recovery sweeps' step: send the task for subject_id again and mark its lease sent, in
    one transaction (rolled back if the broker refuses the message)."""
    with db.connection(settings) as conn:
        mark_sent(conn, kind=kind, subject_id=subject_id, wait_s=settings.task_lease_s)
        queue.send(task, [subject_id], settings)


@contextmanager
def held(settings: Settings, *, kind: str, subject_id: str) -> Iterator[Lease | None]:
    """Take the lease for the block (None: another live worker has it) and renew it every third
    of settings.task_lease_s. Success forgets the lease; an exception gives it back (the work's
    own retry, or the sweep, runs it again). A worker killed inside leaves it to run out."""
    lease_s = settings.task_lease_s
    with db.connection(settings) as conn:
        lease = take(conn, kind=kind, subject_id=subject_id, lease_s=lease_s)
    if lease is None:
        yield None
        return
    stop = threading.Event()
    beat = threading.Thread(target=_renew_until, args=(settings, lease, stop),
                            name=f"lease-{kind}-{subject_id}", daemon=True)
    beat.start()
    try:
        yield lease
    except BaseException:
        stop.set()
        beat.join()
        _quietly(settings, give_back, lease, wait_s=lease_s)
        raise
    stop.set()
    beat.join()
    _quietly(settings, _forget_own, lease)


def _renew_until(settings: Settings, lease: Lease, stop: threading.Event) -> None:
    every = max(0.05, settings.task_lease_s / 3)
    while not stop.wait(every):
        try:
            with db.connection(settings) as conn:
                if not renew(conn, lease, settings.task_lease_s):
                    lease.lost.set()
                    return
        except Exception as e:  # noqa: BLE001 - a database blip: the next beat may get through
            log.warning("could not renew the %s lease of %s: %s", lease.kind, lease.subject_id, e)


def _quietly(settings: Settings, fn: Any, *args: Any, **kwargs: Any) -> None:
    # The database may be what failed: then the lease runs out and the sweep acts.
    try:
        with db.connection(settings) as conn:
            fn(conn, *args, **kwargs)
    except Exception as e:  # noqa: BLE001
        log.warning("could not update a task lease: %s", e)

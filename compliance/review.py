"""A person's decision on a held clip, and the timeout that blocks what nobody decided.

    pending -> released   (a reviewer: the private copy is signed and released)
    pending -> blocked    (a reviewer, optionally with a block rule for the works that held it;
                           or the timeout, failing closed)

Each decision locks the item, checks the revision the reviewer's view was drawn at (stale: 409)
and that the item is still pending (decided: 409 with its state), records the decision and
calls the listeners other domains registered (the audit log, the generation job) in the same
transaction, so a decision is never left unaudited or its job stuck.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

import index
from clipgate import db
from clipgate.errors import BadInput, Conflict, NotFound, Unavailable
from clipgate.files import sha256_file
from clipgate.settings import Settings, get_settings
from compliance import held, store, watermark
from compliance.release import signer
from compliance.signing import SigningError, soft_binding

log = logging.getLogger(__name__)

OUTCOMES = {"release": "released", "block": "blocked"}
MAX_REASON = 10_000
STALE = "this held clip changed since you opened it; reload it and try again"


@dataclass(frozen=True)
class Reviewer:
    """Who decides: label as the audit log names actors ("account:<id>", "api_key:<id>",
    "system:<task>"), their role, and their name (written into a manifest only when
    settings.review_record_reviewer_name is on)."""

    label: str
    role: str
    name: str | None = None


TIMEOUT = Reviewer("system:review-timeout", "system")

# (conn, item as public_review shows it, reviewer): run inside the decision's transaction.
Listener = Callable[[psycopg.Connection, dict[str, Any], Reviewer], None]
_listeners: list[Listener] = []


def on_review_decided(listener: Listener) -> None:
    """Call listener in the transaction of every decision on a held clip (complaints audits
    it; generator moves the clip's job on). A listener that raises undoes the decision."""
    if listener not in _listeners:
        _listeners.append(listener)


def _locked(conn: psycopg.Connection, review_id: str, revision: int | None) -> dict[str, Any]:
    row = store.get_review(conn, review_id=review_id, lock=True)
    if row is None:
        raise NotFound(f"no held clip with id {review_id!r}")
    if row["state"] != "pending":
        raise Conflict(f"held clip {review_id} was already decided: it is {row['state']}",
                       existing_id=str(row["id"]))
    if revision is not None and int(revision) != row["revision"]:
        raise Conflict(STALE, existing_id=str(row["id"]))
    return row


def _finish(conn: psycopg.Connection, row: dict[str, Any], state: str,
            decision: dict[str, Any], reviewer: Reviewer, settings: Settings,
            release_id: Any | None = None) -> dict[str, Any]:
    done = store.finish_review(conn, review_id=row["id"], state=state, decision=decision,
                               release_id=release_id)
    item = held.public_review(done, settings)
    for listener in _listeners:
        listener(conn, item, reviewer)
    return item


def _reason(reason: str | None) -> str:
    text = (reason or "").strip()
    if not text:
        raise BadInput("a written reason is required")
    if len(text) > MAX_REASON:
        raise BadInput(f"the reason is over {MAX_REASON} characters")
    return text


def decide_review(review_id: str, *, outcome: str, reason: str, reviewer: Reviewer,
                  revision: int | None, block_works: bool = False,
                  settings: Settings | None = None) -> dict[str, Any]:
    """Release (sign) or block a held clip. revision: the item's revision the reviewer saw
    (None: whatever is current, for an operator at the shell). block_works: with a block, also
    set the policy of the works that held it to block. Returns the item as decided."""
    settings = settings or get_settings()
    if outcome not in OUTCOMES:
        raise BadInput(f"the decision must be release or block, not {outcome!r}")
    if block_works and outcome != "block":
        raise BadInput("a block rule for the works goes only with a block")
    if reviewer.role not in ("reviewer", "admin"):
        raise BadInput(f"a {reviewer.role} may not decide held clips")
    decision = {"id": str(uuid.uuid4()), "outcome": outcome, "reason": _reason(reason),
                "reviewer_role": reviewer.role, "by": reviewer.label,
                "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "timeout": False}
    if outcome == "release":
        return _release(review_id, revision, decision, reviewer, settings)
    return _block(review_id, revision, decision, reviewer, block_works, settings)


def _release(review_id: str, revision: int | None, decision: dict[str, Any],
             reviewer: Reviewer, settings: Settings) -> dict[str, Any]:
    """Sign the private copy (before taking the lock: signing is slow), then record the release
    and the decision in one transaction; the signed file enters the store only after commit."""
    row = held.held_row(review_id, settings)
    _refuse_decided(row, revision)
    with db.connection(settings) as conn:
        check = store.get_check(conn, check_id=str(row["check_id"]))
    path = Path(row["path"])
    if not path.is_file():
        raise Unavailable(f"the held copy of {review_id} is missing; nothing was released")
    fp = index.fingerprint_file(path, settings)  # the released-clips index, as for any release
    release_id = str(uuid.uuid4())
    dst = settings.release_dir / f"{release_id}{path.suffix.lower()}"
    staged = settings.release_dir / ".staging" / dst.name
    staged.parent.mkdir(parents=True, exist_ok=True)
    human = {"decision_id": decision["id"], "outcome": "release", "decided_at": decision["at"],
             "reviewer_role": decision["reviewer_role"]}
    if settings.review_record_reviewer_name and reviewer.name:
        human["reviewer"] = reviewer.name
    compliance = {"check_id": str(row["check_id"]), "release_id": release_id,
                  "index_version": check["index_version"], "verdict": "release",
                  "gate_verdict": "review", "checked_at": check["created_at"].isoformat(),
                  "signals": check["signals"], "human_decision": human}
    try:
        key = row.get("watermark_key")  # in the held copy's frames since before its check
        bindings = ([soft_binding(watermark.ALGORITHM, watermark.value(key))]
                    if key is not None else None)
        signed = signer(settings).sign(path, staged, generator=row["generator"],
                                       compliance=compliance, title=row["filename"],
                                       soft_bindings=bindings)
    except (SigningError, ValueError) as e:
        staged.unlink(missing_ok=True)
        raise Unavailable(f"signing failed, nothing was released: {e}") from e
    try:
        with db.connection(settings) as conn:
            locked = _locked(conn, review_id, revision)
            store.insert_release(conn, release={
                "id": uuid.UUID(release_id), "check_id": row["check_id"],
                "file_sha256": sha256_file(staged), "size_bytes": staged.stat().st_size,
                "path": str(dst), "generator": row["generator"],
                "manifest_label": signed.get("manifest_label"),
                "manifest": signed.get("manifest"), "watermark_key": key})
            store.insert_release_frames(conn, release_id=release_id, fp=fp)
            item = _finish(conn, locked, "released", {**decision, "human_decision": human},
                           reviewer, settings, release_id=uuid.UUID(release_id))
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    os.replace(staged, dst)
    log.info("held clip %s released as %s by %s", review_id, release_id, reviewer.label)
    return item


def _refuse_decided(row: dict[str, Any], revision: int | None) -> None:
    """The lock-free pre-check: say 409 before doing slow work for nothing."""
    if row["state"] != "pending":
        raise Conflict(f"held clip {row['id']} was already decided: it is {row['state']}",
                       existing_id=str(row["id"]))
    if revision is not None and int(revision) != row["revision"]:
        raise Conflict(STALE, existing_id=str(row["id"]))


def _block(review_id: str, revision: int | None, decision: dict[str, Any], reviewer: Reviewer,
           block_works: bool, settings: Settings) -> dict[str, Any]:
    with db.connection(settings) as conn:
        row = _locked(conn, review_id, revision)
        works = [w for w in row["held_by"].get("works", []) if w.get("policy") != "block"]
        decision["blocked_works"] = [w["work_id"] for w in works] if block_works else []
        item = _finish(conn, row, "blocked", decision, reviewer, settings)
    for work_id in decision["blocked_works"]:
        try:
            index.set_work_policy(work_id, "block", settings=settings)
        except NotFound:
            log.warning("work %s is gone; no block rule for it", work_id)
        except Exception as e:
            raise Unavailable(f"the clip is blocked, but the block rule for work {work_id} "
                              f"was not saved: {e}") from e
    log.info("held clip %s blocked by %s", review_id, reviewer.label)
    return item


def expire_reviews(settings: Settings | None = None, *, limit: int = 100) -> list[dict[str, Any]]:
    """Block (failing closed) every held clip pending longer than settings.review_timeout_s;
    each decision is audited as a timeout. Returns the items blocked."""
    settings = settings or get_settings()
    limit_s = settings.review_timeout_s
    with db.connection(settings) as conn:
        done = []
        for row in store.overdue_reviews(conn, older_than_s=limit_s, limit=limit):
            decision = {"id": str(uuid.uuid4()), "outcome": "block", "timeout": True,
                        "reason": f"no reviewer decided within {limit_s:g} s "
                                  "(CLIPGATE_REVIEW_TIMEOUT_S); blocked, failing closed",
                        "reviewer_role": TIMEOUT.role, "by": TIMEOUT.label,
                        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                        "blocked_works": []}
            done.append(_finish(conn, row, "blocked", decision, TIMEOUT, settings))
    for item in done:
        log.warning("held clip %s timed out and was blocked", item["review_id"])
    return done


class ReviewTimeouts:
    """A daemon thread that runs expire_reviews every settings.review_sweep_s, for a process
    with no broker (whose beat runs it otherwise)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="review-timeouts", daemon=True)

    def start(self) -> ReviewTimeouts:
        self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                expire_reviews(self.settings)
            except Exception as e:  # noqa: BLE001 - a database blip must not end the loop
                log.error("could not block overdue held clips: %s: %s", type(e).__name__, e)
            self._stop.wait(max(0.05, self.settings.review_sweep_s))


def start_review_timeouts(settings: Settings) -> ReviewTimeouts | None:
    """Block overdue held clips from this process; None with a broker (the beat does it)."""
    if settings.broker_url:
        return None
    return ReviewTimeouts(settings).start()

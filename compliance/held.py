"""Clips held for review: a check with verdict `review` keeps a private copy of the clip, the
generator's identity (model, prompt hash, job) and the works and policies that held it, until a
person releases or blocks it (compliance.review).

The copy lives in settings.held_dir and is never served as a file: staff see it only as the
evidence's frames (review_media). Reads here are for the review queue and the API.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from PIL import Image

import index
from clipgate import db, metrics, pages
from clipgate.errors import BadInput, NotFound
from clipgate.files import copy_atomic, sha256_file
from clipgate.settings import Settings, get_settings
from compliance import store
from compliance.gate import CheckResult

log = logging.getLogger(__name__)

REVIEW_STATES = ("pending", "released", "blocked")
REVIEW_SORTS = tuple(store.REVIEW_SORTS)


def held_by(result: CheckResult) -> dict[str, Any]:
    """The works whose matches held the clip, each with its policy, and the gate's reasons."""
    works = [{"work_id": m.work_id, "title": m.title, "owner": m.owner, "policy": m.policy,
              "kind": m.kind, "score": round(float(m.score), 4),
              "frames_matched": m.frames_matched} for m in result.matches]
    return {"works": works, "reasons": result.reasons,
            "score": max((w["score"] for w in works), default=None)}


def hold_clip(path: Path, result: CheckResult, *, generator: dict[str, Any], source: str,
              settings: Settings, watermark_key: int | None = None) -> dict[str, Any]:
    """Keep a private copy of a clip the gate held for review, and its review item. A
    generation job retried after its clip was held gets the item its first attempt made.
    watermark_key: the key already in the clip's frames, kept for its release."""
    if result.verdict != "review":
        raise ValueError(f"only a clip held for review is kept for review, not {result.verdict}")
    item_id = uuid.uuid4()
    copy = copy_atomic(Path(path), settings.held_dir / f"{item_id}{Path(path).suffix.lower()}")
    try:
        with db.connection(settings) as conn:
            row = store.insert_review(conn, item={
                "id": item_id, "check_id": uuid.UUID(result.check_id), "source": source,
                "filename": result.filename, "path": str(copy),
                "file_sha256": sha256_file(copy), "size_bytes": copy.stat().st_size,
                "generator": generator, "held_by": held_by(result),
                "watermark_key": watermark_key})
            if row is None:
                row = store.review_where(conn, job_id=generator.get("job_id"))
    except BaseException:
        copy.unlink(missing_ok=True)
        raise
    if str(row["id"]) != str(item_id):
        copy.unlink(missing_ok=True)  # the job's first hold stands
    log.info("check %s held for review as %s", result.check_id, row["id"])
    return row


def _when(value: Any) -> str | None:
    return value.isoformat() if value else None


def public_review(row: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """A held clip as the API, the CLI and the pages show it (never the private copy's path).
    sla_left_s: seconds until the timeout blocks it (pending only; negative when overdue)."""
    age = float(row["age_s"])
    pending = row["state"] == "pending"
    deadline = row["created_at"] + dt.timedelta(seconds=settings.review_timeout_s)
    out = {
        "review_id": str(row["id"]),
        "check_id": str(row["check_id"]),
        "state": row["state"],
        "revision": row["revision"],
        "created_at": _when(row["created_at"]),
        "age_s": round(age, 1),
        "deadline": _when(deadline) if pending else None,
        "sla_left_s": round(settings.review_timeout_s - age, 1) if pending else None,
        "source": row["source"],
        "filename": row["filename"],
        "file_sha256": row["file_sha256"],
        "generator": row["generator"],
        "held_by": row["held_by"],
        "decided_at": _when(row["decided_at"]),
        "decision": row["decision"],
        "release_id": str(row["release_id"]) if row["release_id"] else None,
    }
    if out["release_id"]:
        out["download_url"] = f"/v1/releases/{out['release_id']}/file"
    return out


def list_reviews(*, state: str | None = None, source: str | None = None, sort: str = "age",
                 order: str | None = None, limit: int | None = None, cursor: str | None = None,
                 settings: Settings | None = None) -> pages.Page[dict[str, Any]]:
    """A page of held clips, oldest first by default (sort: age, score or created; order asc or
    desc), with the total and the next page's cursor (clipgate.pages)."""
    settings = settings or get_settings()
    if state is not None and state not in REVIEW_STATES:
        raise BadInput(f"state must be one of {', '.join(REVIEW_STATES)}, not {state!r}")
    if sort not in store.REVIEW_SORTS:
        raise BadInput(f"sort must be one of {', '.join(REVIEW_SORTS)}, not {sort!r}")
    if order not in (None, "asc", "desc"):
        raise BadInput(f"order must be asc or desc, not {order!r}")
    # No order: most pressing first (the oldest, the highest score, the newest filed). Age
    # grows as created_at falls, so its SQL order is the other way round.
    descending = {"age": False, "score": True, "created": True}[sort] if order is None \
        else (order == "desc") != (sort == "age")
    with db.connection(settings) as conn:
        page = store.list_reviews(conn, state=state, source=source, sort=sort,
                                  descending=descending, cursor=cursor, limit=limit)
    return page.map(lambda r: public_review(r, settings))


def held_row(review_id: str, settings: Settings) -> dict[str, Any]:
    """The item's row (with its private path); NotFound for an unknown or malformed id."""
    with db.connection(settings) as conn:
        row = store.get_review(conn, review_id=review_id)
    if row is None:
        raise NotFound(f"no held clip with id {review_id!r}")
    return row


def get_review(review_id: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """One held clip with the check that held it (verdict, reasons, evidence)."""
    settings = settings or get_settings()
    row = held_row(review_id, settings)
    out = public_review(row, settings)
    out["check"] = get_check(str(row["check_id"]), settings=settings)
    return out


def review_for_job(job_id: Any, *, settings: Settings | None = None) -> dict[str, Any] | None:
    """The held clip of a generation job, or None."""
    settings = settings or get_settings()
    with db.connection(settings) as conn:
        row = store.review_where(conn, job_id=str(job_id))
    return public_review(row, settings) if row else None


def get_check(check_id: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """A recorded check: verdict, reasons, evidence and timings, and what came of it (its
    release, or its held clip)."""
    with db.connection(settings) as conn:
        row = store.get_check(conn, check_id=check_id)
        if row is None:
            raise NotFound(f"no check with id {check_id!r}")
        release = store.release_for_check(conn, check_id=check_id)
        held = store.review_where(conn, check_id=check_id)
    return {
        "check_id": str(row["id"]), "verdict": row["verdict"], "reasons": row["reasons"],
        "index_version": row["index_version"], "created_at": _when(row["created_at"]),
        "source": row["source"], "filename": row["filename"], "sha256": row["sha256"],
        "duration_s": row["duration_s"], "frames_sampled": row["frames_sampled"],
        **(row["evidence"] or {}), "timings": row["timings"],
        "release_id": str(release["id"]) if release else None,
        "review_id": str(held["id"]) if held else None,
        "review_state": held["state"] if held else None,
    }


def review_media(review_id: str, which: str, frame_t: float | None = None, *,
                 work_id: str | None = None, settings: Settings | None = None) -> bytes:
    """A JPEG of the held clip's frame, or of a matched work's frame, at frame_t seconds (the
    first matched frame when None), for the evidence drawn side by side."""
    settings = settings or get_settings()
    if which not in ("clip", "work"):
        raise BadInput("which must be clip or work")
    if frame_t is not None and not 0 <= float(frame_t) <= 24 * 3600:
        raise BadInput("the frame time must be a number of seconds from the start")
    row = held_row(review_id, settings)
    works = [w["work_id"] for w in row["held_by"].get("works", [])]
    if which == "clip":
        path = row["path"]
    else:
        work_id = work_id or (works[0] if works else None)
        if work_id not in works:  # only the works that held this clip
            raise NotFound(f"work {work_id} did not hold clip {review_id}")
        path = index.get_work(str(work_id), settings=settings)["media_path"]
    if not path or not Path(path).is_file():
        raise NotFound(f"the {which}'s media is no longer stored")
    rgb = index.frames_at(Path(path), [float(frame_t or 0.0)])[0]
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="JPEG", quality=85)
    return out.getvalue()


def _backlog_gauges(settings: Settings) -> Iterator[metrics.Sample]:
    """Held clips waiting for a reviewer, and how long the oldest has waited (for /metrics)."""
    with db.connection(settings) as conn:
        row = conn.execute("SELECT count(*) AS n, EXTRACT(EPOCH FROM now() - min(created_at)) "
                           "AS oldest_s FROM review_items WHERE state = 'pending'").fetchone()
    yield ("clipgate_review_backlog", "Items waiting for a person: held clips and open claims",
           {"kind": "held_clip"}, row["n"])
    yield ("clipgate_review_backlog_oldest_seconds", "How long the oldest waiting item has waited",
           {"kind": "held_clip"}, float(row["oldest_s"] or 0.0))


metrics.gauge_source("compliance.held", _backlog_gauges)

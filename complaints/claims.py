"""Filing a claim, reading one, and listing them.

Filing checks everything it can before it writes anything: the statement, the remedies, which
release the clip is, which work it copies, and that the claimant has not filed the same claim
before. Only then is a new work registered (when the claimant uploaded one) and the claim
inserted with its audit row; triage is queued after the commit.
"""

from __future__ import annotations

import datetime as dt
import io
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from PIL import Image
from psycopg.types.json import Jsonb

import compliance
import index
from clipgate import db, metrics, pages
from clipgate.errors import BadInput, Conflict, NotFound
from clipgate.settings import Settings, get_settings
from complaints import audit, store, triage
from complaints.actors import Actor
from complaints.released import identify_clip
from complaints.store import get_claim
from complaints.view import summary
from complaints.workflow import STATES

log = logging.getLogger(__name__)

REMEDIES = ("takedown", "block", "exclude_training")
STATEMENT = {
    "good_faith": "you believe in good faith that the use is not authorised",
    "accurate": "the information in the claim is accurate",
    "authorised": "you own the rights or may act for their owner",
}
MAX_DETAILS = 10_000
SORTS = {"age": "c.state_since", "priority": "c.priority", "score": "c.score",
         "created": "c.created_at"}
# The natural order of each sort when none is given: oldest, most urgent, strongest, newest.
DEFAULT_ORDER = {"age": "desc", "priority": "asc", "score": "desc", "created": "desc"}


def _statement(statement: dict[str, Any] | None) -> dict[str, Any]:
    statement = statement or {}
    missing = [words for key, words in STATEMENT.items() if statement.get(key) is not True]
    signature = str(statement.get("signature") or "").strip()
    if missing or not signature:
        need = missing + ([] if signature else ["your typed full name as signature"])
        raise BadInput("the claim needs your statement: confirm that " + "; that ".join(need))
    if len(signature) > 200:
        raise BadInput("the signature is over 200 characters")
    return {**{k: True for k in STATEMENT}, "signature": signature,
            "signed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


def _remedies(remedies: list[str] | None) -> list[str]:
    chosen = list(dict.fromkeys(r.strip() for r in (remedies or []) if r and r.strip()))
    if not chosen:
        raise BadInput("choose at least one remedy: " + ", ".join(REMEDIES))
    bad = [r for r in chosen if r not in REMEDIES]
    if bad:
        raise BadInput(f"unknown remedy {bad[0]!r}; remedies are {', '.join(REMEDIES)}")
    return chosen


def file_claim(actor: Actor, *, release_id: str | None = None, clip_path: Path | None = None,
               clip_name: str | None = None, work_id: str | None = None,
               work_path: Path | None = None, work_title: str | None = None,
               statement: dict[str, Any], remedies: list[str], details: str | None = None,
               settings: Settings | None = None) -> dict[str, Any]:
    """File a claim that a released clip copies a work. Returns the claim (see get_claim).

    The clip: release_id, or clip_path (an uploaded copy, identified by its manifest or by its
    frames). The work: work_id (one of the claimant's), or work_path + work_title (registered
    for the claimant with policy review). Raises BadInput (400), TooLarge (413), NotFound (404:
    no such release or work) and Conflict (409: the same claim was filed before; existing_id
    names it)."""
    settings = settings or get_settings()
    store.require_role(actor, "rights_holder", doing="file claims")
    statement = _statement(statement)
    remedies = _remedies(remedies)
    details = (details or "").strip() or None
    if details and len(details) > MAX_DETAILS:
        raise BadInput(f"the details are over {MAX_DETAILS} characters")
    if (release_id is None) == (clip_path is None):
        raise BadInput("name the clip: give its release id, or upload the clip (not both)")
    if (work_id is None) == (work_path is None):
        raise BadInput("name the work: choose one of your works, or upload it (not both)")
    if work_path is not None and not (work_title or "").strip():
        raise BadInput("give the uploaded work a title")
    with db.connection(settings) as conn:
        claimant = store.account(conn, actor.account_id)
    if claimant is None or claimant["disabled_at"] is not None:
        raise NotFound("the claimant's account does not exist or is disabled")

    if release_id is not None:
        if store.parse_id(release_id) is None:
            raise NotFound(f"no released clip with id {release_id!r} (a release id is a UUID)")
        release = compliance.get_release(release_id, settings=settings)
        how, upload = "release_id", None
    else:
        found = identify_clip(Path(clip_path), name=clip_name, settings=settings)
        release, how, upload = found.release, found.how, found.upload
    new_work = None
    if work_id is not None:
        work = _own_work(actor, work_id, settings)
        _refuse_repeat(actor, release["id"], work["id"], settings)
    else:
        work, new_work = _upload_work(claimant, Path(work_path), work_title.strip(), settings)
        _refuse_repeat(actor, release["id"], work["id"], settings)
    try:
        claim_id = _insert(actor, release, how, upload, work, statement, remedies, details,
                           new_work is not None, settings)
    except BaseException:
        if new_work is not None:  # nothing half-written: the work goes with the claim
            index.remove_work(str(new_work["id"]), settings)
        raise
    triage.submit(claim_id, settings)
    return get_claim(actor, claim_id, settings=settings)


def _own_work(actor: Actor, work_id: str, settings: Settings) -> dict[str, Any]:
    try:
        work = index.get_work(work_id, settings) if store.parse_id(work_id) else None
    except NotFound:
        work = None
    if work is None or str(work.get("account_id")) != actor.account_id or \
            work["status"] not in ("active", "pending"):
        raise NotFound(f"none of your works has the id {work_id}")
    return work


def _upload_work(claimant: dict[str, Any], path: Path, title: str, settings: Settings
                 ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(work, the new work if one was registered). The same file registered before is that
    work: two claimants who upload one file claim one work, so their claims merge at triage."""
    try:
        work = index.register_work(path, owner=claimant["organisation"] or claimant["name"],
                                   title=title, policy="review", filename=path.name,
                                   account_id=str(claimant["id"]), settings=settings)
        return work, work
    except Conflict as e:
        if not e.existing_id:
            raise
        return index.get_work(e.existing_id, settings), None


def _refuse_repeat(actor: Actor, release_id: Any, work_id: Any, settings: Settings) -> None:
    with db.connection(settings) as conn:
        first = conn.execute("SELECT id, number FROM claims WHERE claimant_id = %s AND "
                             "release_id = %s AND work_id = %s",
                             (store.parse_id(actor.account_id), release_id, work_id)).fetchone()
    if first:
        raise Conflict(f"you already claimed this clip copies this work: claim {first['number']} "
                       f"(id {first['id']})", existing_id=str(first["id"]))


def _insert(actor: Actor, release: dict[str, Any], how: str, upload: dict[str, Any] | None,
            work: dict[str, Any], statement: dict[str, Any], remedies: list[str],
            details: str | None, new_work: bool, settings: Settings) -> str:
    try:
        with db.connection(settings) as conn:
            row = conn.execute(
                "INSERT INTO claims (claimant_id, release_id, clip_identified_by, clip_upload, "
                "work_id, statement, remedies, details) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "RETURNING id, number",
                (store.parse_id(actor.account_id), release["id"], how,
                 Jsonb(upload) if upload else None, work["id"], Jsonb(statement),
                 Jsonb(remedies), details)).fetchone()
            audit.record(conn, actor, "claim.file", subject_type="claim",
                         subject_id=str(row["id"]), claim_id=row["id"], to_state="submitted",
                         detail={"release_id": str(release["id"]), "identified_by": how,
                                 "work_id": str(work["id"]), "new_work": new_work,
                                 "remedies": remedies})
    except psycopg.errors.UniqueViolation:  # the same claim filed at the same moment
        _refuse_repeat(actor, release["id"], work["id"], settings)
        raise
    log.info("claim %s filed on release %s", row["number"], release["id"])
    return str(row["id"])


SORT_KINDS = {"age": "ts", "priority": "int", "score": "num", "created": "ts"}


def list_claims(actor: Actor, *, state: str | None = None, owner: str | None = None,
                sort: str = "age", order: str | None = None, limit: int | None = None,
                cursor: str | None = None,
                settings: Settings | None = None) -> pages.Page[dict[str, Any]]:
    """A page of the claims this actor may see (a rights holder: their own), filtered and
    sorted, with the total and the cursor of the next page (clipgate.pages).

    owner: "me" (assigned to the caller), "none" (unassigned) or an account id.
    sort: age | priority | score | created; order: asc | desc (default: the natural order)."""
    store.require_role(actor, "rights_holder", "reviewer", "admin", doing="list claims")
    if state is not None and state not in STATES:
        raise BadInput(f"state must be one of {', '.join(STATES)}, not {state!r}")
    if sort not in SORTS:
        raise BadInput(f"sort must be one of {', '.join(SORTS)}, not {sort!r}")
    order = order or DEFAULT_ORDER[sort]
    if order not in ("asc", "desc"):
        raise BadInput(f"order must be asc or desc, not {order!r}")
    where, args = [], []
    if actor.role == "rights_holder":
        where.append("c.claimant_id = %s")
        args.append(store.parse_id(actor.account_id))
    if state:
        where.append("c.state = %s")
        args.append(state)
    if owner == "me":
        where.append("c.assignee_id = %s")
        args.append(store.parse_id(actor.account_id))
    elif owner == "none":
        where.append("c.assignee_id IS NULL")
    elif owner:
        if store.parse_id(owner) is None:
            raise BadInput("owner must be me, none or an account id")
        where.append("c.assignee_id = %s")
        args.append(store.parse_id(owner))
    # Age ascending means youngest first, so it runs against state_since.
    descending = (order == "desc") != (sort == "age")
    by = pages.Order(f"claims:{sort}:{order}", (
        pages.Key(SORTS[sort], SORT_KINDS[sort], descending), pages.Key("c.number", "int")))
    with db.connection(settings) as conn:
        page = pages.fetch_page(conn, columns=SUMMARY_COLUMNS, source=SUMMARY_FROM, order=by,
                                where=where, args=args, cursor=cursor, limit=limit)
    works = index.works_by_id({r["work_id"] for r in page.items}, settings=settings)
    return page.map(lambda r: summary({**r, "work_title": works[str(r["work_id"])]["title"],
                                       "work_owner": works[str(r["work_id"])]["owner"],
                                       "work_account_id": works[str(r["work_id"])]["account_id"]},
                                      staff=actor.role != "rights_holder"))


# The work's title and owner come from the index (index.works_by_id).
SUMMARY_COLUMNS = ("c.*, extract(epoch FROM now() - c.state_since) AS age_s, "
                   "a.name AS claimant_name, r.name AS assignee_name")
SUMMARY_FROM = ("claims c JOIN accounts a ON a.id = c.claimant_id "
                "LEFT JOIN accounts r ON r.id = c.assignee_id")


def claim_media(actor: Actor, claim_id: str, which: str, frame_t: float | None = None, *,
                settings: Settings | None = None) -> bytes:
    """A JPEG of the clip's or the work's frame at frame_t seconds (the first matched frame when
    None), for the evidence shown side by side."""
    if which not in ("clip", "work"):
        raise BadInput("which must be clip or work")
    if frame_t is not None and not 0 <= float(frame_t) <= 24 * 3600:
        raise BadInput("the frame time must be a number of seconds from the start")
    with db.connection(settings) as conn:
        claim = store.visible_claim(conn, actor, claim_id)
    path = (compliance.get_release(str(claim["release_id"]), settings=settings)["path"]
            if which == "clip" else
            index.get_work(str(claim["work_id"]), settings=settings)["media_path"])
    if frame_t is None:
        pairs = (claim["evidence"] or {}).get("pairs") or []
        frame_t = pairs[0][f"{which}_t"] if pairs else 0.0
    if not path or not Path(path).is_file():
        raise NotFound(f"the {which}'s media is no longer stored")
    rgb = index.frames_at(Path(path), [float(frame_t)])[0]
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="JPEG", quality=85)
    return out.getvalue()


def service_levels(actor: Actor, *, settings: Settings | None = None) -> dict[str, Any]:
    """Per state: how many claims are in it now, and their oldest and median age (seconds);
    and, from the audit log, how long claims spent in it before moving on."""
    store.require_role(actor, "reviewer", "admin", "system", doing="see service levels")
    with db.connection(settings) as conn:
        now = conn.execute(
            "SELECT state, count(*) AS n, max(extract(epoch FROM now() - state_since)) AS oldest, "
            "percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM now() - "
            "state_since)) AS median FROM claims GROUP BY state").fetchall()
        spent = conn.execute(
            "WITH t AS (SELECT from_state, extract(epoch FROM at - lag(at) OVER "
            "(PARTITION BY claim_id ORDER BY id)) AS s, to_state FROM audit_log "
            "WHERE claim_id IS NOT NULL AND to_state IS NOT NULL) "
            "SELECT from_state AS state, count(*) AS n, avg(s) AS mean, "
            "percentile_cont(0.5) WITHIN GROUP (ORDER BY s) AS median, max(s) AS longest "
            "FROM t WHERE s IS NOT NULL AND from_state IS NOT NULL GROUP BY from_state"
        ).fetchall()
    current = {r["state"]: r for r in now}
    past = {r["state"]: r for r in spent}
    out: dict[str, Any] = {}
    for s in STATES:
        c, p = current.get(s), past.get(s)
        out[s] = {
            "count": int(c["n"]) if c else 0,
            "oldest_s": round(float(c["oldest"]), 1) if c else None,
            "median_age_s": round(float(c["median"]), 1) if c else None,
            "left": int(p["n"]) if p else 0,
            "median_time_in_state_s": round(float(p["median"]), 1) if p else None,
            "longest_time_in_state_s": round(float(p["longest"]), 1) if p else None,
        }
    return {"states": out}


# Claims a person still has to act on (triaged ones wait for a reviewer, info_requested for the
# claimant; submitted ones for triage).
OPEN_STATES = ("submitted", "triaged", "in_review", "info_requested")


def _backlog_gauges(settings: Settings) -> Iterator[metrics.Sample]:
    """Open claims by state, and the oldest's age in its state (for /metrics)."""
    with db.connection(settings) as conn:
        rows = {r["state"]: r for r in conn.execute(
            "SELECT state, count(*) AS n, EXTRACT(EPOCH FROM now() - min(state_since)) AS oldest_s "
            "FROM claims WHERE state = ANY(%s) GROUP BY state", (list(OPEN_STATES),)).fetchall()}
    for state in OPEN_STATES:
        row = rows.get(state) or {"n": 0, "oldest_s": 0.0}
        yield ("clipgate_review_backlog", "Items waiting for a person: held clips and open claims",
               {"kind": f"claim_{state}"}, row["n"])
        yield ("clipgate_review_backlog_oldest_seconds",
               "How long the oldest waiting item has waited", {"kind": f"claim_{state}"},
               float(row["oldest_s"] or 0.0))


metrics.gauge_source("complaints.claims", _backlog_gauges)

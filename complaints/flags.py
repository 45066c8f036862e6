"""Retraining flags: for the ML team, a work, the claim that upheld it, and the model versions
whose outputs matched it. Read and exported through the API and the CLI, marked handled once done.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import index
from clipgate import db, pages
from clipgate.errors import BadInput, Conflict, NotFound
from clipgate.settings import Settings
from complaints import audit, store
from complaints.actors import SYSTEM, Actor

FORMATS = ("jsonl", "csv")
CSV_FIELDS = ("id", "work_id", "work_title", "work_owner", "work_sha256", "claim_id",
              "claim_number", "model_versions", "created_at", "handled_at", "handled_by",
              "handled_note")
_SQL = (  # the work's title, owner and sha256 come from the index (index.works_by_id)
    "SELECT f.*, c.number AS claim_number FROM retraining_flags f "
    "JOIN claims c ON c.id = f.claim_id"
)


def _views(rows: list[dict[str, Any]], settings: Settings | None) -> list[dict[str, Any]]:
    works = index.works_by_id({r["work_id"] for r in rows}, settings=settings)
    return [_view(r, works[str(r["work_id"])]) for r in rows]


def _view(r: dict[str, Any], work: dict[str, Any]) -> dict[str, Any]:
    return {"id": str(r["id"]), "work_id": str(r["work_id"]), "work_title": work["title"],
            "work_owner": work["owner"], "work_sha256": work["sha256"],
            "claim_id": str(r["claim_id"]), "claim_number": r["claim_number"],
            "model_versions": r["model_versions"], "created_at": r["created_at"].isoformat(),
            "handled_at": r["handled_at"].isoformat() if r["handled_at"] else None,
            "handled_by": r["handled_by"], "handled_note": r["handled_note"]}


def list_flags(actor: Actor, *, open_only: bool = True,
               settings: Settings | None = None) -> list[dict[str, Any]]:
    """Retraining flags, oldest first; open_only leaves out those marked handled."""
    store.require_role(actor, "reviewer", "admin", "system", doing="read retraining flags")
    where = " WHERE f.handled_at IS NULL" if open_only else ""
    with db.connection(settings) as conn:
        rows = conn.execute(f"{_SQL}{where} ORDER BY f.created_at, f.id").fetchall()
    return _views(rows, settings)


FLAGS_ORDER = pages.Order("flags:oldest", (pages.Key("f.created_at", "ts"),
                                            pages.Key("f.id", "uuid")))


def flags_page(actor: Actor, *, open_only: bool = True, cursor: str | None = None,
               limit: int | None = None,
               settings: Settings | None = None) -> pages.Page[dict[str, Any]]:
    """A page of retraining flags, oldest first, with the total (clipgate.pages)."""
    store.require_role(actor, "reviewer", "admin", "system", doing="read retraining flags")
    with db.connection(settings) as conn:
        page = pages.fetch_page(
            conn, columns="f.*, c.number AS claim_number",
            source="retraining_flags f JOIN claims c ON c.id = f.claim_id", order=FLAGS_ORDER,
            where=["f.handled_at IS NULL"] if open_only else [], cursor=cursor, limit=limit)
    page.items = _views(page.items, settings)
    return page


def handle_flag(actor: Actor, flag_id: str, note: str, *,
                settings: Settings | None = None) -> dict[str, Any]:
    """Mark a flag handled (the work is out of the training data), with a note saying how."""
    store.require_role(actor, "reviewer", "admin", "system", doing="mark retraining flags handled")
    note = (note or "").strip()
    if not note:
        raise BadInput("say how the flag was handled (a note is required)")
    if len(note) > 2000:
        raise BadInput("the note is over 2000 characters")
    fid = store.parse_id(flag_id)
    with db.connection(settings) as conn:
        row = conn.execute("SELECT * FROM retraining_flags WHERE id = %s FOR UPDATE",
                           (fid,)).fetchone() if fid else None
        if row is None:
            raise NotFound(f"no retraining flag with id {flag_id}")
        if row["handled_at"] is not None:
            when = row["handled_at"].strftime("%Y-%m-%d %H:%M")
            raise Conflict(f"flag {flag_id} was already handled at {when} by "
                           f"{row['handled_by']}", existing_id=str(row["id"]))
        conn.execute("UPDATE retraining_flags SET handled_at = now(), handled_by = %s, "
                     "handled_note = %s WHERE id = %s", (actor.label, note, fid))
        audit.record(conn, actor, "flag.handle", subject_type="retraining_flag",
                     subject_id=str(fid), claim_id=row["claim_id"], reason=note)
        row = conn.execute(f"{_SQL} WHERE f.id = %s", (fid,)).fetchone()
    return _views([row], settings)[0]


def export_flags(fmt: str, *, open_only: bool = True, actor: Actor = SYSTEM,
                 settings: Settings | None = None) -> str:
    """The flags as JSON lines or CSV (model_versions as JSON in one CSV column)."""
    if fmt not in FORMATS:
        raise BadInput(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    flags = list_flags(actor, open_only=open_only, settings=settings)
    if fmt == "jsonl":
        return "".join(json.dumps(f, sort_keys=True) + "\n" for f in flags)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for f in flags:
        row = {**f, "model_versions": json.dumps(f["model_versions"])}
        writer.writerow({k: _csv_cell(v) for k, v in row.items()})
    return out.getvalue()


# A spreadsheet runs a cell that starts with one of these as a formula (=HYPERLINK(...) in a
# work's title would be a link, or worse, in the ML team's sheet).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> Any:
    """OWASP's CSV-injection rule: text that a spreadsheet would read as a formula gets a
    leading apostrophe, so it shows as the text it is."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value

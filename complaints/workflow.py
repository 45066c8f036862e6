"""The claim state machine, and the people's moves through it: assign, decide, answer.

    submitted -> triaged -> in_review -> upheld | rejected
                              in_review <-> info_requested  (a question to the claimant)

Each move locks the claim, checks the revision the caller's form was drawn at (a stale form is
refused), changes the state and writes the audit row in one transaction.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from clipgate import db
from clipgate.errors import BadInput, Conflict
from clipgate.settings import Settings, get_settings
from complaints import audit, notify, store, takedown
from complaints.actors import Actor

log = logging.getLogger(__name__)

STATES = ("submitted", "triaged", "in_review", "info_requested", "upheld", "rejected")
OPEN_STATES = ("submitted", "triaged", "in_review", "info_requested")
TRANSITIONS = {
    "submitted": ("triaged",),
    "triaged": ("in_review",),
    "in_review": ("upheld", "rejected", "info_requested"),
    "info_requested": ("in_review",),
    "upheld": (),
    "rejected": (),
}
OUTCOMES = {"uphold": "upheld", "reject": "rejected", "request_info": "info_requested"}
ACTIONS = ("takedown", "block", "exclude_training", "rescan_revoke", "rescan_flag")
MAX_TEXT = 10_000
STALE = "this claim changed since you opened it; reload it and try again"


def transition(conn: psycopg.Connection, actor: Actor, claim: dict[str, Any], to_state: str, *,
               action: str, reason: str | None = None, detail: dict[str, Any] | None = None,
               sets: dict[str, Any] | None = None) -> dict[str, Any]:
    """Move a locked claim to to_state (and set `sets` columns), bump its revision, audit it."""
    frm = claim["state"]
    if to_state not in TRANSITIONS.get(frm, ()):
        allowed = ", ".join(TRANSITIONS.get(frm, ())) or "nothing: it is decided"
        raise Conflict(f"claim {claim['number']} is {frm.replace('_', ' ')}; it cannot go to "
                       f"{to_state.replace('_', ' ')} (from {frm} it can go to: {allowed})",
                       existing_id=str(claim["id"]))
    sets = dict(sets or {})
    cols = "".join(f", {c} = %s" for c in sets)
    values = [Jsonb(v) if isinstance(v, (dict, list)) else v for v in sets.values()]
    row = conn.execute(
        f"UPDATE claims SET state = %s, state_since = now(), revision = revision + 1, "
        f"updated_at = now(){cols} WHERE id = %s RETURNING *",
        (to_state, *values, claim["id"]),
    ).fetchone()
    audit.record(conn, actor, action, subject_type="claim", subject_id=str(claim["id"]),
                 claim_id=claim["id"], from_state=frm, to_state=to_state, reason=reason,
                 detail=detail)
    return row


def _locked(conn: psycopg.Connection, actor: Actor, claim_id: str, revision: int
            ) -> dict[str, Any]:
    claim = store.visible_claim(conn, actor, claim_id, lock=True)
    if int(revision) != claim["revision"]:
        raise Conflict(STALE, existing_id=str(claim["id"]))
    return claim


def required_text(value: str | None, what: str) -> str:
    """value stripped; BadInput when it is empty or over MAX_TEXT characters."""
    text = (value or "").strip()
    if not text:
        raise BadInput(f"{what} is required")
    if len(text) > MAX_TEXT:
        raise BadInput(f"{what} is over {MAX_TEXT} characters")
    return text


def assign_claim(actor: Actor, claim_id: str, *, revision: int, assignee_id: str | None = None,
                 settings: Settings | None = None) -> dict[str, Any]:
    """Give a claim to a reviewer (the caller when assignee_id is None). A triaged claim moves
    into review; one already in review or waiting for the claimant only changes hands."""
    store.require_role(actor, "reviewer", "admin", doing="assign claims")
    assignee_id = assignee_id or actor.account_id
    if not assignee_id:
        raise BadInput("name the reviewer to assign the claim to (this key acts for no account)")
    with db.connection(settings) as conn:
        claim = _locked(conn, actor, claim_id, revision)
        person = store.account(conn, assignee_id)
        if person is None or person["role"] not in ("reviewer", "admin"):
            raise BadInput(f"{assignee_id} is not a reviewer's account")
        if person["disabled_at"] is not None:
            raise BadInput(f"the account of {person['name']} is disabled")
        detail = {"assignee_id": str(person["id"]), "assignee": person["name"],
                  "previous": str(claim["assignee_id"]) if claim["assignee_id"] else None}
        if claim["state"] == "triaged":
            transition(conn, actor, claim, "in_review", action="claim.assign", detail=detail,
                       sets={"assignee_id": person["id"]})
        elif claim["state"] in ("in_review", "info_requested"):
            conn.execute("UPDATE claims SET assignee_id = %s, revision = revision + 1, "
                         "updated_at = now() WHERE id = %s", (person["id"], claim["id"]))
            audit.record(conn, actor, "claim.assign", subject_type="claim",
                         subject_id=str(claim["id"]), claim_id=claim["id"], detail=detail)
        else:
            raise Conflict(f"claim {claim['number']} is {claim['state'].replace('_', ' ')}; only "
                           "triaged claims and claims in review can be assigned",
                           existing_id=str(claim["id"]))
    return store.get_claim(actor, claim_id, settings=settings)


def decide_claim(actor: Actor, claim_id: str, *, revision: int, outcome: str, reason: str,
                 actions: Sequence[str] = (), settings: Settings | None = None) -> dict[str, Any]:
    """Uphold (with actions), reject, or ask the claimant for more information; the claimant is
    notified. Only a claim in review can be decided; open duplicates of it follow an uphold or a
    rejection."""
    settings = settings or get_settings()
    store.require_role(actor, "reviewer", "admin", doing="decide claims")
    if outcome not in OUTCOMES:
        raise BadInput(f"outcome must be one of {', '.join(OUTCOMES)}, not {outcome!r}")
    reason = required_text(reason, "a written reason")
    actions = _check_actions(outcome, actions)
    followups: list[str] = []
    with db.connection(settings) as conn:
        claim = _locked(conn, actor, claim_id, revision)
        if claim["state"] != "in_review":
            raise Conflict(f"claim {claim['number']} is {claim['state'].replace('_', ' ')}, not "
                           "in review, so it cannot be decided"
                           + (" (assign it first)" if claim["state"] == "triaged" else ""),
                           existing_id=str(claim["id"]))
        if outcome == "request_info":
            _request_info(conn, actor, claim, reason)
        else:
            followups = _decide(conn, actor, claim, outcome, reason, actions, settings)
    takedown.start_rescans(followups, settings)
    notify.submit_send(settings)
    return store.get_claim(actor, claim_id, settings=settings)


def _check_actions(outcome: str, actions: Sequence[str]) -> list[str]:
    actions = list(dict.fromkeys(actions or ()))
    unknown = [a for a in actions if a not in ACTIONS]
    if unknown:
        raise BadInput(f"unknown action {unknown[0]!r}; actions are {', '.join(ACTIONS)}")
    if outcome == "uphold" and not actions:
        raise BadInput("an upheld claim needs at least one action: " + ", ".join(ACTIONS))
    if outcome != "uphold" and actions:
        raise BadInput("actions are taken only when a claim is upheld")
    if "rescan_revoke" in actions and "rescan_flag" in actions:
        raise BadInput("a rescan either revokes or flags what it finds: choose one")
    return actions


def _request_info(conn: psycopg.Connection, actor: Actor, claim: dict[str, Any],
                  question: str) -> None:
    conn.execute("INSERT INTO claim_messages (claim_id, author_id, kind, body) "
                 "VALUES (%s, %s, 'info_request', %s)",
                 (claim["id"], store.parse_id(actor.account_id), question))
    row = transition(conn, actor, claim, "info_requested", action="claim.request_info",
                     reason=question)
    notify.enqueue(conn, row, event="claim.info_requested",
                   subject=f"Claim {claim['number']}: we need more information",
                   text=f"The reviewer asks:\n\n{question}\n\nPlease answer on the claim's page.")


def _decide(conn: psycopg.Connection, actor: Actor, claim: dict[str, Any], outcome: str,
            reason: str, actions: list[str], settings: Settings) -> list[str]:
    """Record the decision (and carry it out, for an uphold); returns rescans to start."""
    to_state = OUTCOMES[outcome]
    decision = {"outcome": outcome, "actions": actions, "reason": reason, "by": actor.label,
                "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    # Locked before anything is audited: a move on a duplicate locks it first and takes the
    # audit chain's lock second, so taking them the other way round here would deadlock.
    dups = _lock_duplicates(conn, claim)
    done = takedown.carry_out(conn, actor, claim, actions, reason, settings) if actions else {}
    rescans = done.pop("rescans", [])
    row = transition(conn, actor, claim, to_state, action=f"claim.{outcome}", reason=reason,
                     detail={"actions": actions, **done}, sets={"decision": decision})
    _tell_decision(conn, row, outcome, reason, actions)
    _follow_duplicates(conn, actor, row, decision, dups)
    return rescans


def _tell_decision(conn: psycopg.Connection, claim: dict[str, Any], outcome: str, reason: str,
                   actions: list[str]) -> None:
    words = {"takedown": "the clip was taken down", "block": "future outputs that match your "
             "work are blocked", "exclude_training": "your work is flagged for exclusion from "
             "training", "rescan_revoke": "every released clip is being rescanned and matches "
             "taken down", "rescan_flag": "every released clip is being rescanned and matches "
             "flagged"}
    if outcome == "uphold":
        done = "".join(f"\n- {words[a]}" for a in actions)
        text = f"Your claim was upheld.\n\nWhat we did:{done}\n\nReason: {reason}"
    else:
        text = f"Your claim was rejected.\n\nReason: {reason}"
    notify.enqueue(conn, claim, event=f"claim.{OUTCOMES[outcome]}",
                   subject=f"Claim {claim['number']} was {OUTCOMES[outcome]}", text=text)


def _lock_duplicates(conn: psycopg.Connection, claim: dict[str, Any]) -> list[dict[str, Any]]:
    """The claim's open duplicates (same clip and work, other claimants), locked."""
    return conn.execute(
        "SELECT * FROM claims WHERE duplicate_of = %s AND state = ANY(%s) ORDER BY number "
        "FOR NO KEY UPDATE", (claim["id"], list(OPEN_STATES))).fetchall()


def _follow_duplicates(conn: psycopg.Connection, actor: Actor, claim: dict[str, Any],
                       decision: dict[str, Any], dups: list[dict[str, Any]]) -> None:
    """Open duplicates (locked by _lock_duplicates) get the same outcome."""
    for dup in dups:
        to_state = claim["state"]
        # The claimant reads this reason: it names no other claimant's claim.
        reason = f"decided with an earlier claim on the same clip and work: {decision['reason']}"
        row = conn.execute(
            "UPDATE claims SET state = %s, state_since = now(), revision = revision + 1, "
            "updated_at = now(), decision = %s WHERE id = %s RETURNING *",
            (to_state, Jsonb({**decision, "via_claim": str(claim["id"])}), dup["id"]),
        ).fetchone()
        audit.record(conn, actor, f"claim.{decision['outcome']}", subject_type="claim",
                     subject_id=str(dup["id"]), claim_id=dup["id"], from_state=dup["state"],
                     to_state=to_state, reason=reason,
                     detail={"duplicate_of": str(claim["id"])})
        # What the decision took down, it took down for this claimant too.
        conn.execute("INSERT INTO takedowns (claim_id, release_id, action, score, via) "
                     "SELECT %s, release_id, action, score, via FROM takedowns "
                     "WHERE claim_id = %s ON CONFLICT (claim_id, release_id) DO NOTHING",
                     (dup["id"], claim["id"]))
        notify.enqueue(conn, row, event=f"claim.{to_state}",
                       subject=f"Claim {dup['number']} was {to_state}", text=reason)


def answer_claim(actor: Actor, claim_id: str, *, revision: int, message: str,
                 settings: Settings | None = None) -> dict[str, Any]:
    """The claimant answers a request for information; the claim goes back into review."""
    store.require_role(actor, "rights_holder", doing="answer a request for information")
    message = required_text(message, "an answer")
    with db.connection(settings) as conn:
        claim = _locked(conn, actor, claim_id, revision)
        if claim["state"] != "info_requested":
            raise Conflict(f"claim {claim['number']} is {claim['state'].replace('_', ' ')}; "
                           "nobody asked for more information", existing_id=str(claim["id"]))
        conn.execute("INSERT INTO claim_messages (claim_id, author_id, kind, body) "
                     "VALUES (%s, %s, 'answer', %s)",
                     (claim["id"], store.parse_id(actor.account_id), message))
        transition(conn, actor, claim, "in_review", action="claim.answer",
                   detail={"chars": len(message)})
    return store.get_claim(actor, claim_id, settings=settings)

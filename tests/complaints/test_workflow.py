"""The claim workflow: legal and illegal transitions, stale forms, the audit log, service levels
and the notices a decision sends (by a real local SMTP server)."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from clipgate import db
from clipgate.errors import BadInput, Conflict, Forbidden, NotFound
from complaints import (
    SYSTEM,
    answer_claim,
    assign_claim,
    decide_claim,
    get_claim,
    list_claims,
    service_levels,
)
from complaints.workflow import STATES, TRANSITIONS, transition
from tests.complaints.conftest import (
    actor_of,
    file_and_assign,
    make_account,
    with_smtp,
)


def test_a_claim_goes_through_review_with_an_information_loop(
        settings, tmp_path, holder, reviewer, copied_release, smtp_inbox):
    settings = with_smtp(settings, smtp_inbox)
    rev, me = actor_of(reviewer), actor_of(holder)
    claim = file_and_assign(settings, tmp_path, holder, reviewer, copied_release)
    assert claim["state"] == "in_review" and claim["assignee"]["name"] == "Rita Reviewer"

    asked = decide_claim(rev, claim["id"], revision=claim["revision"], outcome="request_info",
                         reason="Where was the photo first published?", settings=settings)
    assert asked["state"] == "info_requested"
    assert asked["messages"][-1]["kind"] == "info_request"
    with pytest.raises(Conflict, match="changed since you opened it"):
        answer_claim(me, claim["id"], revision=claim["revision"], message="x", settings=settings)
    answered = answer_claim(me, claim["id"], revision=asked["revision"],
                            message="In our 2019 catalogue.", settings=settings)
    assert answered["state"] == "in_review"
    assert [m["kind"] for m in answered["messages"]] == ["info_request", "answer"]

    done = decide_claim(rev, claim["id"], revision=answered["revision"], outcome="reject",
                        reason="The photo is in the public domain.", settings=settings)
    assert done["state"] == "rejected" and done["decision"]["outcome"] == "reject"
    assert done["decision"]["by"] == rev.label
    with pytest.raises(Conflict, match="not in review"):
        decide_claim(rev, claim["id"], revision=done["revision"], outcome="uphold",
                     reason="changed my mind", actions=["block"], settings=settings)

    history = get_claim(me, claim["id"], settings=settings)["history"]
    assert [(h["action"], h["from_state"], h["to_state"]) for h in history] == [
        ("claim.file", None, "submitted"), ("claim.triage", "submitted", "triaged"),
        ("claim.assign", "triaged", "in_review"),
        ("claim.request_info", "in_review", "info_requested"),
        ("claim.answer", "info_requested", "in_review"), ("claim.reject", "in_review", "rejected")]
    assert history[-1]["reason"] == "The photo is in the public domain."
    assert history[-1]["actor"] == "Rita Reviewer" and history[1]["actor"] == "clipgate"

    # The claimant was told twice: the question and the decision, by email.
    subjects = [m["Subject"] for m in smtp_inbox.messages]
    assert subjects == [f"Claim {claim['number']}: we need more information",
                        f"Claim {claim['number']} was rejected"]
    assert smtp_inbox.messages[0]["To"] == holder["email"]
    assert "Where was the photo first published?" in smtp_inbox.messages[0].get_content()

    levels = service_levels(rev, settings=settings)["states"]
    assert levels["rejected"]["count"] == 1 and levels["rejected"]["oldest_s"] >= 0
    assert levels["in_review"]["count"] == 0 and levels["in_review"]["left"] == 2
    assert levels["submitted"]["left"] == 1


def test_the_audit_log_cannot_be_changed(settings, tmp_path, holder, reviewer, copied_release):
    file_and_assign(settings, tmp_path, holder, reviewer, copied_release)
    for sql in ("UPDATE audit_log SET reason = 'rewritten'", "DELETE FROM audit_log",
                "TRUNCATE audit_log"):
        with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
            with db.connection(settings) as conn:
                conn.execute(sql)
    with db.connection(settings) as conn:
        assert conn.execute("SELECT count(*) AS n FROM audit_log").fetchone()["n"] == 3


@pytest.mark.parametrize("frm", STATES)
def test_illegal_transitions_are_refused_with_the_allowed_ones_named(settings, frm):
    fake = {"id": uuid.uuid4(), "number": 7, "state": frm}
    with db.connection(settings) as conn:
        for to in STATES:
            if to in TRANSITIONS[frm]:
                continue
            with pytest.raises(Conflict, match=f"claim 7 is {frm.replace('_', ' ')}"):
                transition(conn, SYSTEM, fake, to, action="test")


def test_decisions_need_a_reason_and_fitting_actions(settings, tmp_path, holder, reviewer,
                                                     copied_release):
    rev = actor_of(reviewer)
    claim = file_and_assign(settings, tmp_path, holder, reviewer, copied_release)
    cases = [({"outcome": "uphold", "reason": " ", "actions": ["block"]}, "reason"),
             ({"outcome": "uphold", "reason": "yes", "actions": []}, "at least one action"),
             ({"outcome": "uphold", "reason": "yes", "actions": ["fine"]}, "unknown action"),
             ({"outcome": "reject", "reason": "no", "actions": ["block"]}, "only when"),
             ({"outcome": "uphold", "reason": "yes",
               "actions": ["rescan_flag", "rescan_revoke"]}, "choose one"),
             ({"outcome": "maybe", "reason": "yes"}, "outcome")]
    for kw, words in cases:
        with pytest.raises(BadInput, match=words):
            decide_claim(rev, claim["id"], revision=claim["revision"], settings=settings, **kw)
    with pytest.raises(Conflict, match="changed since you opened it"):
        decide_claim(rev, claim["id"], revision=claim["revision"] - 1, outcome="reject",
                     reason="no", settings=settings)
    assert get_claim(rev, claim["id"], settings=settings)["revision"] == claim["revision"]


def test_roles_the_workflow_refuses(settings, tmp_path, holder, reviewer, copied_release):
    claim = file_and_assign(settings, tmp_path, holder, reviewer, copied_release)
    me, rev = actor_of(holder), actor_of(reviewer)
    r = claim["revision"]
    with pytest.raises(Forbidden):
        decide_claim(me, claim["id"], revision=r, outcome="reject", reason="x", settings=settings)
    with pytest.raises(Forbidden):
        assign_claim(me, claim["id"], revision=r, settings=settings)
    with pytest.raises(Forbidden):
        answer_claim(rev, claim["id"], revision=r, message="x", settings=settings)
    with pytest.raises(Forbidden):
        service_levels(me, settings=settings)
    other = actor_of(make_account(settings, "rights_holder"))
    with pytest.raises(NotFound):
        answer_claim(other, claim["id"], revision=r, message="x", settings=settings)
    with pytest.raises(Conflict, match="nobody asked"):
        answer_claim(me, claim["id"], revision=r, message="x", settings=settings)
    # Assigning to someone who is not a reviewer is refused; to another reviewer it is not.
    with pytest.raises(BadInput, match="not a reviewer"):
        assign_claim(rev, claim["id"], revision=r, assignee_id=str(holder["id"]),
                     settings=settings)
    second = make_account(settings, "reviewer", name="Sam Second")
    moved = assign_claim(rev, claim["id"], revision=r, assignee_id=str(second["id"]),
                         settings=settings)
    assert moved["assignee"]["name"] == "Sam Second" and moved["state"] == "in_review"
    assert [c["id"] for c in list_claims(actor_of(second), owner="me", settings=settings).items] == \
        [claim["id"]]
    assert list_claims(rev, owner="me", settings=settings).items == []
    assert list_claims(rev, state="in_review", sort="priority", settings=settings).items[0]["id"] == \
        claim["id"]
    with pytest.raises(BadInput, match="state must be"):
        list_claims(rev, state="open", settings=settings)

"""Counter-notices: filed by the generator's user against an upheld takedown; the clip comes back
after the waiting period unless the claimant escalates first."""

from __future__ import annotations

import pytest

import compliance
from clipgate import apikeys
from clipgate.errors import BadInput, Conflict, Forbidden, NotFound
from complaints import (
    actor_for_key,
    decide_claim,
    escalate_counter_notice,
    file_counter_notice,
    get_claim,
    restore_due,
)
from tests.complaints.conftest import actor_of, file_and_assign, make_account


@pytest.fixture
def taken_down(settings, tmp_path, holder, reviewer, copied_release):
    claim = file_and_assign(settings, tmp_path, holder, reviewer, copied_release)
    return decide_claim(actor_of(reviewer), claim["id"], revision=claim["revision"],
                        outcome="uphold", reason="copy", actions=["takedown"], settings=settings)


def _generator(settings):
    record, _ = apikeys.create_key("gen", "generator", settings)
    return actor_for_key(record)


def _file(settings, claim, **kw):
    args = {"release_id": claim["release"]["release_id"], "claim_id": claim["id"],
            "statement": "The clip is our own original animation.",
            "contact": "legal@generator.example"}
    args.update(kw)
    return file_counter_notice(_generator(settings), settings=settings, **args)


def test_clip_is_restored_after_the_waiting_period(settings, holder, taken_down):
    settings = settings.model_copy(update={"counter_notice_wait_s": 0})
    rid = taken_down["release"]["release_id"]
    notice = _file(settings, taken_down, claim_id=None)  # found from the release
    assert notice["claim_id"] == taken_down["id"]
    assert notice["state"] == "waiting"
    assert restore_due(settings) == 1
    assert restore_due(settings) == 0  # once
    release = compliance.get_release(rid, settings=settings)
    assert release["status"] == "active" and release["restored_at"] is not None
    report = compliance.verify_clip(release["path"], settings=settings)
    assert report["verified"] and report["release"]["status"] == "active"
    claim = get_claim(actor_of(holder), taken_down["id"], settings=settings)
    assert claim["counter_notices"][0]["state"] == "restored"
    assert claim["takedowns"][0]["restored_at"] is not None
    assert claim["history"][-1]["action"] == "release.restore"


def test_escalation_keeps_the_clip_down(settings, holder, taken_down):
    notice = _file(settings, taken_down)  # waits the default 14 days
    assert restore_due(settings) == 0
    other = actor_of(make_account(settings, "rights_holder"))
    with pytest.raises(NotFound):
        escalate_counter_notice(other, notice["id"], "mine", settings=settings)
    with pytest.raises(BadInput, match="reason"):
        escalate_counter_notice(actor_of(holder), notice["id"], " ", settings=settings)
    escalated = escalate_counter_notice(actor_of(holder), notice["id"],
                                        "We have filed suit.", settings=settings)
    assert escalated["state"] == "escalated"
    with pytest.raises(Conflict, match="already escalated"):
        escalate_counter_notice(actor_of(holder), notice["id"], "again", settings=settings)
    short = settings.model_copy(update={"counter_notice_wait_s": 0})
    assert restore_due(short) == 0
    rid = taken_down["release"]["release_id"]
    assert compliance.get_release(rid, settings=settings)["status"] == "revoked"


def test_counter_notices_are_refused_when_they_do_not_fit(settings, holder, reviewer, taken_down,
                                                          tmp_path):
    with pytest.raises(Forbidden):
        file_counter_notice(actor_of(holder), release_id=taken_down["release"]["release_id"],
                            claim_id=taken_down["id"], statement="s", contact="c",
                            settings=settings)
    with pytest.raises(NotFound, match="took down"):
        _file(settings, taken_down, release_id="00000000-0000-0000-0000-000000000000")
    with pytest.raises(BadInput, match="statement"):
        _file(settings, taken_down, statement="")
    first = _file(settings, taken_down)
    with pytest.raises(Conflict, match="filed already"):
        _file(settings, taken_down)
    assert first["state"] == "waiting"
    # A waiting period that has ended cannot be escalated any more.
    late = settings.model_copy(update={"counter_notice_wait_s": 0})
    from clipgate import db
    with db.connection(settings) as conn:
        conn.execute("UPDATE counter_notices SET restore_after = now() - interval '1 second'")
    with pytest.raises(Conflict, match="waiting period has ended"):
        escalate_counter_notice(actor_of(holder), first["id"], "too late", settings=late)


def test_a_counter_notice_on_one_claim_keeps_the_clip_down_for_another(settings, tmp_path, holder,
                                                                        reviewer, copied_release):
    """Two claimants took one clip down (the second claim merged into the first): answering the
    first claim ends only its takedown; the clip comes back once the second is answered too."""
    settings = settings.model_copy(update={"counter_notice_wait_s": 0})
    first = file_and_assign(settings, tmp_path, holder, reviewer, copied_release)
    other = make_account(settings, "rights_holder")
    from complaints import file_claim
    from tests.complaints.conftest import STATEMENT, work_image
    second = file_claim(actor_of(other), release_id=str(copied_release["id"]),
                        work_path=work_image(tmp_path / "same.png"), work_title="Astronaut",
                        statement=STATEMENT, remedies=["takedown"], settings=settings)
    assert second["merged"]
    decide_claim(actor_of(reviewer), first["id"], revision=first["revision"], outcome="uphold",
                 reason="copy", actions=["takedown"], settings=settings)
    rid = str(copied_release["id"])
    _file(settings, first)
    assert restore_due(settings) == 0
    assert compliance.get_release(rid, settings=settings)["status"] == "revoked"
    mine = get_claim(actor_of(holder), first["id"], settings=settings)
    theirs = get_claim(actor_of(other), second["id"], settings=settings)
    assert mine["takedowns"][0]["restored_at"] is not None
    assert theirs["takedowns"][0]["restored_at"] is None
    assert mine["history"][-1]["action"] == "takedown.restore"
    _file(settings, theirs)
    assert restore_due(settings) == 1
    assert compliance.get_release(rid, settings=settings)["status"] == "active"
    theirs = get_claim(actor_of(other), second["id"], settings=settings)
    assert theirs["takedowns"][0]["restored_at"] is not None
    assert theirs["history"][-1]["action"] == "release.restore"

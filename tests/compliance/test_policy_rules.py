"""The decision's rules, without media: each matched work is decided by a licence in force the
clip's tenant holds, else by its policy (block, review, track, allow); a licence out of force is
named, and the policy decides."""

from __future__ import annotations

import datetime as dt
import uuid

from clipgate.settings import Settings
from compliance import decide
from compliance.alignment import Segment, WorkMatch

NOW = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
SETTINGS = Settings(_env_file=None)


def _match(policy: str, *, owner: str = "Studio A", frames: int = 4) -> WorkMatch:
    return WorkMatch(work_id=str(uuid.uuid4()), title=f"A {policy} work", owner=owner,
                     policy=policy, kind="image", score=0.9, signals=["sscd"],
                     frames_matched=frames,
                     segments=[Segment(0.0, float(frames), 0.0, 0.0, frames, ["sscd"])])


def _licence(m: WorkMatch | None = None, *, owner: str | None = None, model: str | None = None,
             days: tuple[int, int | None] = (-10, 10), revoked: bool = False) -> dict:
    start, end = days
    return {"id": uuid.uuid4(), "work_id": m.work_id if m else None, "owner": owner,
            "model": model, "tenant_name": "acme", "tenant_id": "t-1",
            "valid_from": NOW + dt.timedelta(days=start),
            "valid_until": None if end is None else NOW + dt.timedelta(days=end),
            "revoked_at": NOW if revoked else None}


def _decide(matches, licences=(), model="gen-1"):
    return decide(matches, SETTINGS, frames_sampled=8, licences=list(licences), model=model,
                  now=NOW)


def test_each_policy_decides_its_match_and_says_so():
    for policy, verdict in (("block", "block"), ("review", "review"), ("track", "release"),
                            ("allow", "release")):
        m = _match(policy)
        d = _decide([m])
        assert d.verdict == verdict, (policy, d.reasons)
        assert d.rules == [{"work_id": m.work_id, "title": m.title, "owner": m.owner,
                            "rule": "policy", "policy": policy, "licence_id": None,
                            "outcome": verdict}]
        assert d.decided_by == d.rules
        assert f"its policy is {policy}" in d.reasons[0]
    # A weak match with a block work goes to a person, not straight to a block.
    assert _decide([_match("block", frames=1)]).verdict == "review"


def test_no_match_is_released_by_no_rule():
    d = _decide([])
    assert (d.verdict, d.rules, d.decided_by) == ("release", [], [{"rule": "no_match",
                                                                    "outcome": "release"}])


def test_a_licence_in_force_releases_a_block_work_and_is_named():
    m = _match("block")
    lic = _licence(m)
    d = _decide([m], [lic])
    assert d.verdict == "release"
    assert d.decided_by[0]["rule"] == "licence" and d.decided_by[0]["licence_id"] == str(lic["id"])
    assert d.licence_ids == [str(lic["id"])]
    assert f"licence {lic['id']}" in d.reasons[0] and "tenant acme" in d.reasons[0]


def test_an_owner_licence_covers_every_work_of_that_owner_only():
    mine, other = _match("block", owner="Studio A"), _match("block", owner="Studio B")
    lic = _licence(owner="Studio A")
    assert _decide([mine], [lic]).verdict == "release"
    d = _decide([mine, other], [lic])
    assert d.verdict == "block"
    # The block rule decided; the licence still released its own work, and both are recorded.
    assert [r["work_id"] for r in d.decided_by] == [other.work_id]
    assert {r["work_id"]: r["rule"] for r in d.rules} == {mine.work_id: "licence",
                                                          other.work_id: "policy"}


def test_a_licence_out_of_force_falls_back_to_the_policy_and_says_why():
    m = _match("block")
    for lic, why in ((_licence(m, days=(-30, -1)), "expired"),
                     (_licence(m, days=(2, 30)), "is valid only from"),
                     (_licence(m, revoked=True), "was revoked"),
                     (_licence(m, model="other-model"), "covers model 'other-model'")):
        d = _decide([m], [lic])
        assert d.verdict == "block", why
        assert d.rules[0]["rule"] == "policy" and d.licence_ids == []
        assert f"licence {lic['id']} {why}" in d.reasons[0]
        assert "the work's policy decides" in d.reasons[0]
    # A model-bound licence releases clips of that model.
    assert _decide([m], [_licence(m, model="gen-1")]).verdict == "release"
    # Open-ended licences have no end.
    assert _decide([m], [_licence(m, days=(-1, None))]).verdict == "release"


def test_a_licence_for_another_work_does_not_release():
    m, other = _match("review"), _match("review")
    assert _decide([m], [_licence(other)]).verdict == "review"

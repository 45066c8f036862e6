"""Filing claims: the clip by release id, by manifest or by fingerprint; the work; the statement;
and every kind of bad input, which changes nothing."""

from __future__ import annotations

import uuid

import pytest

import compliance
import index
from clipgate import db
from clipgate.errors import BadInput, Conflict, NotFound, TooLarge
from complaints import file_claim, get_claim, list_claims
from complaints.actors import actor_for_account
from complaints.released import identify_clip
from tests.complaints.conftest import (
    STATEMENT,
    make_account,
    noise_clip,
    reencode,
    strip_manifest,
    work_image,
)


def _counts(settings) -> dict[str, int]:
    with db.connection(settings) as conn:
        return {t: conn.execute(f"SELECT count(*) AS n FROM {t}").fetchone()["n"]
                for t in ("claims", "works", "audit_log", "work_frames")}


def _file(settings, holder, tmp_path, **kw):
    args = {"release_id": None, "clip_path": None, "work_id": None, "work_path": None,
            "work_title": "Astronaut", "statement": STATEMENT, "remedies": ["takedown"]}
    args.update(kw)
    if args["work_id"] is None and args["work_path"] is None:
        args["work_path"] = work_image(tmp_path / f"work-{uuid.uuid4().hex[:6]}.png")
    return file_claim(actor_for_account(holder), settings=settings, **args)


def test_claim_by_release_id_is_triaged_with_the_gates_evidence(settings, tmp_path, holder,
                                                                copied_release):
    claim = _file(settings, holder, tmp_path, release_id=str(copied_release["id"]),
                  remedies=["takedown", "block"], details="frame for frame")
    assert claim["state"] == "triaged" and claim["revision"] == 2
    assert claim["clip_identified_by"] == "release_id"
    assert claim["release"]["release_id"] == str(copied_release["id"])
    work = index.get_work(claim["work"]["id"], settings)
    assert work["policy"] == "review" and str(work["account_id"]) == str(holder["id"])
    ev = claim["evidence"]
    assert ev["work_id"] == claim["work"]["id"] and ev["frames_matched"] >= 2
    assert claim["score"] == ev["score"] > 0.5 and claim["priority"] in (1, 2)
    assert ev["pairs"] and ev["segments"]
    assert [h["action"] for h in claim["history"]] == ["claim.file", "claim.triage"]
    assert claim["history"][1]["from_state"] == "submitted"
    assert claim["statement"]["signature"] == "Ada Holder"
    assert claim["remedies"] == ["takedown", "block"]


def test_unrelated_clip_is_triaged_as_low_priority_without_evidence(settings, tmp_path, holder):
    unrelated = compliance.release_clip(noise_clip(tmp_path / "n.mp4", 5),
                                        generator={"model": "g", "version": "1"},
                                        settings=settings).release
    claim = _file(settings, holder, tmp_path, release_id=str(unrelated["id"]))
    assert claim["state"] == "triaged"
    assert claim["evidence"] is None and claim["score"] == 0.0 and claim["priority"] == 4


@pytest.mark.parametrize("bad", [
    None,
    {},
    {**STATEMENT, "good_faith": False},
    {**STATEMENT, "accurate": "yes"},
    {**STATEMENT, "authorised": None},
    {**STATEMENT, "signature": "   "},
])
def test_claim_without_the_full_statement_is_refused_and_writes_nothing(
        settings, tmp_path, holder, copied_release, bad):
    before = _counts(settings)
    with pytest.raises(BadInput, match="statement"):
        _file(settings, holder, tmp_path, release_id=str(copied_release["id"]), statement=bad)
    assert _counts(settings) == before


def test_stripped_copy_is_traced_to_its_release_by_verify_recovery(settings, tmp_path, holder,
                                                                  copied_release):
    stripped = strip_manifest(copied_release["path"], tmp_path / "stripped.mp4")
    report = compliance.verify_clip(stripped, settings=settings)
    assert report["state"] == "NoManifest" and not report["verified"]  # the manifest is gone
    assert report["recovered_by"] == "watermark"  # its frames still name the release
    claim = _file(settings, holder, tmp_path, clip_path=stripped, clip_name="found-online.mp4")
    assert claim["clip_identified_by"] == "watermark"
    assert claim["release"]["release_id"] == str(copied_release["id"])
    assert claim["clip_upload"]["name"] == "found-online.mp4"


def test_a_smaller_reencoded_copy_is_traced_to_its_release(settings, tmp_path, holder,
                                                          copied_release):
    other = compliance.release_clip(noise_clip(tmp_path / "n.mp4", 21),
                                    generator={"model": "g", "version": "1"},
                                    settings=settings).release
    copy = reencode(copied_release["path"], tmp_path / "small.mp4", width=426, height=240)
    found = identify_clip(copy, settings=settings)
    assert found.how == "fingerprint" and found.release["id"] == copied_release["id"]
    assert found.release["id"] != other["id"] and found.frames_matched >= 2


def test_signed_copy_is_identified_by_its_manifest(settings, tmp_path, holder, copied_release):
    other = compliance.release_clip(noise_clip(tmp_path / "n.mp4", 9),
                                    generator={"model": "g", "version": "1"},
                                    settings=settings).release
    claim = _file(settings, holder, tmp_path, clip_path=other["path"])
    assert claim["clip_identified_by"] == "manifest"
    assert claim["release"]["release_id"] == str(other["id"])


def test_a_clip_clipgate_never_released_is_not_found(settings, tmp_path, holder, copied_release):
    before = _counts(settings)
    never = noise_clip(tmp_path / "never.mp4", 77)
    with pytest.raises(NotFound, match="not one clipgate released"):
        _file(settings, holder, tmp_path, clip_path=never)
    for rid in (str(uuid.uuid4()), "not-an-id"):
        with pytest.raises(NotFound, match="no release|no released clip"):
            _file(settings, holder, tmp_path, release_id=rid)
    assert _counts(settings) == before


def test_second_identical_claim_points_to_the_first(settings, tmp_path, holder, copied_release):
    first = _file(settings, holder, tmp_path, release_id=str(copied_release["id"]))
    before = _counts(settings)
    with pytest.raises(Conflict) as e:
        _file(settings, holder, tmp_path, release_id=str(copied_release["id"]),
              work_id=first["work"]["id"])
    assert e.value.existing_id == first["id"] and f"claim {first['number']}" in str(e.value)
    # Uploading the same work file again is the same work, so the same claim.
    with pytest.raises(Conflict) as e:
        _file(settings, holder, tmp_path, release_id=str(copied_release["id"]))
    assert e.value.existing_id == first["id"]
    assert _counts(settings) == before


def test_not_media_and_oversized_uploads_are_refused(settings, tmp_path, holder, copied_release):
    before = _counts(settings)
    text = tmp_path / "clip.mp4"
    text.write_text("this is not a video")
    with pytest.raises(BadInput, match="not a readable image or video"):
        _file(settings, holder, tmp_path, clip_path=text)
    with pytest.raises(BadInput, match="not a readable image or video|not accepted"):
        _file(settings, holder, tmp_path, release_id=str(copied_release["id"]), work_path=text)
    small = settings.model_copy(update={"max_upload_bytes": 1000})
    with pytest.raises(TooLarge):
        _file(small, holder, tmp_path, clip_path=copied_release["path"])
    assert _counts(settings) == before


def test_the_clip_and_the_work_are_each_named_once(settings, tmp_path, holder, copied_release):
    rid = str(copied_release["id"])
    with pytest.raises(BadInput, match="name the clip"):
        _file(settings, holder, tmp_path)
    with pytest.raises(BadInput, match="name the clip"):
        _file(settings, holder, tmp_path, release_id=rid, clip_path=copied_release["path"])
    with pytest.raises(BadInput, match="remedy"):
        _file(settings, holder, tmp_path, release_id=rid, remedies=[])
    with pytest.raises(BadInput, match="unknown remedy"):
        _file(settings, holder, tmp_path, release_id=rid, remedies=["money"])
    with pytest.raises(BadInput, match="title"):
        _file(settings, holder, tmp_path, release_id=rid, work_title=" ")


def test_a_rights_holder_sees_only_their_own_claims_and_works(settings, tmp_path, holder,
                                                              copied_release):
    claim = _file(settings, holder, tmp_path, release_id=str(copied_release["id"]))
    other = actor_for_account(make_account(settings, "rights_holder"))
    with pytest.raises(NotFound):
        get_claim(other, claim["id"], settings=settings)
    assert list_claims(other, settings=settings).items == []
    assert [c["id"] for c in list_claims(actor_for_account(holder), settings=settings).items] == \
        [claim["id"]]
    # Another's work is not one of theirs to claim.
    with pytest.raises(NotFound, match="none of your works"):
        file_claim(other, release_id=str(copied_release["id"]), work_id=claim["work"]["id"],
                   statement=STATEMENT, remedies=["block"], settings=settings)
    # The claimant sees no other claimant's email; a reviewer does.
    assert "email" not in get_claim(actor_for_account(holder), claim["id"],
                                    settings=settings)["claimant"]
    rev = actor_for_account(make_account(settings, "reviewer"))
    assert get_claim(rev, claim["id"], settings=settings)["claimant"]["email"] == holder["email"]


def test_claims_on_the_same_clip_and_work_by_two_holders_merge(settings, tmp_path, holder,
                                                               copied_release):
    first = _file(settings, holder, tmp_path, release_id=str(copied_release["id"]))
    second_holder = make_account(settings, "rights_holder")
    second = _file(settings, second_holder, tmp_path, release_id=str(copied_release["id"]))
    # One work: the second holder's upload is the first's work, which they never see named.
    assert second["work"]["id"] is None and second["work"]["title"] == "The work you uploaded"
    rev = actor_for_account(make_account(settings, "reviewer"))
    assert get_claim(rev, second["id"], settings=settings)["work"]["id"] == first["work"]["id"]
    # The claimant learns of the merge, never the other claimant's claim id.
    assert second["merged"] and not first["merged"]
    assert second["duplicate_of"] is None and first["id"] not in str(second)
    assert [c["duplicate_of"] for c in list_claims(actor_for_account(second_holder),
                                                   settings=settings).items] == [None]
    rev = actor_for_account(make_account(settings, "reviewer"))
    assert get_claim(rev, second["id"], settings=settings)["duplicate_of"] == first["id"]
    assert get_claim(rev, first["id"], settings=settings)["duplicates"] == [second["id"]]
    # The queue's sorts: oldest first by default; created: newest first.
    ids = lambda **kw: [c["id"] for c in list_claims(rev, settings=settings, **kw).items]  # noqa: E731
    assert ids() == ids(sort="age", order="desc") == [first["id"], second["id"]]
    assert ids(sort="age", order="asc") == ids(sort="created") == [second["id"], first["id"]]
    assert ids(owner="none") == ids(sort="priority") and len(ids(limit=1)) == 1

"""Clips held for review: the gate's `review` verdict keeps a private copy and a review item; a
reviewer releases it (signed, the human decision in the manifest) or blocks it (optionally with a
block rule); decisions are audited and refused on a stale revision or a decided item; an item
nobody decided in time is blocked. Through the API, the CLI and the functions."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

import index
from clipgate import apikeys, db
from clipgate.app import create_app
from complaints import accounts
from compliance import (
    Reviewer,
    check_clip,
    decide_review,
    expire_reviews,
    generator_identity,
    get_review,
    list_reviews,
    release_clip,
    verify_clip,
)
from tests.media import pan, photo, write_image, write_video

IDENT = generator_identity(model="test-gen", version="7", prompt="a slow zoom into a portrait")
REVIEWER = Reviewer("account:00000000-0000-0000-0000-000000000001", "reviewer", "Rita Review")


@pytest.fixture
def work(settings, tmp_path) -> dict:
    return index.register_work(write_image(tmp_path / "a.png", photo("astronaut")),
                               owner="NASA", title="Astronaut", policy="review",
                               settings=settings)


def _copy(tmp_path, name: str = "copy.mp4"):
    img = photo("astronaut")
    return write_video(tmp_path / name, [pan(img, i, 24) for i in range(24)])


@pytest.fixture
def held(settings, tmp_path, work):
    outcome = release_clip(_copy(tmp_path), generator=IDENT, source="api", settings=settings)
    assert not outcome.released and outcome.check.verdict == "review"
    return outcome


@pytest.fixture
def keys(settings) -> dict[str, str]:
    rita = accounts.create_account("rita@legal.example.org", "a long enough passphrase",
                                   "Rita Review", "reviewer", settings=settings)
    return {"admin": apikeys.create_key("ops", "admin", settings)[1],
            "generator": apikeys.create_key("gen", "generator", settings)[1],
            "reviewer": apikeys.create_key("rita", "reviewer", settings,
                                           account_id=str(rita["id"]))[1]}


@pytest.fixture
def client(settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as c:
        yield c


def _as(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def _audit(settings, review_id: str) -> list[dict]:
    with db.connection(settings) as conn:
        return conn.execute("SELECT actor, actor_role, action, from_state, to_state, reason, "
                            "detail FROM audit_log WHERE subject_type = 'held_clip' AND "
                            "subject_id = %s ORDER BY id", (review_id,)).fetchall()


def test_review_verdict_keeps_a_private_copy_and_the_facts(settings, held, work):
    item = held.review
    assert item["state"] == "pending" and item["revision"] == 1
    assert item["check_id"] == held.check.check_id and item["source"] == "api"
    assert item["generator"]["prompt_sha256"] == IDENT["prompt_sha256"]
    assert item["generator"]["model"] == "test-gen"
    assert [(w["work_id"], w["policy"]) for w in item["held_by"]["works"]] == \
        [(str(work["id"]), "review")]
    assert "its policy is review" in item["held_by"]["reasons"][0]
    assert 0 < item["sla_left_s"] <= settings.review_timeout_s
    # The copy is private: in the held folder, nowhere in the release store.
    copies = list(settings.held_dir.glob("*.mp4"))
    assert len(copies) == 1 and copies[0].stem == item["review_id"]
    assert not [p for p in settings.release_dir.rglob("*.mp4")]
    assert "path" not in item
    assert [r["review_id"] for r in list_reviews(state="pending", settings=settings).items] == \
        [item["review_id"]]


def test_check_is_read_back_with_its_held_clip_by_allowed_keys_only(settings, held, keys,
                                                                    client):
    url = f"/v1/checks/{held.check.check_id}"
    for role in ("generator", "admin", "reviewer"):
        r = client.get(url, headers=_as(keys[role]))
        assert r.status_code == 200, (role, r.text)
    body = r.json()
    assert body["verdict"] == "review" and body["review_id"] == held.review["review_id"]
    assert body["review_state"] == "pending" and body["release_id"] is None
    assert body["matches"][0]["title"] == "Astronaut" and body["matches"][0]["pairs"]
    assert client.get(url).status_code == 401
    assert client.get("/v1/checks/not-a-uuid", headers=_as(keys["admin"])).status_code == 404
    assert client.get("/v1/reviews", headers=_as(keys["generator"])).status_code == 403


def test_release_signs_with_the_human_decision_and_moves_on_once(settings, held, keys, client,
                                                                 tmp_path):
    rid = held.review["review_id"]
    url = f"/v1/reviews/{rid}/decision"
    listed = client.get("/v1/reviews", params={"state": "pending"},
                        headers=_as(keys["reviewer"])).json()
    assert [r["review_id"] for r in listed["items"]] == [rid] and listed["total"] == 1
    body = {"revision": 1, "decision": "release", "reason": "parody, fair use"}

    stale = client.post(url, json={**body, "revision": 0}, headers=_as(keys["reviewer"]))
    assert stale.status_code == 409 and "changed since" in stale.json()["detail"]
    assert stale.json()["review"]["state"] == "pending"
    bad = client.post(url, json={**body, "decision": "maybe"}, headers=_as(keys["reviewer"]))
    assert bad.status_code == 400 and "release or block" in bad.json()["detail"]
    empty = client.post(url, json={**body, "reason": "  "}, headers=_as(keys["reviewer"]))
    assert empty.status_code == 400 and "reason" in empty.json()["detail"]
    assert client.post("/v1/reviews/nope/decision", json=body,
                       headers=_as(keys["reviewer"])).status_code == 404

    r = client.post(url, json=body, headers=_as(keys["reviewer"]))
    assert r.status_code == 200, r.text
    item = r.json()
    assert item["state"] == "released" and item["revision"] == 2 and item["release_id"]
    decision = item["decision"]
    assert decision["outcome"] == "release" and decision["reviewer_role"] == "reviewer"

    # The signed file verifies Trusted; its manifest carries the human decision, no name.
    clip = client.get(item["download_url"], headers=_as(keys["generator"]))
    assert clip.status_code == 200
    signed = tmp_path / "downloaded.mp4"
    signed.write_bytes(clip.content)
    report = verify_clip(signed, settings=settings)
    assert report["state"] == "Trusted" and report["verified"]
    comp = report["assertions"]["org.clipgate.compliance"]
    assert comp["check_id"] == held.check.check_id and comp["gate_verdict"] == "review"
    human = comp["human_decision"]
    assert human == {"decision_id": decision["id"], "outcome": "release",
                     "decided_at": decision["at"], "reviewer_role": "reviewer"}
    assert report["assertions"]["org.clipgate.generator"]["prompt_sha256"] == \
        IDENT["prompt_sha256"]

    again = client.post(url, json={**body, "revision": 2}, headers=_as(keys["reviewer"]))
    assert again.status_code == 409 and "already decided" in again.json()["detail"]
    assert again.json()["review"]["state"] == "released"
    rows = _audit(settings, rid)
    assert [(a["action"], a["actor_role"], a["to_state"]) for a in rows] == \
        [("review.release", "reviewer", "released")]
    assert rows[0]["detail"]["decision_id"] == decision["id"]
    assert client.get(f"/v1/checks/{held.check.check_id}",
                      headers=_as(keys["admin"])).json()["release_id"] == item["release_id"]


def test_reviewer_name_is_recorded_only_when_settings_say_so(settings, held, tmp_path):
    named = settings.model_copy(update={"review_record_reviewer_name": True})
    item = decide_review(held.review["review_id"], outcome="release", reason="licensed",
                         reviewer=REVIEWER, revision=1, settings=named)
    report = verify_clip(settings.release_dir / f"{item['release_id']}.mp4", settings=settings)
    human = report["assertions"]["org.clipgate.compliance"]["human_decision"]
    assert human["reviewer"] == "Rita Review" and human["reviewer_role"] == "reviewer"


def test_block_with_a_block_rule_blocks_the_work_from_then_on(settings, held, work, tmp_path):
    rid = held.review["review_id"]
    item = decide_review(rid, outcome="block", reason="a plain copy of the portrait",
                         reviewer=REVIEWER, revision=1, block_works=True, settings=settings)
    assert item["state"] == "blocked" and item["release_id"] is None
    assert item["decision"]["blocked_works"] == [str(work["id"])]
    assert index.get_work(str(work["id"]), settings=settings)["policy"] == "block"
    assert check_clip(_copy(tmp_path, "again.mp4"), settings=settings).verdict == "block"
    assert [(a["action"], a["reason"]) for a in _audit(settings, rid)] == \
        [("review.block", "a plain copy of the portrait")]
    with pytest.raises(Exception, match="already decided: it is blocked"):
        decide_review(rid, outcome="release", reason="x", reviewer=REVIEWER, revision=None,
                      settings=settings)


def test_an_item_nobody_decided_in_time_is_blocked_and_audited(settings, held):
    rid = held.review["review_id"]
    assert expire_reviews(settings) == []  # not overdue yet
    soon = settings.model_copy(update={"review_timeout_s": 0.0})
    expired = expire_reviews(soon)
    assert [(e["review_id"], e["state"]) for e in expired] == [(rid, "blocked")]
    assert expired[0]["decision"]["timeout"] is True
    assert get_review(rid, settings=settings)["state"] == "blocked"
    rows = _audit(settings, rid)
    assert [(a["action"], a["actor"], a["actor_role"]) for a in rows] == \
        [("review.timeout", "system:review-timeout", "system")]
    assert expire_reviews(soon) == []  # decided: not blocked twice


def test_cli_lists_and_decides_and_refuses_a_decided_item(settings, held, cli):
    rid = held.review["review_id"]
    listed = cli("reviews", "list", "--state", "pending")
    assert listed.exit_code == 0 and rid in listed.output and "Astronaut (review)" in listed.output
    stale = cli("reviews", "decide", rid, "block", "--reason", "copy", "--revision", "5")
    assert stale.exit_code == 2 and "changed since" in stale.output
    done = cli("reviews", "decide", rid, "block", "--reason", "copy", "--revision", "1")
    assert done.exit_code == 0 and f"{rid}: blocked" in done.output
    again = cli("reviews", "decide", rid, "release", "--reason", "copy")
    assert again.exit_code == 2 and "already decided" in again.output
    assert cli("reviews", "list", "--state", "nonsense").exit_code == 2
    assert [a["actor"] for a in _audit(settings, rid)] == ["system:cli"]


def test_cli_release_names_the_held_clip(settings, work, cli, tmp_path):
    r = cli("release", _copy(tmp_path), "--model", "m", "--json")
    assert r.exit_code == 1
    body = json.loads(r.output)
    assert body["verdict"] == "review" and body["review"]["state"] == "pending"
    assert body["review"]["source"] == "cli"


def test_a_held_clip_is_released_with_the_watermark_it_was_checked_with(settings, held, tmp_path):
    """The held copy was watermarked before its check; a reviewer's release records that key and
    its soft binding, and a stripped copy is traced back by it."""
    from bench.provenance import TRANSFORMS
    from compliance import watermark

    row = get_review(held.review["review_id"], settings=settings)
    key = watermark.read_watermark(_held_path(settings, row)).key
    assert key == held.mark.key
    item = decide_review(held.review["review_id"], outcome="release", reason="parody",
                         reviewer=REVIEWER, revision=1, settings=settings)
    signed = verify_clip(_release_path(settings, item["release_id"]), settings=settings)
    assert signed["verified"]
    assert signed["assertions"]["c2pa.soft-binding"]["blocks"][0]["value"] == watermark.value(key)
    copy = TRANSFORMS["stripped"](_release_path(settings, item["release_id"]),
                                  tmp_path / "stripped.mp4")
    found = verify_clip(copy, settings=settings)
    assert found["recovered_by"] == "watermark"
    assert found["release"]["release_id"] == item["release_id"]


def _held_path(settings, row):
    with db.connection(settings) as conn:
        return conn.execute("SELECT path FROM review_items WHERE id = %s",
                            (row["review_id"],)).fetchone()["path"]


def _release_path(settings, release_id):
    with db.connection(settings) as conn:
        return conn.execute("SELECT path FROM releases WHERE id = %s",
                            (release_id,)).fetchone()["path"]

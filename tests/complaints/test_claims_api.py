"""The complaints API with every role: each route admits only the roles its work needs (403 for
other keys, 401 without one), and a rights holder reaching for another's claim gets 404."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import compliance
from clipgate import apikeys
from clipgate.app import create_app
from tests.complaints.conftest import make_account, photo_clip, release, work_image

STATEMENT_FORM = {"good_faith": "true", "accurate": "true", "authorised": "true",
                  "signature": "Ada Holder"}


@pytest.fixture
def api(settings):
    """Clients, one per role: holder, other (a second rights holder), reviewer, admin, generator."""
    holder = make_account(settings, "rights_holder", name="Ada Holder")
    other = make_account(settings, "rights_holder")
    reviewer = make_account(settings, "reviewer", name="Rita Reviewer")
    keys = {
        "holder": apikeys.create_key("h", "rights_holder", settings, account_id=holder["id"])[1],
        "other": apikeys.create_key("o", "rights_holder", settings, account_id=other["id"])[1],
        "reviewer": apikeys.create_key("r", "reviewer", settings, account_id=reviewer["id"])[1],
        "admin": apikeys.create_key("a", "admin", settings)[1],
        "generator": apikeys.create_key("g", "generator", settings)[1],
    }
    app = create_app(settings)
    clients = {role: TestClient(app, headers={"X-API-Key": k}) for role, k in keys.items()}
    clients["anonymous"] = TestClient(app)
    clients["accounts"] = {"holder": holder, "other": other, "reviewer": reviewer}
    return clients


def _file(client, work_path, **fields):
    with open(work_path, "rb") as f:
        return client.post("/v1/claims", data={**STATEMENT_FORM, "work_title": "Astronaut",
                                               "remedies": ["takedown", "block"], **fields},
                           files={"work": ("astronaut.png", f, "image/png")})


def _refused(api, method, url, allowed, **kw):
    """Every role not in `allowed` is refused: 401 without a key, 403 with the wrong role."""
    for role in ("anonymous", "holder", "reviewer", "admin", "generator"):
        if role in allowed:
            continue
        r = getattr(api[role], method)(url, **kw)
        expected = 401 if role == "anonymous" else 403
        assert r.status_code == expected, (role, url, r.status_code, r.text)
        assert r.json()["detail"]


def test_claims_api_with_every_role(settings, tmp_path, api):
    rel = release(settings, photo_clip(tmp_path / "copy.mp4"))
    work = work_image(tmp_path / "astronaut.png")
    _refused(api, "post", "/v1/claims", {"holder"}, data={"release_id": str(rel["id"])})

    r = _file(api["holder"], work, release_id=str(rel["id"]))
    assert r.status_code == 201, r.text
    claim = r.json()
    assert claim["state"] == "triaged" and claim["evidence"]["frames_matched"] >= 2
    cid = claim["id"]

    # Filing again points to the first; a missing statement changes nothing.
    again = api["holder"].post("/v1/claims", data={
        **STATEMENT_FORM, "remedies": "block", "release_id": str(rel["id"]),
        "work_id": claim["work"]["id"]})
    assert again.status_code == 409 and f"claim {claim['number']}" in again.json()["detail"]
    assert cid in again.json()["detail"]
    r = api["holder"].post("/v1/claims", data={"release_id": str(rel["id"]),
                                               "work_id": claim["work"]["id"],
                                               "remedies": "takedown"})
    assert r.status_code == 400 and "statement" in r.json()["detail"]

    # Reading: the claimant and staff; another rights holder does not see it exists.
    _refused(api, "get", f"/v1/claims/{cid}", {"holder", "reviewer", "admin"})
    _refused(api, "get", "/v1/claims", {"holder", "reviewer", "admin"})
    _refused(api, "get", f"/v1/claims/{cid}/frames/clip", {"holder", "reviewer", "admin"})
    assert api["other"].get(f"/v1/claims/{cid}").status_code == 404
    assert api["other"].get("/v1/claims").json()["items"] == []
    assert api["other"].get(f"/v1/claims/{cid}/frames/clip").status_code == 404
    assert [c["id"] for c in api["holder"].get("/v1/claims").json()["items"]] == [cid]
    assert [c["id"] for c in api["reviewer"].get("/v1/claims?state=triaged&sort=priority")
            .json()["items"]] == [cid]
    frame = api["reviewer"].get(f"/v1/claims/{cid}/frames/work")
    assert frame.status_code == 200 and frame.content[:2] == b"\xff\xd8"
    _refused(api, "get", "/v1/claims/service-levels", {"reviewer", "admin"})
    assert api["reviewer"].get("/v1/claims/service-levels").json()["states"]["triaged"][
        "count"] == 1

    # Assigning and deciding: staff only; a stale form is refused.
    _refused(api, "post", f"/v1/claims/{cid}/assign", {"reviewer", "admin"},
             json={"revision": claim["revision"]})
    r = api["reviewer"].post(f"/v1/claims/{cid}/assign", json={"revision": claim["revision"]})
    assert r.status_code == 200 and r.json()["state"] == "in_review"
    rev = r.json()["revision"]
    decision = {"revision": rev, "outcome": "uphold", "reason": "A copy of the photo.",
                "actions": ["takedown", "block", "exclude_training"]}
    _refused(api, "post", f"/v1/claims/{cid}/decision", {"reviewer", "admin"}, json=decision)
    stale = api["reviewer"].post(f"/v1/claims/{cid}/decision", json={**decision, "revision": 1})
    assert stale.status_code == 409 and "reload" in stale.json()["detail"]
    _refused(api, "post", f"/v1/claims/{cid}/answer", {"holder"},
             json={"revision": rev, "message": "m"})
    r = api["reviewer"].post(f"/v1/claims/{cid}/decision", json=decision)
    assert r.status_code == 200 and r.json()["state"] == "upheld"
    again = api["reviewer"].post(f"/v1/claims/{cid}/decision",
                                 json={**decision, "revision": r.json()["revision"]})
    assert again.status_code == 409 and "not in review" in again.json()["detail"]
    seen = api["holder"].get(f"/v1/claims/{cid}").json()
    assert seen["takedowns"][0]["release_id"] == str(rel["id"])
    assert api["generator"].get(f"/v1/releases/{rel['id']}/file").status_code == 410
    # Release records, signed files and /verify are for generator and admin keys only.
    for url in (f"/v1/releases/{rel['id']}", f"/v1/releases/{rel['id']}/file"):
        _refused(api, "get", url, {"generator", "admin"})
    _refused(api, "post", "/v1/verify", {"generator", "admin"},
             files={"file": ("clip.mp4", Path(rel["path"]).read_bytes(), "video/mp4")})

    # Flags: the ML team reads them with a reviewer or admin key.
    _refused(api, "get", "/v1/flags", {"reviewer", "admin"})
    _refused(api, "get", "/v1/flags/export?format=csv", {"reviewer", "admin"})
    (flag,) = api["admin"].get("/v1/flags").json()["items"]
    csv = api["reviewer"].get("/v1/flags/export?format=csv")
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[0].startswith("id,work_id") and flag["id"] in csv.text
    assert api["reviewer"].get("/v1/flags/export?format=xml").status_code == 422
    _refused(api, "post", f"/v1/flags/{flag['id']}/handled", {"reviewer", "admin"},
             json={"note": "n"})
    r = api["admin"].post(f"/v1/flags/{flag['id']}/handled", json={"note": "dropped from v3 set"})
    assert r.status_code == 200 and r.json()["handled_at"]
    assert api["admin"].post(f"/v1/flags/{flag['id']}/handled",
                             json={"note": "again"}).status_code == 409
    assert api["admin"].get("/v1/flags").json()["items"] == []

    # Counter-notice: only the generator service files one; the claimant escalates.
    notice = {"claim_id": cid, "release_id": str(rel["id"]), "statement": "Original work.",
              "contact": "legal@gen.example"}
    _refused(api, "post", "/v1/counter-notices", {"generator"}, json=notice)
    r = api["generator"].post("/v1/counter-notices", json=notice)
    assert r.status_code == 201 and r.json()["state"] == "waiting"
    _refused(api, "post", f"/v1/counter-notices/{r.json()['id']}/escalate",
             {"holder", "reviewer", "admin"}, json={"reason": "x"})
    assert api["other"].post(f"/v1/counter-notices/{r.json()['id']}/escalate",
                             json={"reason": "x"}).status_code == 404
    esc = api["holder"].post(f"/v1/counter-notices/{r.json()['id']}/escalate",
                             json={"reason": "We sued."})
    assert esc.status_code == 200 and esc.json()["state"] == "escalated"
    assert compliance.get_release(str(rel["id"]), settings=settings)["status"] == "revoked"


def test_api_refuses_bad_uploads(settings, tmp_path, api):
    rel = release(settings, photo_clip(tmp_path / "copy.mp4"))
    r = api["holder"].post("/v1/claims", data={**STATEMENT_FORM, "remedies": "takedown",
                                               "work_title": "W", "release_id": str(rel["id"])},
                           files={"work": ("w.png", io.BytesIO(b"not an image at all"),
                                           "image/png")})
    assert r.status_code == 400 and "is not accepted" in r.json()["detail"]
    r = api["holder"].post("/v1/claims", data={**STATEMENT_FORM, "remedies": "takedown",
                                               "work_title": "W"},
                           files={"clip": ("c.mp4", io.BytesIO(b"\x00" * 64), "video/mp4"),
                                  "work": ("w.png", io.BytesIO(b"x"), "image/png")})
    assert r.status_code == 400
    small = settings.model_copy(update={"max_upload_bytes": 2000})
    with TestClient(create_app(small), headers=api["holder"].headers) as c:
        with open(rel["path"], "rb") as f:
            r = c.post("/v1/claims", data={**STATEMENT_FORM, "remedies": "takedown",
                                           "work_title": "W"},
                       files={"clip": ("c.mp4", f, "video/mp4")})
    assert r.status_code == 413
    r = api["holder"].post("/v1/claims", data={**STATEMENT_FORM, "remedies": "takedown",
                                               "release_id": "00000000-0000-0000-0000-00000000"
                                               "0000", "work_id": "00000000-0000-0000-0000-"
                                               "000000000000"})
    assert r.status_code == 404 and "no release" in r.json()["detail"]


def test_keys_for_people_name_their_account(settings, api):
    holder = api["accounts"]["holder"]
    _refused(api, "post", "/v1/keys", {"admin"}, json={"name": "k", "role": "generator"})
    _refused(api, "get", "/v1/keys", {"admin"})
    _refused(api, "delete", f"/v1/keys/{holder['id']}", {"admin"})
    r = api["admin"].post("/v1/keys", json={"name": "k", "role": "rights_holder"})
    assert r.status_code == 400 and "account" in r.json()["detail"]
    r = api["admin"].post("/v1/keys", json={"name": "k", "role": "reviewer",
                                            "account_id": str(holder["id"])})
    assert r.status_code == 400 and "is a rights_holder" in r.json()["detail"]
    r = api["admin"].post("/v1/keys", json={"name": "k", "role": "rights_holder",
                                            "account_id": str(holder["id"])})
    assert r.status_code == 201 and r.json()["account_id"] == str(holder["id"])
    made = TestClient(api["admin"].app, headers={"X-API-Key": r.json()["key"]})
    assert made.get("/v1/claims").status_code == 200
    made_id = r.json()["id"]
    r = api["admin"].post("/v1/keys", json={"name": "k", "role": "generator",
                                            "account_id": str(holder["id"])})
    assert r.status_code == 400
    # Creating and revoking a key is audited, with who did it; refused attempts are not.
    spare = api["admin"].post("/v1/keys", json={"name": "spare", "role": "generator"}).json()
    assert api["admin"].delete(f"/v1/keys/{spare['id']}").status_code == 200
    from clipgate import db as _db
    with _db.connection(settings) as conn:
        rows = conn.execute("SELECT action, subject_id, actor_role, detail FROM audit_log "
                            "WHERE subject_type = 'api_key' ORDER BY id").fetchall()
    assert [(r["action"], r["subject_id"], r["actor_role"]) for r in rows] == [
        ("api_key.create", made_id, "admin"), ("api_key.create", spare["id"], "admin"),
        ("api_key.revoke", spare["id"], "admin")]
    assert rows[0]["detail"]["account_id"] == str(holder["id"])
    assert spare["key"] not in str(rows)
    # A key stops working with its account.
    from clipgate import db
    with db.connection(settings) as conn:
        conn.execute("UPDATE accounts SET disabled_at = now() WHERE id = %s", (holder["id"],))
    assert made.get("/v1/claims").status_code == 401


def test_a_key_change_whose_audit_fails_is_not_made(settings, api, monkeypatch):
    """A key is made or revoked in the same transaction as its audit row: when the audit write
    fails, there is no unaudited key (it used to be audited after the key had committed)."""
    from complaints import audit

    spare = api["admin"].post("/v1/keys", json={"name": "spare", "role": "generator"}).json()
    before = {k["id"] for k in apikeys.list_keys(settings)}

    def broken(*args, **kwargs):
        raise RuntimeError("audit log unavailable")

    monkeypatch.setattr(audit, "record", broken)
    failing = TestClient(api["admin"].app, headers=api["admin"].headers,
                         raise_server_exceptions=False)
    assert failing.post("/v1/keys", json={"name": "ghost", "role": "generator"}
                        ).status_code == 500
    assert failing.delete(f"/v1/keys/{spare['id']}").status_code == 500
    after = apikeys.list_keys(settings)
    assert {k["id"] for k in after} == before  # no key made
    assert next(k for k in after if str(k["id"]) == spare["id"])["revoked_at"] is None  # nor revoked

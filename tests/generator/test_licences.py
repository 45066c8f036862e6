"""Licences through the generator's API and CLI (tenants are resolved by name here, kept by
compliance), and generation jobs end to end: the licensed tenant's clip that copies a `block`
work is released with the licence in its manifest, another tenant's identical clip is blocked."""

from __future__ import annotations

import json
from collections.abc import Iterator

import psycopg
import pytest
from fastapi.testclient import TestClient

import compliance
import index
from clipgate import apikeys
from clipgate.app import create_app
from complaints import accounts
from compliance.signing import COMPLIANCE_LABEL
from generator.samples import get_work

SMALL = {"seconds": 3.0, "width": 320, "height": 180, "fps": 12}
PROMPT = "a rocket over a quiet harbour"  # the procedural model regurgitates the rocket photo
NO_WORK = "00000000-0000-4000-8000-000000000000"


@pytest.fixture
def client(settings) -> Iterator[TestClient]:
    key = apikeys.create_key("ops", role="admin", settings=settings)[1]
    with TestClient(create_app(settings), headers={"X-API-Key": key}) as c:
        yield c


def _rocket(settings, tmp_path, **meta) -> dict:
    work = get_work("launch-day")
    path = tmp_path / "rocket.png"
    work.load_image().save(path)
    # Titled so prompt screening does not know it: the gate decides on the clip.
    return index.register_work(path, owner=work.owner, title=meta.pop("title", "Press still 14"),
                               policy="block", settings=settings, **meta)


def _job(client: TestClient, tenant: str, key: str) -> dict:
    r = client.post("/v1/generations", json={"prompt": PROMPT, "tenant": tenant, "user": "u",
                                             "idempotency_key": key, **SMALL})
    assert r.status_code == 202, r.text
    return client.get(f"/v1/generations/{r.json()['id']}").json()  # ran after the response


def test_licence_api_and_its_bad_input(client, settings, tmp_path):
    work = _rocket(settings, tmp_path)
    client.post("/v1/tenants", json={"name": "acme", "tier": "pro"})
    body = {"tenant": "acme", "work_id": str(work["id"]), "model": "clipgate-procedural",
            "valid_from": "2026-01-01T00:00:00Z", "valid_until": "2099-01-01"}

    for bad, status, words in (
            ({"tenant": "nobody"}, 404, "unknown tenant 'nobody'"),
            ({"work_id": NO_WORK}, 404, f"no work with id {NO_WORK}"),
            ({"valid_until": "2025-12-31"}, 422, "before it starts"),
            ({"owner": "Someone"}, 400, "not both or neither"),
            ({"valid_until": "not a date"}, 422, "valid_until")):
        r = client.post("/v1/licences", json={**body, **bad})
        assert r.status_code == status, (bad, r.text)
        assert words in json.dumps(r.json()["detail"]), r.text
    assert client.get("/v1/licences").json() == {"licences": [], "count": 0}

    r = client.post("/v1/licences", json=body)
    assert r.status_code == 201, r.text
    lic = r.json()
    assert lic["tenant"] == "acme" and lic["work_id"] == str(work["id"])
    assert lic["valid_from"].startswith("2026-01-01T00:00:00") and lic["state"] == "in_force"
    assert lic["valid_until"].startswith("2099-01-01T00:00:00")  # no zone: UTC
    assert client.get("/v1/licences", params={"tenant": "acme"}).json()["count"] == 1
    assert client.get("/v1/licences", params={"work_id": str(work["id"])}).json()["count"] == 1
    assert client.get("/v1/licences", params={"tenant": "nobody"}).status_code == 404
    assert client.get(f"/v1/licences/{lic['licence_id']}").json() == lic
    assert client.get(f"/v1/licences/{NO_WORK}").status_code == 404
    r = client.post(f"/v1/licences/{lic['licence_id']}/revoke", json={"reason": "ended"})
    assert r.status_code == 200 and r.json()["state"] == "revoked"

    # Only operators manage licences.
    gen = apikeys.create_key("gen", role="generator", settings=settings)[1]
    assert client.get("/v1/licences", headers={"X-API-Key": gen}).status_code == 403
    assert client.post("/v1/licences", json=body, headers={"X-API-Key": gen}).status_code == 403


def test_licensed_tenant_gets_the_clip_another_tenant_is_blocked(client, settings, tmp_path):
    holder, stranger = (accounts.create_account(f"{n}@example.org", "a long enough passphrase",
                                                n.title(), "rights_holder", settings=settings)
                        for n in ("ana", "sam"))
    work = _rocket(settings, tmp_path, account_id=str(holder["id"]))
    for name in ("acme", "globex"):
        client.post("/v1/tenants", json={"name": name, "tier": "pro", "credits_gpu_s": 100})
    lic = client.post("/v1/licences", json={"tenant": "acme", "work_id": str(work["id"])}).json()

    mine = _job(client, "acme", "k1")
    assert mine["state"] == "released", mine
    check = client.get(f"/v1/checks/{mine['check_id']}").json()
    assert check["decided_by"][0]["rule"] == "licence"
    assert check["decided_by"][0]["licence_id"] == lic["licence_id"]
    signed = tmp_path / "signed.mp4"
    signed.write_bytes(client.get(mine["download_url"]).content)
    report = compliance.verify_clip(signed, settings=settings)
    assert report["verified"]
    assert report["assertions"][COMPLIANCE_LABEL]["licences"] == [lic["licence_id"]]

    theirs = _job(client, "globex", "k2")
    assert theirs["state"] == "blocked" and theirs["verdict"] == "block", theirs
    assert "its policy is block" in theirs["error"]
    check = client.get(f"/v1/checks/{theirs['check_id']}").json()
    assert check["decided_by"][0]["rule"] == "policy"
    assert [(r["tenant"], r["clips"]) for r in compliance.tracked_counts(
        [work["id"]], settings=settings)] == [("acme", 1)]
    # The rights holder reads the same through the API; another holder sees none of it.
    keys = {p["name"]: apikeys.create_key(p["name"], "rights_holder", settings,
                                          account_id=str(p["id"]))[1] for p in (holder, stranger)}
    mine_used = client.get("/v1/tracked", headers={"X-API-Key": keys["Ana"]}).json()
    assert mine_used["clips"] == 1 and [(u["work_title"], u["rule"], u["licence_id"], u["model"],
                                        u["tenant"], u["clips"]) for u in mine_used["uses"]] == \
        [("Press still 14", "licence", lic["licence_id"], "clipgate-procedural", "acme", 1)]
    assert client.get("/v1/tracked", headers={"X-API-Key": keys["Sam"]}).json() == \
        {"uses": [], "clips": 0}
    assert client.get("/v1/tracked").status_code == 403  # the operator's key: not a holder


def _audited(settings) -> list[tuple]:
    with psycopg.connect(settings.database_url) as conn:
        return conn.execute("SELECT action, actor, actor_role, subject_id, reason FROM audit_log "
                            "WHERE subject_type = 'licence' ORDER BY id").fetchall()


def test_licence_grants_and_revokes_are_audited(client, cli, settings, tmp_path):
    work = _rocket(settings, tmp_path)
    client.post("/v1/tenants", json={"name": "acme", "tier": "pro"})
    key_id = str(apikeys.list_keys(settings)[0]["id"])
    lic = client.post("/v1/licences", json={"tenant": "acme", "work_id": str(work["id"]),
                                            "note": "deal 7"}).json()
    for _ in range(2):  # revoking again changes nothing, and is not audited again
        assert client.post(f"/v1/licences/{lic['licence_id']}/revoke",
                           json={"reason": "deal ended"}).status_code == 200
    r = cli("licences", "add", "--tenant", "acme", "--owner", work["owner"], "--json")
    assert r.exit_code == 0, r.output
    by_shell = json.loads(r.output)["licence_id"]
    assert _audited(settings) == [
        ("licence.grant", f"api_key:{key_id}", "admin", lic["licence_id"], "deal 7"),
        ("licence.revoke", f"api_key:{key_id}", "admin", lic["licence_id"], "deal ended"),
        ("licence.grant", "system:cli", "system", by_shell, None)]


def test_screening_lets_a_licensed_tenant_name_the_work(client, settings, tmp_path):
    work = _rocket(settings, tmp_path, title="Launch Day", aliases=["rocket"])
    for name in ("acme", "globex"):
        client.post("/v1/tenants", json={"name": name, "tier": "pro", "credits_gpu_s": 100})
    lic = client.post("/v1/licences", json={"tenant": "acme", "owner": work["owner"]}).json()
    assert lic["work_id"] is None
    theirs = _job(client, "globex", "k1")
    assert theirs["verdict"] == "prompt_refused", theirs
    mine = _job(client, "acme", "k2")
    assert mine["screening"]["decision"] == "pass", mine["screening"]
    assert mine["screening"]["matches"][0]["action"] == "licensed"
    assert mine["screening"]["matches"][0]["licence_id"] == lic["licence_id"]
    assert mine["state"] == "released", mine


def test_licences_from_the_shell(cli, settings, tmp_path):
    work = _rocket(settings, tmp_path)
    assert cli("tenants", "add", "acme").exit_code == 0
    r = cli("licences", "add", "--tenant", "acme", "--work", work["id"], "--model", "m",
            "--until", "2099-01-01", "--json")
    assert r.exit_code == 0, r.output
    lic = json.loads(r.output)
    assert lic["model"] == "m" and lic["state"] == "in_force"
    r = cli("licences", "list", "--tenant", "acme")
    assert r.exit_code == 0 and lic["licence_id"] in r.output and "1 licences" in r.output
    r = cli("licences", "revoke", lic["licence_id"], "--reason", "ended")
    assert r.exit_code == 0 and "revoked" in r.output

    for args, words in ((("--tenant", "nobody", "--work", work["id"]), "unknown tenant"),
                        (("--tenant", "acme", "--work", NO_WORK), "no work with id"),
                        (("--tenant", "acme", "--work", work["id"], "--from", "2026-02-01",
                          "--until", "2026-01-01"), "before it starts"),
                        (("--tenant", "acme", "--work", work["id"], "--until", "soon"),
                         "ISO 8601")):
        r = cli("licences", "add", *args)
        assert r.exit_code == 2, (args, r.output)
        assert words in r.output, r.output
    assert cli("licences", "revoke", NO_WORK, "--reason", "x").exit_code == 2

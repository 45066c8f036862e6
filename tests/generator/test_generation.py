"""Generation jobs end to end through the HTTP API, in-process (no broker): admission, prompt
screening, generation on the procedural backend, the gate, signing, usage; and bad input."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

import index
from clipgate import apikeys, db
from clipgate.app import create_app
from generator import tenants
from generator.samples import get_work

SMALL = {"seconds": 2.0, "width": 320, "height": 180, "fps": 12}


@pytest.fixture
def admin_key(settings) -> str:
    return apikeys.create_key("ops", role="admin", settings=settings)[1]


@pytest.fixture
def client(settings, admin_key) -> Iterator[TestClient]:
    with TestClient(create_app(settings), headers={"X-API-Key": admin_key}) as c:
        yield c


def _generate(client: TestClient, prompt: str, key: str, tenant: str = "acme", **extra):
    body = {"prompt": prompt, "tenant": tenant, "user": "u-1", "idempotency_key": key,
            **SMALL, **extra}
    return client.post("/v1/generations", json=body)


def _register_sample(settings, key: str, tmp_path, **meta):
    work = get_work(key)
    path = tmp_path / f"{key}.png"
    work.load_image().save(path)
    return index.register_work(path, owner=work.owner, title=meta.pop("title", work.title),
                               policy="block", settings=settings, **meta)


def test_ordinary_prompt_is_generated_gated_signed_and_charged(client, settings):
    client.post("/v1/tenants", json={"name": "acme", "tier": "pro", "credits_gpu_s": 100})
    r = _generate(client, "a calm ocean at sunset with drifting lights", "k1")
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    assert r.headers["location"].endswith(f"/v1/generations/{job_id}")
    job = client.get(f"/v1/generations/{job_id}").json()
    assert job["state"] == "released", job
    assert job["done"] and job["progress"] == 1.0 and job["verdict"] == "release"
    assert job["screening"]["decision"] == "pass"
    assert job["screening"]["signals"]["clip_text"]["counted"] is False  # random CLIP weights
    assert {"screening_s", "generation_s", "gate_s"} <= set(job["timings"])
    assert job["generator"]["model"] == "clipgate-procedural"
    clip = client.get(job["download_url"])
    assert clip.status_code == 200 and clip.content[4:8] == b"ftyp"
    release = client.get(job["release_url"]).json()
    assert release["check_id"] == job["check_id"]
    assert release["generator"]["prompt_sha256"] == job["prompt_sha256"]
    usage = client.get("/v1/usage", params={"tenant": "acme"}).json()["usage"]
    assert usage[0]["jobs"] == 1 and usage[0]["jobs_by_state"] == {"released": 1}
    # The procedural backend uses no GPU: nothing was spent.
    assert usage[0]["credits_left_gpu_s"] == 100 and usage[0]["generation_gpu_s"] == 0
    with db.connection(settings) as conn:
        kinds = {r["kind"] for r in conn.execute(
            "SELECT kind FROM usage_ledger WHERE job_id = %s", (job_id,))}
    assert kinds == {"generation", "gating"}
    # Same key and prompt: the first job again, not a second one.
    again = _generate(client, "a calm ocean at sunset with drifting lights", "k1")
    assert again.status_code == 200 and again.json()["id"] == job_id


def test_prompt_naming_a_protected_work_is_refused_before_any_generation(client, settings,
                                                                         tmp_path):
    _register_sample(settings, "chelsea-window", tmp_path, aliases=["Tabby of Chelsea"],
                     description="A tabby cat sitting on a windowsill, looking out at the street")
    client.post("/v1/tenants", json={"name": "acme", "tier": "free", "credits_gpu_s": 100})
    r = _generate(client, "Chelsea at the Windw, animated, cinematic", "k1")
    assert r.status_code == 202 and r.json()["state"] == "queued"
    job = client.get(f"/v1/generations/{r.json()['id']}").json()  # ran after the response
    assert job["state"] == "blocked" and job["verdict"] == "prompt_refused"
    assert "Chelsea at the Window" in job["error"] and "name match" in job["error"]
    assert job["screening"]["decision"] == "refuse"
    assert job["screening"]["matches"][0]["title"] == "Chelsea at the Window"
    assert job["check_id"] is None and job["gpu_seconds"] == 0
    assert "generation_s" not in job["timings"]
    with db.connection(settings) as conn:
        rec = conn.execute("SELECT decision, prompt FROM prompt_screenings WHERE job_id = %s",
                           (job["id"],)).fetchone()
        assert rec["decision"] == "refuse" and rec["prompt"].startswith("Chelsea at the Windw")
        assert not conn.execute("SELECT 1 FROM usage_ledger WHERE job_id = %s",
                                (job["id"],)).fetchall()
    assert not list((settings.data_dir / "generations").glob("*.mp4"))


def test_clip_that_copies_a_work_unnamed_in_the_prompt_is_blocked_by_the_gate(client, settings,
                                                                               tmp_path):
    # Screening cannot know the toy model regurgitates the rocket photo for "rocket"; the gate can.
    _register_sample(settings, "launch-day", tmp_path, title="Press still 14")
    client.post("/v1/tenants", json={"name": "acme", "tier": "pro", "credits_gpu_s": 100})
    r = _generate(client, "a rocket over a quiet harbour", "k1", seconds=3.0)
    job = client.get(f"/v1/generations/{r.json()['id']}").json()
    assert job["screening"]["decision"] == "pass"
    assert job["state"] == "blocked" and job["verdict"] == "block", job
    assert job["check_id"] and job["release_id"] is None and "download_url" not in job


@pytest.mark.parametrize("body, status, words", [
    ({"prompt": ""}, 400, "non-empty"),
    ({"prompt": "   "}, 400, "non-empty"),
    ({"prompt": "x" * 2001}, 400, "over the limit"),
    ({"tenant": "nobody"}, 404, "unknown tenant"),
    ({"width": 333}, 400, "width"),
    ({"idempotency_key": ""}, 400, "idempotency_key"),
])
def test_bad_requests_get_a_clear_4xx_and_queue_nothing(client, settings, body, status, words):
    client.post("/v1/tenants", json={"name": "acme", "tier": "pro", "credits_gpu_s": 100})
    full = {"prompt": "a lake", "tenant": "acme", "user": "u", "idempotency_key": "k", **body}
    r = client.post("/v1/generations", json=full)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]
    with db.connection(settings) as conn:
        assert conn.execute("SELECT count(*) AS n FROM generation_jobs").fetchone()["n"] == 0


def test_exhausted_credits_and_reused_key_are_refused(client, settings):
    client.post("/v1/tenants", json={"name": "broke", "tier": "pro", "credits_gpu_s": 0})
    r = _generate(client, "a lake", "k1", tenant="broke")
    assert r.status_code == 402 and "no GPU credits left" in r.json()["detail"]
    # Spend a tenant's credits to nothing through the ledger, as finished GPU jobs do.
    client.post("/v1/tenants", json={"name": "acme", "tier": "pro",
                                     "credits_gpu_s": settings.generation_estimate_s})
    first = _generate(client, "a lake at dawn", "k1")
    assert first.status_code == 202
    r = _generate(client, "a different prompt", "k1")
    assert r.status_code == 409 and first.json()["id"] in r.json()["detail"]
    t = tenants.get_tenant("acme", settings=settings)
    with db.connection(settings) as conn:
        tenants.charge(conn, tenant_id=t["id"], job_id=None, kind="generation",
                       gpu_seconds=settings.generation_estimate_s, wall_seconds=5.0)
    assert tenants.get_tenant("acme", settings=settings)["credits_gpu_s"] == 0
    r = _generate(client, "a lake at dusk", "k2")
    assert r.status_code == 402


def test_generator_key_cannot_manage_tenants(settings, client):
    gen_key = apikeys.create_key("gen", settings=settings)[1]
    with TestClient(create_app(settings), headers={"X-API-Key": gen_key}) as c:
        assert c.post("/v1/tenants", json={"name": "x"}).status_code == 403
        assert c.get("/v1/usage").status_code == 403
    assert client.get("/v1/generations/not-a-uuid").status_code == 404


def test_works_api_takes_aliases_and_description_for_screening(client, settings, tmp_path):
    work = get_work("launch-day")
    path = tmp_path / "w.png"
    work.load_image().save(path)
    with path.open("rb") as f:
        r = client.post("/v1/works", files={"file": ("w.png", f, "image/png")},
                        data={"owner": "Halcyon", "title": "Launch Day", "policy": "block",
                              "aliases": ["Halcyon Rocket", "Dawn Liftoff"],
                              "description": "A white rocket lifting off a coastal pad at dawn"})
    assert r.status_code == 201, r.text
    assert r.json()["aliases"] == ["Halcyon Rocket", "Dawn Liftoff"]
    assert r.json()["description"].startswith("A white rocket")
    with path.open("rb") as f:
        bad = client.post("/v1/works", files={"file": ("w.png", f, "image/png")},
                          data={"owner": "o", "title": "t", "policy": "block",
                                "description": "x" * 2001})
    assert bad.status_code == 400 and "description" in bad.json()["detail"]
    client.post("/v1/tenants", json={"name": "acme", "tier": "pro", "credits_gpu_s": 100})
    job = client.get(f"/v1/generations/{_generate(client, 'dawn lift-off, 4k', 'k').json()['id']}")
    assert job.json()["state"] == "blocked" and "Launch Day" in job.json()["error"]


def test_held_clip_job_waits_in_review_then_follows_the_reviewers_decision(client, settings,
                                                                          tmp_path):
    # A `review` work: the gate holds the clip for a person instead of deciding.
    work = _register_sample(settings, "launch-day", tmp_path, title="Press still 14")
    index.set_work_policy(str(work["id"]), "review", settings=settings)
    client.post("/v1/tenants", json={"name": "acme", "tier": "pro", "credits_gpu_s": 100})
    admitted = [_generate(client, "a rocket over a quiet harbour", k, seconds=3.0).json()
                for k in ("k1", "k2")]
    jobs = [client.get(f"/v1/generations/{a['id']}").json() for a in admitted]
    for job in jobs:
        assert job["state"] == "in_review" and job["verdict"] == "review", job
        assert not job["done"] and job["review"]["state"] == "pending"
        assert job["release_id"] is None and "download_url" not in job
    assert not list((settings.data_dir / "generations").glob("*.mp4"))  # only the held copy

    first, second = (j["review"]["review_id"] for j in jobs)
    held = client.get(f"/v1/reviews/{first}").json()
    assert held["generator"]["job_id"] == jobs[0]["id"]
    assert held["generator"]["prompt_sha256"] == jobs[0]["prompt_sha256"]
    r = client.post(f"/v1/reviews/{first}/decision",
                    json={"revision": 1, "decision": "release", "reason": "our own still"})
    assert r.status_code == 200, r.text
    job = client.get(f"/v1/generations/{jobs[0]['id']}").json()
    assert job["state"] == "released" and job["done"] and job["error"] is None
    assert job["release_id"] == r.json()["release_id"] and job["review"]["state"] == "released"
    assert client.get(job["download_url"]).content[4:8] == b"ftyp"

    r = client.post(f"/v1/reviews/{second}/decision",
                    json={"revision": 1, "decision": "block", "reason": "too close a copy"})
    assert r.status_code == 200, r.text
    job = client.get(f"/v1/generations/{jobs[1]['id']}").json()
    assert job["state"] == "blocked" and job["done"] and job["release_id"] is None
    assert job["error"] == "blocked in review (admin): too close a copy"

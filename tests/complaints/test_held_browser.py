"""Held clips on the review pages, in a real headless Chromium against a real uvicorn: two
generation jobs whose clips copy a `review` work are held; a reviewer opens the first, sees the
evidence side by side, and releases it (the job becomes released, and the downloaded file
verifies Trusted with the human decision in its manifest); the second is blocked, and so is its
job."""

from __future__ import annotations

import httpx
import pytest

import index
from clipgate import apikeys
from compliance import verify_clip
from generator import get_work
from generator.tenants import create_tenant
from tests.complaints import web_helpers as h
from tests.complaints.test_pages_browser import shot, sign_in

pytestmark = pytest.mark.browser
PROMPT = "a rocket over a quiet harbour"  # the procedural model regurgitates the rocket photo


def _job(api: httpx.Client, job_id: str) -> dict:
    return api.get(f"/v1/generations/{job_id}").json()


def test_reviewer_releases_one_held_clip_and_blocks_another(settings, tmp_path, browser_page):
    page = browser_page
    rocket = get_work("launch-day")
    rocket.load_image().save(tmp_path / "rocket.png")
    work = index.register_work(tmp_path / "rocket.png", owner=rocket.owner, title="Launch Day",
                               policy="review", settings=settings)
    create_tenant("acme", tier="pro", credits_gpu_s=100, settings=settings)
    key = apikeys.create_key("ops", "admin", settings)[1]
    h.account(settings, "reviewer", "rita@legal.example.org", "Rita Review")

    with h.live_server(settings) as base, \
            httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=60) as api:
        first, second = (h.finished_job(api, prompt=PROMPT, tenant="acme", key=k)
                         for k in ("k1", "k2"))
        for job in (first, second):
            assert job["state"] == "in_review" and job["review"]["state"] == "pending", job

        # --- the reviewer: the queue shows both held clips, with their age and SLA clock ----
        sign_in(page, base, "rita@legal.example.org")
        page.wait_for_url("**/review")
        held = page.locator("table.held tbody tr")
        assert held.count() == 2
        assert "Launch Day (review)" in held.first.inner_text()
        assert held.first.locator(".sla-ok").count() == 1
        page.set_viewport_size({"width": 1024, "height": 640})
        shot(page, "review-held-queue")
        page.set_viewport_size({"width": 390, "height": 844})
        page.get_by_role("link", name=f"{first['id']}.mp4").click()
        page.wait_for_url(f"**/review/held/{first['review']['review_id']}")
        assert page.locator("#held-state").inner_text() == "Waiting for a decision"
        facts = page.locator("dl.facts").inner_text()
        assert first["id"] in facts and first["prompt_sha256"] in facts
        assert "its policy is review" in facts

        # The evidence: the held clip's frame beside the work's, from the real media.
        assert page.get_by_role("heading", name="Launch Day", exact=False).count() >= 1
        pairs = page.locator("ol.pairs > li")
        assert pairs.count() >= 1
        for img in pairs.first.locator("img").all():
            img.scroll_into_view_if_needed()
            page.wait_for_function("i => i.complete && i.naturalWidth > 0",
                                   arg=img.element_handle())
        assert "Clip at" in pairs.first.inner_text() and "The work" in pairs.first.inner_text()
        assert page.locator(".timeline .seg").count() >= 1
        page.set_viewport_size({"width": 900, "height": 960})
        shot(page, "review-held-evidence")
        page.set_viewport_size({"width": 390, "height": 844})

        page.get_by_label("Reason (kept in the audit log)").fill("Our own press still.")
        page.get_by_label("Release the clip", exact=False).check()
        page.get_by_role("button", name="Record the decision").click()
        page.get_by_text("The clip is released").wait_for()
        assert page.locator("#held-state").inner_text() == "Released by a reviewer"

        released = _job(api, first["id"])
        assert released["state"] == "released" and released["release_id"], released
        signed = tmp_path / "downloaded.mp4"
        signed.write_bytes(api.get(released["download_url"]).content)
        item = api.get(f"/v1/reviews/{first['review']['review_id']}").json()

        # --- the second held clip is blocked, with a block rule for the work ---------------
        page.get_by_role("link", name="Review queue").click()
        assert page.locator("table.held tbody tr").count() == 1  # pending ones only
        page.get_by_role("link", name=f"{second['id']}.mp4").click()
        page.get_by_label("Block the clip").check()
        page.get_by_label("When blocking, also block future outputs", exact=False).check()
        page.get_by_label("Reason (kept in the audit log)").fill("A plain copy of the still.")
        page.get_by_role("button", name="Record the decision").click()
        page.get_by_text("The clip is blocked.").wait_for()
        assert page.locator("#held-state").inner_text() == "Blocked"
        blocked = _job(api, second["id"])
        assert blocked["state"] == "blocked" and blocked["release_id"] is None
        assert "A plain copy of the still." in blocked["error"]

    report = verify_clip(signed, settings=settings)
    assert report["state"] == "Trusted" and report["verified"]
    human = report["assertions"]["org.clipgate.compliance"]["human_decision"]
    assert human["decision_id"] == item["decision"]["id"]
    assert human["reviewer_role"] == "reviewer" and human["outcome"] == "release"
    assert "reviewer" not in human  # no name unless the settings say so
    assert index.get_work(str(work["id"]), settings=settings)["policy"] == "block"

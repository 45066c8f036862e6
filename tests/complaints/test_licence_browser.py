"""A licence end to end, in a real headless Chromium against a real uvicorn: an operator
licenses a rights holder's `block` work to one tenant; that tenant's generation job, whose clip
copies the work, is released and the signed file names the licence; another tenant's identical
clip is blocked; the rights holder sees the licence and the use in the portal."""

from __future__ import annotations

import httpx
import pytest

import index
from clipgate import apikeys
from compliance import verify_clip
from compliance.signing import COMPLIANCE_LABEL
from generator import get_work
from generator.tenants import create_tenant
from tests.complaints import web_helpers as h
from tests.complaints.test_pages_browser import shot, sign_in

pytestmark = pytest.mark.browser
PROMPT = "a rocket over a quiet harbour"  # the procedural model regurgitates the rocket photo


def test_licensed_tenant_released_with_the_licence_named_other_tenant_blocked(
        settings, tmp_path, browser_page):
    page = browser_page
    holder = h.account(settings, "rights_holder", "ana@reyes.example.org", "Ana Reyes")
    rocket = get_work("launch-day")
    rocket.load_image().save(tmp_path / "rocket.png")
    # Titled so that prompt screening does not know it: the gate decides on the clip itself.
    work = index.register_work(tmp_path / "rocket.png", owner=rocket.owner,
                               title="Press still 14", policy="block",
                               account_id=str(holder["id"]), settings=settings)
    for name in ("acme", "globex"):
        create_tenant(name, tier="pro", credits_gpu_s=100, settings=settings)
    key = apikeys.create_key("ops", "admin", settings)[1]

    with h.live_server(settings) as base, \
            httpx.Client(base_url=base, headers={"X-API-Key": key}, timeout=60) as api:
        r = api.post("/v1/licences", json={"tenant": "acme", "work_id": str(work["id"]),
                                           "valid_until": "2099-12-31T00:00:00Z"})
        assert r.status_code == 201, r.text
        lic = r.json()

        mine, theirs = (h.finished_job(api, prompt=PROMPT, tenant=t, key=k, seed=7)
                        for t, k in (("acme", "k1"), ("globex", "k2")))
        assert mine["state"] == "released", mine
        assert theirs["state"] == "blocked" and theirs["verdict"] == "block", theirs
        signed = tmp_path / "signed.mp4"
        signed.write_bytes(api.get(mine["download_url"]).content)
        report = verify_clip(signed, settings=settings)
        assert report["state"] == "Trusted" and report["verified"]
        assert report["assertions"][COMPLIANCE_LABEL]["licences"] == [lic["licence_id"]]
        for job, rule in ((mine, "licence"), (theirs, "policy")):
            check = api.get(f"/v1/checks/{job['check_id']}").json()
            assert check["decided_by"][0]["rule"] == rule, check["decided_by"]

        # --- the rights holder: the licence, and the one use it allowed ---------------------
        sign_in(page, base, "ana@reyes.example.org")
        page.wait_for_url("**/portal")
        page.get_by_role("link", name="Licences and uses").click()
        page.wait_for_url("**/portal/licences")
        row = page.locator(f"#licence-{lic['licence_id']}")
        assert "Press still 14" in row.inner_text() and "acme" in row.inner_text()
        assert row.locator(".state-in_force").inner_text() == "In force"
        uses = page.get_by_role("table", name="Released clips that used your works")
        [use] = uses.locator("tbody tr").all()
        cells = [c.inner_text().strip() for c in use.locator("td").all()]
        assert cells[0] == "Press still 14" and lic["licence_id"] in cells[1]
        assert cells[3:5] == ["acme", "1"]  # globex's clip was blocked: no use
        page.set_viewport_size({"width": 1024, "height": 640})
        shot(page, "portal-licences")

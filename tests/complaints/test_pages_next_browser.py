"""Long lists on the pages, in a real headless Chromium against a real uvicorn: "My claims" and
the review queue show a page of rows and a "Next page" link to the rest, instead of stopping."""

from __future__ import annotations

import pytest

from tests.complaints import web_helpers as h
from tests.complaints.test_pages_browser import sign_in, sign_out
from tests.media import photo, write_image

pytestmark = pytest.mark.browser


def test_my_claims_and_the_review_queue_walk_to_the_second_page(settings, tmp_path,
                                                                browser_page):
    page = browser_page
    holder = h.account(settings, "rights_holder", "ana@reyes.example.org", "Ana Reyes")
    h.account(settings, "reviewer", "rita@legal.example.org", "Rita Review")
    release, _, _ = h.released_clip(settings, tmp_path / "media")
    filed = []
    for name in ("astronaut", "coffee"):  # two of her works, both claimed on the one clip
        work = h.register_work(settings, holder, write_image(tmp_path / f"{name}.png",
                                                             photo(name)), name.title())
        filed.append(h.file_claim(settings, holder, str(release["id"]), str(work["id"])))
    numbers = [f"Claim {c['number']}" for c in filed]

    with h.live_server(settings) as base:
        sign_in(page, base, "ana@reyes.example.org")
        page.wait_for_url("**/portal")
        page.goto(f"{base}/portal?limit=1")
        first = page.locator("table a[href^='/portal/claims/']").all_inner_texts()
        assert first == [numbers[1]]  # newest first
        page.get_by_text("Showing 1 of 2.").wait_for()
        page.get_by_role("link", name="Next page").click()
        page.wait_for_url("**cursor=*")
        assert page.locator("table a[href^='/portal/claims/']").all_inner_texts() == [numbers[0]]
        assert page.get_by_role("link", name="Next page").count() == 0  # the last page
        page.get_by_role("link", name="First page").click()
        assert page.locator("table a[href^='/portal/claims/']").all_inner_texts() == [numbers[1]]
        # A damaged page link gets a page in words, not a crash.
        r = page.goto(f"{base}/portal?cursor=garbage")
        assert r.status == 400 and "bad cursor" in page.content().lower()
        sign_out(page)

        sign_in(page, base, "rita@legal.example.org")
        page.goto(f"{base}/review?limit=1&sort=created&order=asc")
        claims = page.locator("table.queue:not(.held) a[href^='/review/claims/']")
        assert claims.all_inner_texts() == [numbers[0]]
        page.get_by_role("link", name="Next page of claims").click()
        page.wait_for_url("**cursor=*")
        assert claims.all_inner_texts() == [numbers[1]]
        assert "sort=created" in page.url  # the filters are kept
        assert page.get_by_role("link", name="Next page of claims").count() == 0

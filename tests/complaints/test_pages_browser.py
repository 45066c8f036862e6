"""The claim portal and the review queue in a real headless Chromium against a real uvicorn:
a rights holder files a claim with an uploaded copy whose C2PA manifest was stripped, a reviewer
upholds it with takedown and block, the claimant sees the outcome, and a new generation of the
same content is blocked.

Set CLIPGATE_SCREENSHOTS=1 to write the README's screenshots to docs/screenshots/.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import av
import pytest
from PIL import Image

from compliance import check_clip, get_release, verify_clip
from tests.complaints import web_helpers as h
from tests.media import photo, write_video

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
MAX_SHOT_BYTES = 150 * 1024


def strip_manifest(src: Path, dst: Path) -> Path:
    """Remux the signed MP4 into a new container: the same H.264 packets, no C2PA manifest."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        stream = inp.streams.video[0]
        copy = out.add_stream_from_template(stream)
        for packet in inp.demux(stream):
            if packet.dts is None:  # the demuxer's flush packet
                continue
            packet.stream = copy
            out.mux(packet)
    return dst


def shot(page, name: str) -> None:
    """A screenshot for the README, as a 64-colour PNG so that it stays small."""
    if os.environ.get("CLIPGATE_SCREENSHOTS") != "1":
        return
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    image = Image.open(io.BytesIO(page.screenshot())).convert("RGB")
    image.quantize(colors=64, method=Image.Quantize.MEDIANCUT,
                   dither=Image.Dither.NONE).save(path, optimize=True)
    assert path.stat().st_size < MAX_SHOT_BYTES, f"{path} is over {MAX_SHOT_BYTES} bytes"


def sign_in(page, base: str, email: str) -> None:
    page.goto(f"{base}/signin")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(h.PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def sign_out(page) -> None:
    page.get_by_role("button", name="Sign out", exact=True).click()
    page.wait_for_url("**/signin")


def test_claim_filed_upheld_and_enforced(settings, tmp_path, browser_page):
    page = browser_page
    # A clip generated and released before anyone protected the photo it copies.
    # The copy sits inset in a scene, so the matched region is a part of the frame.
    release, signed, work_file = h.released_clip(settings, tmp_path / "media", inset_copy=True)
    stripped = strip_manifest(signed, tmp_path / "downloaded-copy.mp4")
    assert b"c2pa" in signed.read_bytes() and b"c2pa" not in stripped.read_bytes()
    assert verify_clip(stripped, settings=settings)["release_matched_by"] != "manifest"
    h.account(settings, "reviewer", "rita@legal.example.org", "Rita Review")

    with h.live_server(settings) as base:
        # --- the rights holder: an account, a work, a claim ------------------------------------
        page.goto(f"{base}/signup")
        page.get_by_label("Your full name").fill("Ana Reyes")
        page.get_by_label("Organisation (optional)").fill("Reyes Films")
        page.get_by_label("Email").fill("ana@reyes.example.org")
        page.get_by_label("Password", exact=True).fill(h.PASSWORD)
        page.get_by_label("The same password again").fill(h.PASSWORD)
        page.get_by_role("button", name="Create the account").click()
        page.wait_for_url("**/signin")
        page.get_by_label("Email").fill("ana@reyes.example.org")
        page.get_by_label("Password").fill(h.PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url("**/portal")
        assert page.title() == "My claims · clipgate"

        page.get_by_role("link", name="My works").click()
        page.get_by_label("Image or video file").set_input_files(str(work_file))
        page.get_by_label("Title").fill("Astronaut portrait")
        page.get_by_label("Other names (optional, separated by commas)").fill("The astronaut")
        page.get_by_role("button", name="Register the work").click()
        page.get_by_text("is registered").wait_for()
        assert page.get_by_role("heading", name="Astronaut portrait").is_visible()

        page.get_by_role("link", name="File a claim").first.click()
        # Nothing is filed without the statement; the error says so in words.
        page.get_by_label("Upload the clip").set_input_files(str(stripped))
        page.get_by_label("One of your registered works").select_option(label="Astronaut portrait")
        page.get_by_label("Take the clip down").check()
        page.get_by_role("button", name="File the claim").click()
        assert "full statement" in page.get_by_role("alert").inner_text()

        page.get_by_label("Upload the clip").set_input_files(str(stripped))
        page.get_by_label("One of your registered works").select_option(label="Astronaut portrait")
        page.get_by_label("Take the clip down").check()
        page.get_by_label("Block future outputs that copy the work").check()
        page.get_by_label("I believe in good faith", exact=False).check()
        page.get_by_label("The information in this claim is accurate.").check()
        page.get_by_label("I own the rights in the work", exact=False).check()
        page.get_by_label("Signature: type your full name").fill("Ana Reyes")
        page.get_by_label("Anything else we should know (optional)").fill(
            "Found this clip on a video site; it is my portrait, slowly zoomed.")
        shot(page, "portal-file-claim")
        page.get_by_role("button", name="File the claim").click()
        page.wait_for_url("**/portal/claims/*")
        claim_url = page.url
        assert "was filed" in page.get_by_role("status").inner_text()
        assert "its pictures" in page.content()  # found by fingerprint, not by manifest
        title = page.get_by_role("heading", level=1).inner_text()  # "Claim <number>"
        page.get_by_role("link", name="My claims").click()
        row = page.locator("tbody tr")
        assert row.count() == 1 and row.get_by_role("link", name=title).is_visible()
        assert "Astronaut portrait" in row.inner_text()
        sign_out(page)

        # --- the reviewer: the queue, the evidence, the decision ------------------------------
        sign_in(page, base, "rita@legal.example.org")
        page.wait_for_url("**/review")
        assert page.title() == "Review queue · clipgate"
        rows = page.locator("table.queue tbody tr")
        assert rows.count() == 1 and "Astronaut portrait" in rows.first.inner_text()
        page.set_viewport_size({"width": 1024, "height": 640})
        shot(page, "review-queue")
        page.set_viewport_size({"width": 390, "height": 844})
        rows.first.get_by_role("link").click()
        page.get_by_role("button", name="Assign to me").click()
        page.get_by_text("assigned to you").wait_for()
        assert page.locator("#claim-state").inner_text() == "In review"

        # The evidence: frame pairs drawn from the real media, the timeline, each signal's score.
        pairs = page.locator("ol.pairs > li")
        assert pairs.count() >= 1
        first_img = pairs.first.locator("img").first
        first_img.scroll_into_view_if_needed()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0",
                               arg=first_img.element_handle())
        for img in pairs.first.locator("img").all():
            assert img.evaluate("i => i.naturalWidth") > 0
        assert page.locator(".timeline .seg").count() >= 1
        assert page.locator("#signal-scores tbody tr").count() >= 1
        text = pairs.first.inner_text()
        assert "Clip at" in text and "The work" in text and "inliers" in text
        # The matched region is drawn where the copy sits in the clip's frame (x 30-90%).
        region = pairs.first.locator(".frame .region")
        box = region.bounding_box()
        frame = pairs.first.locator(".frame").first.bounding_box()
        left = (box["x"] - frame["x"]) / frame["width"]
        width = box["width"] / frame["width"]
        assert 0.2 < left < 0.4 and 0.45 < width < 0.75, (left, width)
        page.set_viewport_size({"width": 900, "height": 960})
        page.locator("#evidence-h").evaluate("h => h.scrollIntoView()")
        shot(page, "review-evidence")
        page.set_viewport_size({"width": 390, "height": 844})

        page.get_by_label("Uphold the claim").check()
        for action in ("Take the claimed clip down (revoke its release)",
                       "Block future outputs that match the work"):
            page.get_by_label(action).check()
        for action in ("Flag the work for exclusion from training",
                       "Rescan every released clip and revoke the matches",
                       "Rescan every released clip and flag the matches for review"):
            page.get_by_label(action).uncheck()
        page.get_by_label("Reason", exact=False).fill(
            "Every sampled frame of the clip is the claimant's portrait, slightly zoomed.")
        page.get_by_role("button", name="Record the decision").click()
        page.get_by_text("The claim is upheld.").wait_for()
        assert page.locator("#claim-state").inner_text() == "Upheld"
        sign_out(page)

        # --- the claimant sees the outcome ---------------------------------------------------
        sign_in(page, base, "ana@reyes.example.org")
        page.goto(claim_url)
        assert page.locator("#claim-state").inner_text() == "Upheld"
        assert str(release["id"]) in page.locator("#takedowns").inner_text()
        assert "taken down" in page.locator("#takedowns").inner_text()
        shot(page, "portal-claim-upheld")

    # The takedown revoked the release, and a new generation of the same content is blocked.
    assert get_release(str(release["id"]), settings=settings)["status"] == "revoked"
    img = photo("astronaut")
    again = write_video(tmp_path / "new-generation.mp4",
                        [h.inset(img, i, 30, scale=0.65, at=(0.25, 0.15), background=11)
                         for i in range(30)])
    assert check_clip(again, settings=settings).verdict == "block"


UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
    .filter(el => el.labels.length === 0 && !el.getAttribute('aria-label'))
    .map(el => el.name || el.id)"""


def test_pages_are_labelled_keyboard_usable_and_fit_a_phone(settings, browser_page):
    page = browser_page
    h.account(settings, "rights_holder", "ana@example.org", "Ana")
    h.account(settings, "admin", "ada@example.org", "Ada")
    with h.live_server(settings) as base:
        # Sign in with the keyboard alone: the skip link first, then the form in order.
        page.goto(f"{base}/signin")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to the content"
        page.get_by_label("Email").focus()
        page.keyboard.type("ana@example.org")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.id") == "password"
        page.keyboard.type(h.PASSWORD)
        page.keyboard.press("Enter")
        page.wait_for_url("**/portal")

        pages = ["/portal", "/portal/works", "/portal/claims/new", "/account"]
        for path in pages:
            _check_page(page, base + path)
        sign_out(page)
        _check_page(page, base + "/signup")
        sign_in(page, base, "ada@example.org")
        for path in ("/review", "/admin/accounts"):
            _check_page(page, base + path)


def _check_page(page, url: str) -> None:
    page.goto(url)
    assert page.evaluate(UNLABELLED) == [], url
    assert page.title().endswith("· clipgate") and page.locator("h1").count() == 1, url
    # Nothing wider than the phone's screen (no sideways scrolling).
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), url

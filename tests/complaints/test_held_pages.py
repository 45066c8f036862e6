"""The held-clip pages without a browser: who may see them, the evidence's pictures, the queue's
filters and SLA clock, and a decision refused in words (stale revision, already decided, no
outcome, no CSRF token)."""

from __future__ import annotations

import pytest

import index
from compliance import generator_identity, release_clip
from tests.complaints import web_helpers as h
from tests.media import pan, photo, write_image, write_video

IDENT = generator_identity(model="test-gen", version="1", prompt="a slow zoom")


@pytest.fixture
def held(settings, tmp_path) -> dict:
    img = photo("astronaut")
    work = index.register_work(write_image(tmp_path / "a.png", img), owner="NASA",
                               title="Astronaut", policy="review", settings=settings)
    clip = write_video(tmp_path / "held-clip.mp4", [pan(img, i, 24) for i in range(24)])
    outcome = release_clip(clip, generator=IDENT, settings=settings)
    assert outcome.review is not None
    return {**outcome.review, "work_id": str(work["id"])}


@pytest.fixture
def people(settings) -> None:
    h.account(settings, "reviewer", "rita@legal.example.org", "Rita Review")
    h.account(settings, "rights_holder", "ana@reyes.example.org", "Ana Reyes")


def test_queue_lists_held_clips_with_filters_and_an_sla_clock(settings, held, people):
    c = h.client(settings)
    h.sign_in(c, "rita@legal.example.org")
    page = c.get("/review").text
    assert f'/review/held/{held["review_id"]}' in page and "held-clip.mp4" in page
    assert "Astronaut (review)" in page and 'class="sla sla-ok"' in page
    assert f'/review/held/{held["review_id"]}' not in c.get("/review?held_state=blocked").text
    assert f'/review/held/{held["review_id"]}' not in c.get("/review?held_source=generation").text
    late = h.client(settings.model_copy(update={"review_timeout_s": 0.001}))
    h.sign_in(late, "rita@legal.example.org")
    assert 'class="sla sla-late"' in late.get("/review").text


def test_only_staff_see_a_held_clip_and_its_frames(settings, held, people):
    rid = held["review_id"]
    c = h.client(settings)
    h.sign_in(c, "ana@reyes.example.org")
    assert c.get(f"/review/held/{rid}").status_code == 403
    assert c.get(f"/review/held/{rid}/media/clip?t=0").status_code == 403
    assert h.client(settings).get(f"/review/held/{rid}").status_code == 303  # sign in first

    c = h.client(settings)
    h.sign_in(c, "rita@legal.example.org")
    page = c.get(f"/review/held/{rid}")
    assert page.status_code == 200 and "Astronaut (NASA), policy review" in page.text
    assert IDENT["prompt_sha256"] in page.text
    clip = c.get(f"/review/held/{rid}/media/clip?t=0.5")
    assert clip.status_code == 200 and clip.content[:2] == b"\xff\xd8"
    work = c.get(f"/review/held/{rid}/media/work?work={held['work_id']}&t=0")
    assert work.status_code == 200 and work.content[:2] == b"\xff\xd8"
    other = "00000000-0000-0000-0000-000000000000"
    assert c.get(f"/review/held/{rid}/media/work?work={other}").status_code == 404
    assert c.get(f"/review/held/{other}").status_code == 404


def test_decisions_are_refused_in_words_and_a_decided_clip_stays_decided(settings, held, people):
    rid = held["review_id"]
    c = h.client(settings)
    h.sign_in(c, "rita@legal.example.org")
    token = h.csrf_of(c.get(f"/review/held/{rid}").text)
    url = f"/review/held/{rid}/decide"
    form = {"csrf_token": token, "revision": "1", "outcome": "block", "reason": "a copy"}
    assert c.post(url, data={**form, "csrf_token": "forged"}).status_code == 403
    none = c.post(url, data={**form, "outcome": ""})
    assert none.status_code == 400 and "Choose a decision" in none.text
    stale = c.post(url, data={**form, "revision": "0"})
    assert stale.status_code == 409 and "changed since you opened it" in stale.text
    assert "a copy" in stale.text  # the reason typed is kept
    done = c.post(url, data=form)
    assert done.status_code == 303
    after = c.get(f"/review/held/{rid}").text
    assert "The clip is blocked." in after and 'id="held-decision"' not in after
    again = c.post(url, data={**form, "revision": "2", "outcome": "release"})
    assert again.status_code == 409 and "already decided" in again.text

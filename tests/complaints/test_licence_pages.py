"""The portal's licences and uses page: a rights holder sees the licences that cover their works
(by work and by catalogue) and the released clips that used them, per model and tenant; never
another holder's."""

from __future__ import annotations

import re

import compliance
import index
from compliance import Licensee, generator_identity, release_clip
from tests.complaints import web_helpers as h
from tests.media import noise_frame, pan, photo, write_image, write_video


def _text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def test_rights_holder_sees_their_licences_and_tracked_uses_only(settings, tmp_path):
    ana = h.account(settings, "rights_holder", "ana@reyes.example.org", "Ana Reyes")
    h.account(settings, "rights_holder", "bo@other.example.org", "Bo Other")
    work = index.register_work(
        write_image(tmp_path / "astronaut.jpg", photo("astronaut", (512, 512))),
        owner="Reyes Studio", title="Astronaut portrait", policy="track",
        account_id=str(ana["id"]), settings=settings)
    lic = compliance.create_licence(tenant_id="t-acme", tenant_name="acme", owner="Reyes Studio",
                                    model="gen-1", settings=settings)
    other = compliance.create_licence(tenant_id="t-acme", tenant_name="acme",
                                      owner="Someone Else", settings=settings)
    img = photo("astronaut")
    clip = write_video(tmp_path / "copy.mp4", [noise_frame(1 + i // 6) for i in range(12)]
                       + [pan(img, i, 36) for i in range(36)], fps=12)
    ident = generator_identity(model="gen-1", version="1", prompt="p")
    for licensee in (Licensee("t-acme", "acme"), Licensee("t-acme", "acme"), None):
        assert release_clip(clip, generator=ident, settings=settings, licensee=licensee).released

    c = h.client(settings)
    h.sign_in(c, "ana@reyes.example.org")
    r = c.get("/portal/licences")
    assert r.status_code == 200
    text = _text(r.text)
    assert lic["licence_id"] in text and other["licence_id"] not in text
    assert "Every work of Reyes Studio acme gen-1" in text and "In force" in text
    # Two clips released by the licence for acme, one by tracking for a caller with no tenant.
    assert f"Astronaut portrait Licence {lic['licence_id']} gen-1 acme 2" in text
    assert "Astronaut portrait Tracking gen-1 Not named 1" in text
    assert 'href="/portal/licences"' in r.text  # in the portal's navigation
    works = _text(c.get("/portal/works").text)
    assert "matches are released and reported to you here" in works

    bo = h.client(settings)
    h.sign_in(bo, "bo@other.example.org")
    text = _text(bo.get("/portal/licences").text)
    assert lic["licence_id"] not in text and "None of your works is licensed" in text
    assert "No released clip has used your works" in text
    # Without signing in, the page sends you to sign in.
    assert h.client(settings).get("/portal/licences").status_code == 303
    assert work["policy"] == "track"

"""The portal never shows a rights holder another owner's work (issue 15): not when they upload
a file someone else registered, and not on a claim whose uploaded work was registered before."""

from __future__ import annotations

import complaints
from complaints.actors import actor_for_account
from tests.complaints import web_helpers as h

SECRET = "Orchard Nocturne (unpublished)"


def test_uploading_another_owners_file_names_nothing_of_it(settings, tmp_path):
    first = h.account(settings, "rights_holder", "first@example.org", "First Studio")
    h.account(settings, "rights_holder", "second@example.org", "Second Person")
    _, _, work_file = h.released_clip(settings, tmp_path / "media")
    work = h.register_work(settings, first, work_file, SECRET)
    c = h.client(settings)
    h.sign_in(c, "second@example.org")
    token = h.csrf_of(c.get("/portal/works").text)
    r = c.post("/portal/works", data={"csrf_token": token, "title": "Mine"},
               files={"file": ("mine.png", work_file.read_bytes(), "image/png")})
    assert r.status_code == 409 and "already registered" in r.text
    for secret in (SECRET, str(work["id"]), "First Studio"):
        assert secret not in r.text
    # The owner who registered it is told the details of their own work.
    own = h.client(settings)
    h.sign_in(own, "first@example.org")
    token = h.csrf_of(own.get("/portal/works").text)
    r = own.post("/portal/works", data={"csrf_token": token, "title": "Again"},
                 files={"file": ("again.png", work_file.read_bytes(), "image/png")})
    assert r.status_code == 409 and SECRET in r.text


def test_a_claim_on_a_work_registered_by_another_hides_that_work(settings, tmp_path):
    first = h.account(settings, "rights_holder", "first@example.org", "First Studio")
    second = h.account(settings, "rights_holder", "second@example.org", "Second Person")
    release, _, work_file = h.released_clip(settings, tmp_path / "media")
    h.register_work(settings, first, work_file, SECRET)
    claim = complaints.file_claim(
        actor_for_account(second), release_id=str(release["id"]), work_path=work_file,
        work_title="My photo", statement=h.STATEMENT, remedies=["takedown"], settings=settings)
    assert claim["work"]["title"] == "The work you uploaded" and claim["work"]["id"] is None
    assert claim["work"]["owner"] is None and claim["work"]["policy"] is None
    (line,) = complaints.list_claims(actor_for_account(second), settings=settings).items
    assert SECRET not in repr(line) and "First Studio" not in repr(line)
    c = h.client(settings)
    h.sign_in(c, "second@example.org")
    for page in ("/portal", f"/portal/claims/{claim['id']}"):
        r = c.get(page)
        assert r.status_code == 200 and SECRET not in r.text and "First Studio" not in r.text
    # Staff see the work as it is.
    reviewer = h.account(settings, "reviewer", "rev@example.org")
    staff = complaints.get_claim(actor_for_account(reviewer), claim["id"], settings=settings)
    assert staff["work"]["title"] == SECRET

"""The pages' access rules, over HTTP with the whole app: session cookies, CSRF, the sign-in
rate limit, and every role check tried with the wrong role."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from clipgate.app import create_app
from complaints import accounts
from tests.complaints import web_helpers as h

ROLE_PAGES = {
    # page: the roles that may open it
    "/portal": {"rights_holder"},
    "/portal/works": {"rights_holder"},
    "/portal/claims/new": {"rights_holder"},
    "/review": {"reviewer", "admin"},
    "/admin/accounts": {"admin"},
}


@pytest.fixture
def people(settings):
    return {role: h.account(settings, role, f"{role}@example.org")
            for role in ("rights_holder", "reviewer", "admin")}


def test_session_cookie_is_secure_httponly_lax_and_signed(settings, people):
    # The default settings: the cookie goes over https only.
    c = TestClient(create_app(settings), base_url="https://testserver", follow_redirects=False)
    r = h.sign_in(c, "reviewer@example.org")
    assert r.status_code == 303 and r.headers["location"] == "/review"
    cookie = r.headers["set-cookie"].lower()
    assert "clipgate_session=" in cookie
    for flag in ("secure", "httponly", "samesite=lax"):
        assert flag in cookie
    assert c.get("/review").status_code == 200
    # A forged cookie (same shape, wrong signature) is no session at all.
    forged = TestClient(create_app(settings), base_url="https://testserver",
                        follow_redirects=False)
    value = c.cookies.get("clipgate_session")
    forged.cookies.set("clipgate_session", value[:-3] + ("AAA" if value[-3:] != "AAA" else "BBB"))
    assert forged.get("/review").status_code == 303
    # The secret was made once in the data dir, readable by its owner only.
    secret = settings.data_dir / "session_secret"
    assert secret.stat().st_mode & 0o777 == 0o600


def test_session_secret_from_settings_is_used(settings, people):
    a = TestClient(create_app(h.plain_http(settings.model_copy(
        update={"session_secret": "s1" * 20}))), follow_redirects=False)
    h.sign_in(a, "reviewer@example.org")
    b = TestClient(create_app(h.plain_http(settings.model_copy(
        update={"session_secret": "s2" * 20}))), follow_redirects=False)
    b.cookies.set("clipgate_session", a.cookies.get("clipgate_session"))
    assert a.get("/review").status_code == 200
    assert b.get("/review").status_code == 303  # signed with another secret: not accepted


@pytest.mark.parametrize("page", sorted(ROLE_PAGES))
def test_every_page_checks_the_role(settings, people, page):
    anonymous = h.client(settings)
    r = anonymous.get(page)
    assert r.status_code == 303 and r.headers["location"].startswith("/signin?next=")
    for role in ("rights_holder", "reviewer", "admin"):
        c = h.client(settings)
        h.sign_in(c, f"{role}@example.org")
        r = c.get(page)
        if role in ROLE_PAGES[page]:
            assert r.status_code == 200, (role, page)
        else:
            assert r.status_code == 403, (role, page)
            assert "cannot open this page" in r.text


@pytest.mark.parametrize("path, data", [
    ("/portal/works", {"title": "x"}),
    ("/portal/claims", {"release_id": "x"}),
])
def test_posts_to_portal_need_a_rights_holder(settings, people, path, data):
    for role in ("reviewer", "admin"):
        c = h.client(settings)
        h.sign_in(c, f"{role}@example.org")
        token = h.csrf_of(c.get("/review").text)
        r = c.post(path, data={**data, "csrf_token": token})
        assert r.status_code == 403, (role, path)


def test_staff_posts_refuse_rights_holders(settings, people):
    c = h.client(settings)
    h.sign_in(c, "rights_holder@example.org")
    token = h.csrf_of(c.get("/portal").text)
    fake = "00000000-0000-0000-0000-000000000000"
    for path in (f"/review/claims/{fake}/assign", f"/review/claims/{fake}/decide",
                 "/admin/accounts", f"/admin/accounts/{people['reviewer']['id']}/disable"):
        r = c.post(path, data={"csrf_token": token, "revision": "1", "outcome": "reject",
                               "reason": "x", "email": "n@example.org", "name": "N",
                               "role": "admin", "password": h.PASSWORD})
        assert r.status_code == 403, path
    assert accounts.get_account(str(people["reviewer"]["id"]), settings=settings)[
        "disabled_at"] is None
    assert len(accounts.list_accounts(settings=settings)) == 3


def test_reviewer_cannot_manage_accounts(settings, people):
    c = h.client(settings)
    h.sign_in(c, "reviewer@example.org")
    token = h.csrf_of(c.get("/review").text)
    r = c.post("/admin/accounts", data={"csrf_token": token, "email": "x@example.org",
                                        "name": "X", "role": "admin", "password": h.PASSWORD})
    assert r.status_code == 403
    assert accounts.get_account_by_email("x@example.org", settings=settings) is None


def test_admin_creates_a_reviewer_and_disables_an_account(settings, people):
    c = h.client(settings)
    h.sign_in(c, "admin@example.org")
    token = h.csrf_of(c.get("/admin/accounts").text)
    bad = c.post("/admin/accounts", data={"csrf_token": token, "email": "new@example.org",
                                          "name": "New", "role": "reviewer", "password": "short"})
    assert bad.status_code == 400 and "at least 12 characters" in bad.text
    no_rh = c.post("/admin/accounts", data={"csrf_token": token, "email": "new@example.org",
                                            "name": "New", "role": "rights_holder",
                                            "password": h.PASSWORD})
    assert no_rh.status_code == 400
    r = c.post("/admin/accounts", data={"csrf_token": token, "email": "new@example.org",
                                        "name": "New", "role": "reviewer",
                                        "password": h.PASSWORD})
    assert r.status_code == 303
    made = accounts.get_account_by_email("new@example.org", settings=settings)
    assert made["role"] == "reviewer"

    # The rights holder is signed in elsewhere; disabling ends that session at once.
    other = h.client(settings)
    h.sign_in(other, "rights_holder@example.org")
    assert other.get("/portal").status_code == 200
    r = c.post(f"/admin/accounts/{people['rights_holder']['id']}/disable",
               data={"csrf_token": token})
    assert r.status_code == 303
    assert other.get("/portal").status_code == 303
    assert h.sign_in(other, "rights_holder@example.org").status_code == 400
    # An admin cannot lock themselves out.
    me = c.post(f"/admin/accounts/{people['admin']['id']}/disable", data={"csrf_token": token})
    assert me.status_code == 400 and "your own account" in me.text


def test_forms_without_a_valid_csrf_token_are_refused(settings, people):
    c = h.client(settings)
    c.get("/signup")
    fields = {"email": "new@example.org", "name": "New Person", "password": h.PASSWORD,
              "password2": h.PASSWORD}
    for token in (None, "", "forged-token"):
        data = dict(fields) if token is None else {**fields, "csrf_token": token}
        r = c.post("/signup", data=data)
        assert r.status_code == 403
        assert "This form has expired" in r.text
    assert accounts.get_account_by_email("new@example.org", settings=settings) is None
    # A token from another visitor's session does not work either.
    other = h.client(settings)
    stolen = h.csrf_of(other.get("/signup").text)
    assert c.post("/signup", data={**fields, "csrf_token": stolen}).status_code == 403
    # Signing in is a form too.
    r = c.post("/signin", data={"email": "reviewer@example.org", "password": h.PASSWORD})
    assert r.status_code == 403
    # With this session's own token it works.
    ok = c.post("/signup", data={**fields, "csrf_token": h.csrf_of(c.get("/signup").text)})
    assert ok.status_code == 303 and ok.headers["location"] == "/signin"
    assert accounts.get_account_by_email("new@example.org", settings=settings) is not None


def test_signed_in_forms_need_the_token_too(settings, people):
    c = h.client(settings)
    h.sign_in(c, "admin@example.org")
    r = c.post(f"/admin/accounts/{people['reviewer']['id']}/disable", data={})
    assert r.status_code == 403 and "expired" in r.text
    assert accounts.get_account(str(people["reviewer"]["id"]), settings=settings)[
        "disabled_at"] is None
    # Signing out (a POST) needs it as well, so another site cannot sign people out.
    assert c.post("/signout", data={}).status_code == 403
    assert c.get("/admin/accounts").status_code == 200


def test_sign_in_is_rate_limited(settings, people):
    limited = settings.model_copy(update={"signin_max_failures": 3})
    c = h.client(limited)
    for _ in range(3):
        r = h.sign_in(c, "reviewer@example.org", "wrong password here")
        assert r.status_code == 400 and "do not match" in r.text
    r = h.sign_in(c, "reviewer@example.org")  # even the right password now waits
    assert r.status_code == 429
    assert "Too many failed attempts" in r.text and "please wait" in r.text
    assert c.get("/review").status_code == 303
    # Another email from the same address is counted apart (up to the per-address limit).
    assert h.sign_in(c, "admin@example.org").status_code == 303


def test_sign_in_limit_is_shared_through_redis_when_the_broker_is_redis(settings, people):
    import uuid

    from tests.conftest import REDIS_URL

    email = f"{uuid.uuid4().hex[:8]}@example.org"  # counts in Redis outlive a test
    accounts.create_account(email, h.PASSWORD, "Shared", "reviewer", settings=settings)
    redis_settings = settings.model_copy(update={"broker_url": REDIS_URL,
                                                 "signin_max_failures": 2})
    first, second = h.client(redis_settings), h.client(redis_settings)  # two app processes
    assert h.sign_in(first, email, "wrong password here").status_code == 400
    assert h.sign_in(second, email, "wrong password here").status_code == 400
    assert h.sign_in(first, email).status_code == 429


def test_sign_in_errors_say_nothing_about_which_part_was_wrong(settings, people):
    c = h.client(settings)
    unknown = h.sign_in(c, "nobody@example.org")
    wrong = h.sign_in(c, "reviewer@example.org", "not the password at all")
    assert unknown.status_code == wrong.status_code == 400
    assert "do not match an active account" in unknown.text
    assert "do not match an active account" in wrong.text


def test_sign_in_sends_back_only_to_this_site(settings, people):
    c = h.client(settings)
    token = h.csrf_of(c.get("/signin?next=//evil.example/x").text)
    r = c.post("/signin", data={"email": "reviewer@example.org", "password": h.PASSWORD,
                                "csrf_token": token, "next": "//evil.example/x"})
    assert r.headers["location"] == "/review"
    c2 = h.client(settings)
    back = c2.get("/review?state=triaged").headers["location"]
    assert back == "/signin?next=/review%3Fstate%3Dtriaged"
    token = h.csrf_of(c2.get("/signin").text)
    r = c2.post("/signin", data={"email": "reviewer@example.org", "password": h.PASSWORD,
                                 "csrf_token": token, "next": "/review?state=triaged"})
    assert r.headers["location"] == "/review?state=triaged"


def test_sign_out_and_sign_out_everywhere(settings, people):
    laptop, phone = h.client(settings), h.client(settings)
    h.sign_in(laptop, "reviewer@example.org")
    h.sign_in(phone, "reviewer@example.org")
    old_cookie = laptop.cookies.get("clipgate_session")
    token = h.csrf_of(laptop.get("/review").text)
    assert laptop.post("/signout", data={"csrf_token": token}).status_code == 303
    assert laptop.get("/review").status_code == 303
    assert phone.get("/review").status_code == 200  # plain sign-out ends this session only
    # A copy of the signed-out cookie is still signed, but its session ended on the server.
    early = h.client(settings)
    early.cookies.set("clipgate_session", old_cookie)
    assert early.get("/review").status_code == 303
    # A copy of a live session works until "sign out everywhere" ends every session at once.
    old_cookie = phone.cookies.get("clipgate_session")
    copy = h.client(settings)
    copy.cookies.set("clipgate_session", old_cookie)
    assert copy.get("/review").status_code == 200
    token = h.csrf_of(phone.get("/review").text)
    assert phone.post("/signout-everywhere", data={"csrf_token": token}).status_code == 303
    assert phone.get("/review").status_code == 303
    replay = h.client(settings)
    replay.cookies.set("clipgate_session", old_cookie)
    assert replay.get("/review").status_code == 303
    h.sign_in(laptop, "reviewer@example.org")  # a new sign-in works, with the new epoch
    assert laptop.get("/review").status_code == 200


def test_signup_errors_are_in_plain_words(settings, people):
    c = h.client(settings)
    token = h.csrf_of(c.get("/signup").text)
    base = {"csrf_token": token, "name": "Ana", "email": "ana@example.org",
            "password": h.PASSWORD, "password2": h.PASSWORD}
    r = c.post("/signup", data={**base, "password2": "something else entirely"})
    assert r.status_code == 400 and "not the same" in r.text
    r = c.post("/signup", data={**base, "password": "short", "password2": "short"})
    assert r.status_code == 400 and "at least 12 characters" in r.text
    assert 'value="Ana"' in r.text  # what was typed is kept
    assert len(accounts.list_accounts(settings=settings)) == 3


def _signup(c, email: str, password: str = h.PASSWORD):
    token = h.csrf_of(c.get("/signup").text)
    r = c.post("/signup", data={"csrf_token": token, "name": "Ana", "email": email,
                                "password": password, "password2": password})
    return r, c.get(r.headers["location"]).text if r.status_code == 303 else r.text


def test_signup_answers_the_same_whether_or_not_the_email_exists(settings, people):
    new, taken = h.client(settings), h.client(settings)
    r_new, page_new = _signup(new, "fresh@example.org")
    r_taken, page_taken = _signup(taken, "rights_holder@example.org")
    assert r_new.status_code == r_taken.status_code == 303
    assert r_new.headers["location"] == r_taken.headers["location"] == "/signin"
    strip = lambda html: re.sub(r'name="csrf_token" value="[^"]+"', "", html)  # noqa: E731
    assert strip(page_new) == strip(page_taken)
    assert "If this email had no account yet" in page_new
    # The taken account is unchanged: its own password still signs in, the new one does not.
    assert h.sign_in(h.client(settings), "rights_holder@example.org").status_code == 303
    assert h.sign_in(h.client(settings), "fresh@example.org").status_code == 303
    # Bad input is refused the same way for both.
    weak_new = _signup(h.client(settings), "fresh2@example.org", "password1234")[0]
    weak_taken = _signup(h.client(settings), "reviewer@example.org", "password1234")[0]
    assert weak_new.status_code == weak_taken.status_code == 400
    assert "too easy to guess" in weak_new.text and "too easy to guess" in weak_taken.text


def test_signup_is_rate_limited_per_address(settings):
    limited = settings.model_copy(update={"signup_max_per_address": 2})
    c = h.client(limited)
    assert _signup(c, "one@example.org")[0].status_code == 303
    assert _signup(c, "two@example.org")[0].status_code == 303
    r, _ = _signup(c, "three@example.org")
    assert r.status_code == 429 and "Too many sign-ups" in r.text
    assert accounts.get_account_by_email("three@example.org", settings=settings) is None


# --- claims: who may see them, and stale forms ----------------------------------------------------

@pytest.fixture
def claim(settings, tmp_path, people):
    """A real claim by people["rights_holder"]: a released clip and the photo it copies."""
    release, _, work_file = h.released_clip(settings, tmp_path / "media")
    work = h.register_work(settings, people["rights_holder"], work_file, "Astronaut")
    return h.file_claim(settings, people["rights_holder"], str(release["id"]), str(work["id"]))


def test_another_rights_holders_claim_is_not_found(settings, people, claim):
    owner = h.client(settings)
    h.sign_in(owner, "rights_holder@example.org")
    mine = owner.get(f"/portal/claims/{claim['id']}")
    assert mine.status_code == 200 and f"Claim {claim['number']}" in mine.text

    h.account(settings, "rights_holder", "other@example.org")
    other = h.client(settings)
    h.sign_in(other, "other@example.org")
    for path in (f"/portal/claims/{claim['id']}", f"/claims/{claim['id']}/media/clip?t=0",
                 "/portal/claims/not-a-uuid"):
        r = other.get(path)
        assert r.status_code == 404, path
        assert "Astronaut" not in r.text
    token = h.csrf_of(other.get("/portal").text)
    r = other.post(f"/portal/claims/{claim['id']}/answer",
                   data={"csrf_token": token, "revision": str(claim["revision"]),
                         "message": "let me in"})
    assert r.status_code == 404
    assert f"Claim {claim['number']}" not in other.get("/portal").text
    # Staff open it from the queue; a rights holder's own claim page is not the review page.
    rev = h.client(settings)
    h.sign_in(rev, "reviewer@example.org")
    assert rev.get(f"/review/claims/{claim['id']}").status_code == 200
    assert owner.get(f"/review/claims/{claim['id']}").status_code == 403


def test_evidence_images_come_from_the_claims_media(settings, people, claim):
    rev = h.client(settings)
    h.sign_in(rev, "reviewer@example.org")
    page = rev.get(f"/review/claims/{claim['id']}").text
    import re

    srcs = re.findall(r'<img src="([^"]+)"', page)
    assert srcs, "the claim page shows no evidence frames"
    for src in srcs[:2]:
        r = rev.get(src.replace("&amp;", "&"))
        assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
        assert r.content[:2] == b"\xff\xd8"
    assert rev.get(f"/claims/{claim['id']}/media/other").status_code == 404


def test_a_stale_decision_form_is_refused_with_a_reason(settings, people, claim):
    rev = h.client(settings)
    h.sign_in(rev, "reviewer@example.org")
    page = rev.get(f"/review/claims/{claim['id']}").text
    token = h.csrf_of(page)
    import re

    revision = re.search(r'name="revision" value="(\d+)"', page).group(1)
    # Deciding before the claim is in review is refused in words.
    r = rev.post(f"/review/claims/{claim['id']}/decide",
                 data={"csrf_token": token, "revision": revision, "outcome": "reject",
                       "reason": "not a copy"})
    assert r.status_code == 409
    r = rev.post(f"/review/claims/{claim['id']}/assign",
                 data={"csrf_token": token, "revision": revision})
    assert r.status_code == 303
    # The form drawn before the assignment carries the old revision.
    r = rev.post(f"/review/claims/{claim['id']}/decide",
                 data={"csrf_token": token, "revision": revision, "outcome": "reject",
                       "reason": "not a copy"})
    assert r.status_code == 409 and "changed since you opened it" in r.text
    assert 'value="reject"' in r.text
    page = rev.get(f"/review/claims/{claim['id']}").text
    assert "In review" in page
    fresh = re.search(r'name="revision" value="(\d+)"', page).group(1)
    r = rev.post(f"/review/claims/{claim['id']}/decide",
                 data={"csrf_token": token, "revision": fresh, "outcome": "reject", "reason": ""})
    assert r.status_code == 400 and "reason" in r.text.lower()
    r = rev.post(f"/review/claims/{claim['id']}/decide",
                 data={"csrf_token": token, "revision": fresh, "outcome": "request_info",
                       "reason": "Please send the date you published the portrait."})
    assert r.status_code == 303

    # The claimant sees the question and answers it; a replayed old answer form is refused.
    owner = h.client(settings)
    h.sign_in(owner, "rights_holder@example.org")
    page = owner.get(f"/portal/claims/{claim['id']}").text
    assert "More information needed" in page and "date you published" in page
    revision = re.search(r'name="revision" value="(\d+)"', page).group(1)
    token = h.csrf_of(page)
    r = owner.post(f"/portal/claims/{claim['id']}/answer",
                   data={"csrf_token": token, "revision": revision, "message": "March 2019."})
    assert r.status_code == 303
    r = owner.post(f"/portal/claims/{claim['id']}/answer",
                   data={"csrf_token": token, "revision": revision, "message": "again"})
    assert r.status_code == 409
    assert "In review" in owner.get(f"/portal/claims/{claim['id']}").text


# --- uploads: the stale form, the oversized file, the file that is not media --------------------

def test_upload_forms_refuse_bad_files_in_words(settings, people, tmp_path):
    import re

    from tests.media import photo, write_image

    import index

    small = settings.model_copy(update={"max_upload_bytes": 50_000})
    c = h.client(small)
    h.sign_in(c, "rights_holder@example.org")
    token = h.csrf_of(c.get("/portal/works").text)
    text = tmp_path / "notes.png"
    text.write_text("these are my notes, not a picture")
    big = write_image(tmp_path / "big.png", photo("astronaut", (900, 600)))  # over 50 KB
    assert big.stat().st_size > 50_000
    huge = tmp_path / "huge.png"
    huge.write_bytes(b"\0" * (2 << 20))  # over the limit and the form's slack

    def post(path, data, files):
        return c.post(path, data=data, files=files)

    # No CSRF token on a multipart form: refused before anything is stored.
    r = post("/portal/works", {"title": "x"}, {"file": ("a.png", big.read_bytes(), "image/png")})
    assert r.status_code == 403 and "expired" in r.text
    r = post("/portal/works", {"title": "Notes", "csrf_token": token},
             {"file": ("notes.png", text.read_bytes(), "image/png")})
    alert = re.search(r'role="alert"[^>]*>([^<]*)', r.text).group(1)
    assert r.status_code == 400 and "notes.png" in alert and "not" in alert, alert
    r = post("/portal/works", {"title": "Big", "csrf_token": token},
             {"file": ("big.png", big.read_bytes(), "image/png")})
    assert r.status_code == 413 and "over the limit" in r.text and 'value="Big"' in r.text
    r = post("/portal/works", {"title": "Huge", "csrf_token": token},
             {"file": ("huge.png", huge.read_bytes(), "image/png")})
    assert r.status_code == 413 and "The file is too large" in r.text and "48 KB" in r.text
    r = post("/portal/works", {"title": "", "csrf_token": token}, {})
    assert r.status_code == 400 and "choose the image or video" in r.text
    assert index.list_works(settings=settings) == []
    assert [p for p in small.uploads_dir.rglob("*") if p.is_file()] == []  # nothing left behind


def test_pages_carry_security_headers(settings, people):
    c = h.client(settings)
    r = c.get("/signin")
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["cache-control"] == "no-store"


def test_queue_filters_and_sorts(settings, people, claim):
    import re

    rev = h.client(settings)
    h.sign_in(rev, "reviewer@example.org")

    def listed(query: str) -> list[str]:
        r = rev.get(f"/review?{query}")
        assert r.status_code == 200
        return re.findall(r'href="/review/claims/([0-9a-f-]+)"', r.text)

    state = claim["state"] if claim["state"] != "submitted" else "triaged"
    assert listed(f"state={state}") == [claim["id"]]
    assert listed("state=upheld") == []
    assert listed("owner=none") == [claim["id"]]
    assert listed("owner=me") == []
    for sort in ("age", "priority", "score", "created"):
        for order in ("", "asc", "desc"):
            assert listed(f"sort={sort}&order={order}") == [claim["id"]]
    assert listed("state=nonsense&sort=nonsense&owner=nonsense") == [claim["id"]]  # ignored
    page = rev.get(f"/review/claims/{claim['id']}").text
    revision = re.search(r'name="revision" value="(\d+)"', page).group(1)
    rev.post(f"/review/claims/{claim['id']}/assign",
             data={"csrf_token": h.csrf_of(page), "revision": revision})
    assert listed("owner=me") == [claim["id"]]
    assert listed("owner=none") == []
    assert listed("state=in_review") == [claim["id"]]


def test_account_page_sets_the_webhook(settings, people):
    c = h.client(settings)
    assert c.get("/account").status_code == 303  # signed in only
    h.sign_in(c, "rights_holder@example.org")
    token = h.csrf_of(c.get("/account").text)
    r = c.post("/account/webhook", data={"csrf_token": token, "webhook_url": "ftp://x"})
    assert r.status_code == 400 and "http" in r.text and 'value="ftp://x"' in r.text
    assert c.post("/account/webhook", data={"webhook_url": "https://a.example.org/h"}
                  ).status_code == 403  # no token
    r = c.post("/account/webhook", data={"csrf_token": token,
                                         "webhook_url": "https://hooks.example.org/claims"})
    assert r.status_code == 303
    rh = accounts.get_account(str(people["rights_holder"]["id"]), settings=settings)
    assert rh["webhook_url"] == "https://hooks.example.org/claims"
    assert "https://hooks.example.org/claims" in c.get("/account").text
    # Staff have the page (to sign out everywhere), not the webhook form.
    s = h.client(settings)
    h.sign_in(s, "reviewer@example.org")
    page = s.get("/account").text
    assert "Sign out everywhere" in page and "webhook_url" not in page


def test_claimant_escalates_a_counter_notice_from_the_claim_page(settings, people, claim):
    import re

    import complaints
    from clipgate import apikeys
    from complaints.actors import actor_for_account, actor_for_key

    staff = actor_for_account(people["reviewer"])
    current = complaints.get_claim(staff, claim["id"], settings=settings)
    current = complaints.assign_claim(staff, claim["id"], revision=current["revision"],
                                      assignee_id=str(people["reviewer"]["id"]),
                                      settings=settings)
    complaints.decide_claim(staff, claim["id"], revision=current["revision"], outcome="uphold",
                            reason="a copy", actions=["takedown"], settings=settings)
    key, _ = apikeys.create_key("generator", "generator", settings)
    counter = complaints.file_counter_notice(
        actor_for_key(key), release_id=claim["release"]["release_id"], claim_id=claim["id"],
        statement="The clip was made independently.", contact="ops@generator.example.org",
        settings=settings)

    owner = h.client(settings)
    h.sign_in(owner, "rights_holder@example.org")
    page = owner.get(f"/portal/claims/{claim['id']}").text
    assert "made independently" in page and "will be put back" in page
    token = h.csrf_of(page)
    url = f"/portal/claims/{claim['id']}/counter-notices/{counter['id']}/escalate"
    assert owner.post(url, data={"csrf_token": token, "reason": ""}).status_code == 400
    # Another rights holder cannot escalate it, nor see it.
    h.account(settings, "rights_holder", "other@example.org")
    other = h.client(settings)
    h.sign_in(other, "other@example.org")
    r = other.post(url, data={"csrf_token": h.csrf_of(other.get("/portal").text),
                              "reason": "mine"})
    assert r.status_code == 404
    r = owner.post(url, data={"csrf_token": token, "reason": "We are going to court."})
    assert r.status_code == 303
    page = owner.get(f"/portal/claims/{claim['id']}").text
    assert "You escalated it" in page and not re.search(r"counter-notices/[^\"]+/escalate", page)
    r = owner.post(url, data={"csrf_token": token, "reason": "again"})
    assert r.status_code == 409 and "already escalated" in r.text

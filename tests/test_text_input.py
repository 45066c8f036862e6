"""Hostile text at the edge (issue 15): a NUL or another control character in any field, and
over-long values, are refused with 400 or 422 and a message, never a 500 (PostgreSQL refuses NUL
in text), and nothing is written."""

from __future__ import annotations

import html

import psycopg
import pytest
from fastapi.testclient import TestClient

from clipgate import apikeys, text
from clipgate.app import create_app
from clipgate.errors import BadInput
from tests.complaints import web_helpers as h
from tests.media import noise_frame, write_image


def _refused(r, *words: str) -> None:
    assert r.status_code in (400, 422), (r.status_code, r.text[:300])
    if r.headers["content-type"].startswith("text/html"):  # a page's form: a page in words
        detail = html.unescape(r.text)
        assert "<h1>" in r.text and "That could not be accepted" in r.text, r.text[:300]
    else:
        detail = r.json()["detail"]
    assert "control character" in detail or "characters" in detail, detail
    for w in words:
        assert w in detail, detail


def _count(settings, table: str) -> int:
    with psycopg.connect(settings.database_url) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


@pytest.fixture
def api(settings):
    key = apikeys.create_key("operator", role="admin", settings=settings)[1]
    with TestClient(create_app(settings), headers={"X-API-Key": key}) as c:
        yield c


def test_signin_and_signup_refuse_nul_before_sign_in(settings):
    c = h.client(settings)
    token = h.csrf_of(c.get("/signin").text)
    r = c.post("/signin", data={"email": "a\x00b@example.org", "password": "x" * 12,
                                "csrf_token": token})
    _refused(r, "email", "U+0000")
    assert r.headers["content-type"].startswith("text/html")  # a page's form gets a page back
    token = h.csrf_of(c.get("/signup").text)
    r = c.post("/signup", data={"email": "ana@example.org", "name": "An\x00a",
                                "password": h.PASSWORD, "password2": h.PASSWORD,
                                "csrf_token": token})
    _refused(r, "name")
    assert _count(settings, "accounts") == 0


def test_account_webhook_refuses_nul(settings):
    h.account(settings, "rights_holder", "rh@example.org")
    c = h.client(settings)
    h.sign_in(c, "rh@example.org")
    token = h.csrf_of(c.get("/account").text)
    r = c.post("/account/webhook", data={"webhook_url": "https://example.org/\x00hook",
                                         "csrf_token": token})
    _refused(r, "webhook_url")


def test_generation_tenant_and_idempotency_key_refuse_nul(api):
    body = {"prompt": "a red kite over hills", "tenant": "ac\x00me", "user": "u1"}
    _refused(api.post("/v1/generations", json=body), "tenant")
    body = {**body, "tenant": "acme", "idempotency_key": "k\x00"}
    _refused(api.post("/v1/generations", json=body), "idempotency_key")


def test_usage_tenant_and_credits_refuse_nul(settings, api):
    _refused(api.get("/v1/usage?tenant=a%00b"), "tenant")
    _refused(api.post("/v1/tenants/%00/credits", json={"gpu_seconds": 5}), "path")
    assert api.post("/v1/tenants", json={"name": "acme"}).status_code == 201
    _refused(api.post("/v1/tenants/acme/credits", json={"gpu_seconds": 5, "note": "n\x00"}),
             "note")
    # C1 controls and DEL are control characters too.
    _refused(api.post("/v1/tenants/acme/credits", json={"gpu_seconds": 5, "note": "n\x85"}))


def test_key_names_refuse_nul_and_are_capped(settings, api):
    before = _count(settings, "api_keys")
    _refused(api.post("/v1/keys", json={"name": "a\u0000b"}), "name")
    _refused(api.post("/v1/keys", json={"name": "k" * 100_000}))
    r = api.post("/v1/keys", json={"name": "k" * (text.NAME_MAX + 1)})
    _refused(r, "name")
    assert _count(settings, "api_keys") == before
    assert api.post("/v1/keys", json={"name": "k" * text.NAME_MAX}).status_code == 201
    # A JSON key with a NUL is refused as well.
    _refused(api.post("/v1/keys", json={"name": "ok", "\x00": 1}))


def test_work_title_and_upload_file_name_refuse_nul(settings, api, tmp_path):
    png = write_image(tmp_path / "w.png", noise_frame(3, (200, 160)))
    files = {"file": ("w.png", png.read_bytes(), "image/png")}
    r = api.post("/v1/works", files=files,
                 data={"owner": "Studio", "title": "Ti\x00tle", "policy": "block"})
    _refused(r, "title")
    r = api.post("/v1/works", files=files,
                 data={"owner": "Studio", "title": "t" * (text.TITLE_MAX + 1), "policy": "block"})
    _refused(r, "title")
    # Built by hand: httpx would percent-encode the NUL in the file name.
    body = (b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\x00b.png\"\r\n"
            b"Content-Type: image/png\r\n\r\n" + png.read_bytes() + b"\r\n--XyZ--\r\n")
    r = api.post("/v1/checks", content=body,
                 headers={"Content-Type": "multipart/form-data; boundary=XyZ"})
    _refused(r, "file name")
    assert _count(settings, "works") == 0
    assert _count(settings, "checks") == 0


def test_newlines_stay_allowed_in_long_text_but_not_in_names():
    assert text.problem("line one\nline two\ttabbed") is None
    assert text.problem("line one\nline two", one_line=True) is not None
    assert text.problem("x" * (text.ANY_MAX + 1)) is not None
    with pytest.raises(BadInput, match="email"):
        text.one_line("a\rb", "email", 320)

"""Webhook notices are signed (Standard Webhooks) with the account's own secret, which the account
page shows and replaces; a receiver checks them with the `standardwebhooks` library itself."""

from __future__ import annotations

import base64
import datetime as dt
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from psycopg.types.json import Jsonb
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from clipgate import db
from complaints import notify, webhook_signing
from tests.complaints import web_helpers as h
from tests.complaints.conftest import free_port


@pytest.fixture
def settings(settings):
    return settings.model_copy(update={"webhook_allow_private": True, "notify_retry_s": 0.0})


@pytest.fixture
def receiver():
    """A local HTTP server that keeps each request's raw body and headers; fails the first
    `fail` with 500."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"body": raw, "headers": dict(self.headers.items())})
            self.send_response(500 if len(received) <= server.fail else 204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    server.fail, server.received = 0, received
    server.url = f"http://127.0.0.1:{server.server_port}/hook"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _notice(settings, account, target) -> int:
    with db.connection(settings) as conn:
        return conn.execute(
            "INSERT INTO notifications (account_id, channel, target, subject, body) "
            "VALUES (%s, 'webhook', %s, 'Claim 4 was upheld', %s) RETURNING id",
            (account["id"], target, Jsonb({"event": "claim.upheld", "text": "Upheld.",
                                           "claim": {"id": "c-4", "number": 4, "state": "upheld"}})),
        ).fetchone()["id"]


def _secret_on_page(client) -> str:
    html = client.get("/account").text
    start = html.index('id="webhook_secret"')
    return html[html.index('value="', start) + 7:].split('"', 1)[0]


def test_a_received_notice_verifies_with_the_secret_on_the_account_page(settings, receiver):
    holder = h.account(settings, "rights_holder", "ana@example.org")
    c = h.client(settings)
    h.sign_in(c, "ana@example.org")
    secret = _secret_on_page(c)
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32
    notice = _notice(settings, holder, receiver.url)
    assert notify.send_due(settings)["sent"] == 1

    (got,) = receiver.received
    payload = Webhook(secret).verify(got["body"], got["headers"])
    assert payload["event"] == "claim.upheld" and payload["claim"]["number"] == 4
    assert got["headers"]["webhook-id"] == f"notice_{notice}"
    assert got["headers"]["Content-Type"] == "application/json"
    # Any change to the body, another secret, or an old timestamp is refused.
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(got["body"].replace(b"upheld", b"rejected"), got["headers"])
    other = "whsec_" + base64.b64encode(b"x" * 32).decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(got["body"], got["headers"])
    with pytest.raises(WebhookVerificationError, match="too old"):
        Webhook(secret).verify(got["body"], {**got["headers"], "webhook-timestamp": str(
            int((dt.datetime.now(dt.UTC) - dt.timedelta(minutes=10)).timestamp()))})


def test_a_retry_keeps_the_id_and_is_signed_afresh(settings, receiver):
    holder = h.account(settings, "rights_holder", "ana@example.org")
    receiver.fail = 1
    _notice(settings, holder, receiver.url)
    assert notify.send_due(settings)["retry"] == 1
    assert notify.send_due(settings)["sent"] == 1
    first, second = receiver.received
    assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"]
    secret = webhook_signing.secret_for(str(holder["id"]), settings=settings)
    for got in (first, second):
        Webhook(secret).verify(got["body"], got["headers"])


def test_each_account_has_its_own_secret_and_can_replace_it(settings, receiver):
    ana = h.account(settings, "rights_holder", "ana@example.org")
    bo = h.account(settings, "rights_holder", "bo@example.org")
    old = webhook_signing.secret_for(str(ana["id"]), settings=settings)
    assert old != webhook_signing.secret_for(str(bo["id"]), settings=settings)

    c = h.client(settings)
    h.sign_in(c, "ana@example.org")
    assert _secret_on_page(c) == old
    html = c.get("/account").text
    r = c.post("/account/webhook-secret", data={"csrf_token": h.csrf_of(html)})
    assert r.status_code == 303
    page = c.get("/account").text
    assert "A new signing secret is in place" in page
    new = _secret_on_page(c)
    assert new != old and new == webhook_signing.secret_for(str(ana["id"]), settings=settings)
    assert c.post("/account/webhook-secret", data={}).status_code == 403  # CSRF token needed

    _notice(settings, ana, receiver.url)
    notify.send_due(settings)
    (got,) = receiver.received
    Webhook(new).verify(got["body"], got["headers"])
    with pytest.raises(WebhookVerificationError):
        Webhook(old).verify(got["body"], got["headers"])
    with db.connection(settings) as conn:
        row = conn.execute("SELECT detail::text AS d FROM audit_log WHERE "
                           "action = 'account.rotate_webhook_secret'").fetchone()
    assert row is not None and old not in row["d"] and new not in row["d"]


def test_staff_pages_show_no_webhook_secret(settings):
    h.account(settings, "reviewer", "rita@example.org")
    c = h.client(settings)
    h.sign_in(c, "rita@example.org")
    assert "webhook_secret" not in c.get("/account").text


@pytest.mark.browser
def test_the_secret_on_the_account_page_in_a_browser(settings, browser_page):
    page = browser_page
    h.account(settings, "rights_holder", "ana@example.org")
    with h.live_server(settings) as base:
        page.goto(f"{base}/signin")
        page.get_by_label("Email").fill("ana@example.org")
        page.get_by_label("Password").fill(h.PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        page.goto(f"{base}/account")
        field = page.get_by_label("Your signing secret")
        old = field.input_value()
        assert old.startswith("whsec_") and field.get_attribute("readonly") is not None
        page.get_by_role("button", name="Replace the secret").click()
        page.wait_for_url("**/account")
        assert "A new signing secret is in place" in page.content()
        assert page.get_by_label("Your signing secret").input_value() not in ("", old)

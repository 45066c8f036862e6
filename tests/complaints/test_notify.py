"""Sending the outbox: email through a real local SMTP server (aiosmtpd), webhooks to a real local
HTTP server; failures are recorded and retried, then given up."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from psycopg.types.json import Jsonb

from clipgate import db
from complaints import notify
from tests.complaints.conftest import free_port, make_account, with_smtp


@pytest.fixture
def settings(settings):
    """These tests post to a local server, which the default refuses (see the SSRF test)."""
    return settings.model_copy(update={"webhook_allow_private": True})


@pytest.fixture
def webhook():
    """A local HTTP server that fails the first `fail` requests with 500, then answers 204."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append({"body": body, "event": self.headers["X-Clipgate-Event"]})
            self.send_response(500 if len(received) <= server.fail else 204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    server.fail = 0
    server.received = received
    server.url = f"http://127.0.0.1:{server.server_port}/hook"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def _outbox(settings, account, channel, target):
    with db.connection(settings) as conn:
        return conn.execute(
            "INSERT INTO notifications (account_id, channel, target, subject, body) "
            "VALUES (%s, %s, %s, 'Claim 3 was upheld', %s) RETURNING id",
            (account["id"], channel, target,
             Jsonb({"event": "claim.upheld", "text": "Your claim was upheld.",
                    "claim": {"id": "c-1", "number": 3, "state": "upheld"}}))).fetchone()["id"]


def _row(settings, nid):
    with db.connection(settings) as conn:
        return conn.execute("SELECT * FROM notifications WHERE id = %s", (nid,)).fetchone()


def test_email_and_webhook_are_sent(settings, smtp_inbox, webhook):
    settings = with_smtp(settings, smtp_inbox)
    acc = make_account(settings, webhook_url=webhook.url)
    mail = _outbox(settings, acc, "email", acc["email"])
    hook = _outbox(settings, acc, "webhook", webhook.url)
    assert notify.send_due(settings) == {"sent": 2, "failed": 0, "retry": 0}
    assert _row(settings, mail)["state"] == _row(settings, hook)["state"] == "sent"
    (msg,) = smtp_inbox.messages
    assert msg["To"] == acc["email"] and msg["From"] == "claims@clipgate.test"
    assert "Your claim was upheld." in msg.get_content()
    assert "http://127.0.0.1:8000/portal/claims/c-1" in msg.get_content()
    (call,) = webhook.received
    assert call["event"] == "claim.upheld" and call["body"]["claim"]["number"] == 3
    assert call["body"]["url"] == "http://127.0.0.1:8000/portal/claims/c-1"
    assert notify.send_due(settings) == {"sent": 0, "failed": 0, "retry": 0}  # sent once


def test_failures_are_retried_after_a_wait_then_given_up(settings, webhook):
    settings = settings.model_copy(update={"notify_retry_s": 0.0, "notify_max_attempts": 3})
    acc = make_account(settings)
    webhook.fail = 1
    hook = _outbox(settings, acc, "webhook", webhook.url)
    assert notify.send_due(settings) == {"sent": 0, "failed": 0, "retry": 1}
    row = _row(settings, hook)
    assert row["state"] == "pending" and row["attempts"] == 1 and "HTTP 500" in row["last_error"]
    assert notify.send_due(settings) == {"sent": 1, "failed": 0, "retry": 0}
    assert _row(settings, hook)["attempts"] == 2 and _row(settings, hook)["state"] == "sent"

    # Nobody listens on this port: each try fails, and the third is the last.
    dead = _outbox(settings, acc, "webhook", f"http://127.0.0.1:{free_port()}/gone")
    off = _outbox(settings, acc, "email", acc["email"])  # no SMTP host: email is off
    for expected in ({"retry": 2}, {"retry": 2}, {"failed": 2}):
        assert {k: v for k, v in notify.send_due(settings).items() if v} == expected
    assert _row(settings, dead)["state"] == "failed" and _row(settings, dead)["attempts"] == 3
    assert "Connect" in _row(settings, dead)["last_error"]
    assert "email is off" in _row(settings, off)["last_error"]


def test_a_retry_waits_for_its_backoff(settings, webhook):
    settings = settings.model_copy(update={"notify_retry_s": 3600.0})
    acc = make_account(settings)
    webhook.fail = 5
    _outbox(settings, acc, "webhook", webhook.url)
    assert notify.send_due(settings)["retry"] == 1
    assert notify.send_due(settings) == {"sent": 0, "failed": 0, "retry": 0}  # not due yet
    assert 3500 < notify.next_due_s(settings) <= 3600
    assert len(webhook.received) == 1


@pytest.mark.parametrize("target", ["http://127.0.0.1:{port}/hook",
                                    "http://169.254.169.254/latest/meta-data/",
                                    "http://[::1]:{port}/hook", "http://2130706433:{port}/hook",
                                    "http://localhost:{port}/hook"])
def test_webhooks_to_private_addresses_are_refused_by_default(settings, webhook, target):
    """By default no webhook reaches a private, loopback or link-local address: refused when it
    is set, and failed at once, unposted, when one is in the outbox anyway."""
    from clipgate.errors import BadInput
    from complaints import accounts

    strict = settings.model_copy(update={"webhook_allow_private": False})
    target = target.format(port=webhook.server_port)
    acc = make_account(strict)
    with pytest.raises(BadInput, match="private, local or reserved"):
        accounts.set_webhook(str(acc["id"]), target, settings=strict)
    with pytest.raises(BadInput, match="http:// or https://"):
        accounts.set_webhook(str(acc["id"]), "file:///etc/passwd", settings=strict)
    hook = _outbox(strict, acc, "webhook", target)
    assert notify.send_due(strict) == {"sent": 0, "failed": 1, "retry": 0}
    row = _row(strict, hook)
    assert row["state"] == "failed" and "private, local or reserved" in row["last_error"]
    assert webhook.received == []
    # A public address is accepted when set (it need not resolve yet).
    ok = accounts.set_webhook(str(acc["id"]), "https://hooks.example.org/x", settings=strict)
    assert ok["webhook_url"] == "https://hooks.example.org/x"


def test_a_rebinding_name_is_posted_to_the_address_that_was_checked(settings, webhook,
                                                                     monkeypatch):
    """DNS rebinding: the name answers one address to the check and another (internal) one to
    every later lookup. The notice goes to the checked address, pinned in the transport; the
    internal server never hears of it. (127.0.0.1 stands for the public address; these settings
    allow private addresses so that a local server can stand for it, and still pin.)"""
    import socket

    port = webhook.server_port
    internal: list[str] = []

    class Internal(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            internal.append(self.path)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    # The same port on another loopback address stands for the operator's internal service.
    inside = ThreadingHTTPServer(("127.0.0.2", port), Internal)
    threading.Thread(target=inside.serve_forever, daemon=True).start()
    real = socket.getaddrinfo
    answers = iter(["127.0.0.1"])  # the first answer; every later one is 127.0.0.2

    def rebinding(host, port_, *args, **kwargs):
        if host == "hooks.rebind.test":
            ip = next(answers, "127.0.0.2")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port_))]
        return real(host, port_, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    try:
        acc = make_account(settings)
        hook = _outbox(settings, acc, "webhook", f"http://hooks.rebind.test:{port}/hook")
        assert notify.send_due(settings) == {"sent": 1, "failed": 0, "retry": 0}
    finally:
        inside.shutdown()
        inside.server_close()
    assert internal == []
    assert len(webhook.received) == 1 and _row(settings, hook)["state"] == "sent"


def test_a_name_that_rebinds_to_loopback_after_the_check_never_reaches_it(settings, webhook,
                                                                          monkeypatch):
    """The attack itself, with the default checks: the name answers a public address to the
    check and 127.0.0.1 to every later lookup. Before the pin, httpx looked the name up again
    and posted to loopback; now it connects to the public address (unreachable here) only."""
    import socket

    strict = settings.model_copy(update={"webhook_allow_private": False, "notify_timeout_s": 1.0})
    real = socket.getaddrinfo
    answers = iter(["93.184.215.14"])  # a public address first, then loopback

    def rebinding(host, port_, *args, **kwargs):
        if host == "hooks.rebind.test":
            ip = next(answers, "127.0.0.1")
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port_))]
        return real(host, port_, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    acc = make_account(strict)
    hook = _outbox(strict, acc, "webhook", f"http://hooks.rebind.test:{webhook.server_port}/h")
    assert notify.send_due(strict) == {"sent": 0, "failed": 0, "retry": 1}
    assert webhook.received == []  # the loopback server never heard of it
    assert _row(strict, hook)["last_error"].startswith(("ConnectError", "ConnectTimeout"))

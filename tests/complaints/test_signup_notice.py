"""A sign-up with an email that has an account: the form answers as for a new email, and the
account's owner is emailed through the notices' outbox (a real local SMTP server), after the
answer was sent."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from clipgate import db
from complaints import accounts
from tests.complaints import web_helpers as h
from tests.complaints.conftest import with_smtp


@pytest.fixture
def owner(settings):
    return h.account(settings, "rights_holder", "owner@example.org")


def _signup(c, email: str) -> httpx.Response:
    token = h.csrf_of(c.get("/signup").text)
    return c.post("/signup", data={"csrf_token": token, "name": "Ana", "email": email,
                                   "password": h.PASSWORD, "password2": h.PASSWORD})


def _notices(settings) -> list[dict]:
    with db.connection(settings) as conn:
        return conn.execute("SELECT * FROM notifications ORDER BY id").fetchall()


def test_the_owner_of_a_taken_email_is_emailed(settings, owner, smtp_inbox):
    settings = with_smtp(settings, smtp_inbox)
    fresh, taken = _signup(h.client(settings), "fresh@example.org"), _signup(
        h.client(settings), "Owner@Example.org ")
    assert fresh.status_code == taken.status_code == 303
    assert fresh.headers["location"] == taken.headers["location"] == "/signin"
    (msg,) = smtp_inbox.messages  # none for the new account
    assert msg["To"] == "owner@example.org"
    assert msg["Subject"] == "Someone tried to sign up with your email address"
    text = msg.get_content()
    assert "You already have an account, so nothing was changed" in text
    assert "If it was you, sign in" in text and "http://127.0.0.1:8000/signin" in text
    (note,) = _notices(settings)
    assert note["state"] == "sent" and note["claim_id"] is None
    assert note["account_id"] == owner["id"] and note["body"]["event"] == "account.signup_tried"
    # Tried again (from anywhere): no second email within the hour, and still the same answer.
    assert _signup(h.client(settings), "owner@example.org").status_code == 303
    assert len(smtp_inbox.messages) == 1 and len(_notices(settings)) == 1


def test_without_email_the_notice_waits_in_the_outbox(settings, owner):
    assert _signup(h.client(settings), "owner@example.org").status_code == 303
    (note,) = _notices(settings)
    assert note["state"] == "pending" and note["target"] == "owner@example.org"
    assert "email is off" in note["last_error"]  # tried once; retried like every notice
    # A disabled account's owner, and an email with no account, are told nothing.
    accounts.disable_account(str(owner["id"]), settings=settings)
    with db.connection(settings) as conn:
        conn.execute("DELETE FROM notifications")
    assert accounts.tell_owner_of_signup("owner@example.org", settings=settings) is False
    assert accounts.tell_owner_of_signup("nobody@example.org", settings=settings) is False
    assert _notices(settings) == []


class _SlowInbox:
    """An SMTP server that takes `delay` seconds to accept each message."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        await asyncio.sleep(self.delay)
        self.messages.append(envelope.content)
        return "250 OK"


def test_the_answer_does_not_wait_for_the_email(settings, owner):
    """Over a real server: the answer for a taken email comes as fast as for a new one, though
    the mail server takes 3 s; the email arrives after it."""
    from aiosmtpd.controller import Controller

    from tests.complaints.conftest import free_port

    inbox = _SlowInbox(3.0)
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        settings = settings.model_copy(update={"smtp_host": "127.0.0.1",
                                               "smtp_port": controller.port})
        with h.live_server(settings) as url:
            timings = {}
            for email in ("fresh@example.org", "owner@example.org"):
                with httpx.Client(base_url=url, follow_redirects=False) as c:
                    token = h.csrf_of(c.get("/signup").text)
                    start = time.perf_counter()
                    r = c.post("/signup", data={"csrf_token": token, "name": "Ana",
                                                "email": email, "password": h.PASSWORD,
                                                "password2": h.PASSWORD})
                    timings[email] = time.perf_counter() - start
                    assert r.status_code == 303, r.text
            assert timings["owner@example.org"] < 2.0, timings
            assert inbox.messages == []  # still being sent
            deadline = time.monotonic() + 15
            while not inbox.messages and time.monotonic() < deadline:
                time.sleep(0.1)
            assert len(inbox.messages) == 1
    finally:
        controller.stop()

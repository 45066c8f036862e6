"""Telling claimants: an outbox of notices, written in the transaction of the decision that
caused them, and sent afterwards by email (SMTP) and to the claimant's webhook.

Sending is a task (`send_due`): each pending notice is tried once per pass; a failure is recorded
(attempts, last_error) and tried again on a later pass after a doubling wait, until
settings.notify_max_attempts, after which the notice is marked failed. With a broker, the Celery
task schedules its own next pass; without one, each decision makes a pass, and
`clipgate notify send` makes one on demand.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import smtplib
from email.message import EmailMessage
from typing import Any

import httpx
import psycopg
from psycopg.types.json import Jsonb

from clipgate import db, metrics, queue
from clipgate.errors import ClipgateError
from clipgate.settings import Settings, get_settings
from complaints import webhook_signing
from complaints.webhook_url import UnsafeWebhook, check_webhook_url, pinned_transport

log = logging.getLogger(__name__)

SEND_NOTIFICATIONS = "clipgate.send_notifications"  # the queue's name for a pass over the outbox
NOTICE_FAILURES = metrics.counter(
    "clipgate_notice_failures", "Failed attempts to send a claimant's notice, by channel (email, "
    "webhook) and outcome (retry: tried again later; failed: given up)", ["channel", "outcome"])


def enqueue(conn: psycopg.Connection, claim: dict[str, Any], *, event: str, subject: str,
            text: str) -> int:
    """Write the claimant's notices for this claim event (email, and webhook if they set one)."""
    account = conn.execute("SELECT id, email, webhook_url FROM accounts WHERE id = %s",
                           (claim["claimant_id"],)).fetchone()
    if account is None:
        return 0
    body = {"event": event, "text": text,
            "claim": {"id": str(claim["id"]), "number": claim["number"], "state": claim["state"]}}
    targets = [("email", account["email"])]
    if account["webhook_url"]:
        targets.append(("webhook", account["webhook_url"]))
    for channel, target in targets:
        conn.execute("INSERT INTO notifications (claim_id, account_id, channel, target, subject, "
                     "body) VALUES (%s, %s, %s, %s, %s, %s)",
                     (claim["id"], account["id"], channel, target, subject, Jsonb(body)))
    return len(targets)


def enqueue_account_email(conn: psycopg.Connection, account: dict[str, Any], *, event: str,
                          subject: str, text: str, path: str) -> int:
    """Write an email notice about the account itself, not a claim (a sign-up tried with its
    address): sent and retried like the claims' notices; `path` is the page its link opens."""
    body = {"event": event, "text": text, "path": path}
    return conn.execute("INSERT INTO notifications (account_id, channel, target, subject, body) "
                        "VALUES (%s, 'email', %s, %s, %s) RETURNING id",
                        (account["id"], account["email"], subject, Jsonb(body))
                        ).fetchone()["id"]


def submit_send(settings: Settings) -> None:
    """Send what is due now: a Celery task with a broker, a pass right here without one. A broker
    that is down leaves the notices in the outbox, never loses them."""
    try:
        queue.submit(SEND_NOTIFICATIONS, [], settings, send_due)
    except ClipgateError as e:
        log.error("notices stay in the outbox for now: %s", e)


def send_due(settings: Settings | None = None) -> dict[str, int]:
    """One pass over the outbox: try every pending notice whose wait is over. Returns counts of
    sent, failed (for good) and retry (still pending)."""
    settings = settings or get_settings()
    counts = {"sent": 0, "failed": 0, "retry": 0}
    while True:
        with db.connection(settings) as conn:
            # One notice at a time, locked while it is sent, so two senders never send it twice.
            note = conn.execute(
                "SELECT * FROM notifications WHERE state = 'pending' AND id > %s "
                "AND created_at + make_interval(secs => %s * (power(2, attempts) - 1)) <= now() "
                "ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED",
                (counts.get("_last", 0), settings.notify_retry_s)).fetchone()
            if note is None:
                break
            counts["_last"] = note["id"]
            outcome = _attempt(conn, note, settings)
        counts[outcome] += 1
    counts.pop("_last", None)
    return counts


def next_due_s(settings: Settings) -> float | None:
    """Seconds until the next pending notice is due (None: nothing pending)."""
    with db.connection(settings) as conn:
        row = conn.execute(
            "SELECT min(extract(epoch FROM created_at + make_interval(secs => %s * "
            "(power(2, attempts) - 1)) - now())) AS s FROM notifications WHERE state = 'pending'",
            (settings.notify_retry_s,)).fetchone()
    return None if row["s"] is None else max(0.0, float(row["s"]))


def _attempt(conn: psycopg.Connection, note: dict[str, Any], settings: Settings) -> str:
    try:
        if note["channel"] == "email":
            _send_email(note, settings)
        else:
            _post_webhook(note, settings)
    except Exception as e:  # every way a send fails is recorded on the notice, not raised
        attempts = note["attempts"] + 1
        # An address clipgate must not post to will not become one by waiting.
        final = attempts >= settings.notify_max_attempts or isinstance(e, UnsafeWebhook)
        conn.execute("UPDATE notifications SET attempts = %s, last_error = %s, state = %s "
                     "WHERE id = %s",
                     (attempts, _describe(e)[:1000], "failed" if final else "pending", note["id"]))
        log.warning("notice %s (%s to %s) attempt %d failed: %s", note["id"], note["channel"],
                    note["target"], attempts, _describe(e))
        outcome = "failed" if final else "retry"
        NOTICE_FAILURES.labels(channel=note["channel"], outcome=outcome).inc()
        return outcome
    conn.execute("UPDATE notifications SET attempts = attempts + 1, state = 'sent', "
                 "sent_at = now(), last_error = NULL WHERE id = %s", (note["id"],))
    return "sent"


class EmailOff(RuntimeError):
    pass


def _send_email(note: dict[str, Any], settings: Settings) -> None:
    if not settings.smtp_host:
        raise EmailOff("email is off (CLIPGATE_SMTP_HOST is not set)")
    msg = EmailMessage()
    msg["From"] = settings.smtp_from
    msg["To"] = note["target"]
    msg["Subject"] = note["subject"]
    msg["Message-ID"] = f"<clipgate-notice-{note['id']}@{settings.smtp_from.split('@')[-1]}>"
    msg.set_content(_email_text(note, settings))
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port,
                      timeout=settings.notify_timeout_s) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_username:
            smtp.login(settings.smtp_username, settings.smtp_password or "")
        smtp.send_message(msg)


def _email_text(note: dict[str, Any], settings: Settings) -> str:
    claim = note["body"].get("claim") or {}
    # The claimant's page of the claim in the portal, or the page an account notice names.
    path = f"/portal/claims/{claim.get('id')}" if claim else note["body"].get("path")
    link = f"{settings.public_base_url.rstrip('/')}{path}" if path else ""
    return f"{note['body']['text']}\n\n{link}\n"


def _post_webhook(note: dict[str, Any], settings: Settings) -> None:
    # Checked again here: a name can resolve elsewhere now than when it was set. The post goes to
    # the address checked, never to a second lookup's answer (DNS rebinding).
    ip = check_webhook_url(note["target"], settings, must_resolve=True)
    claim = note["body"].get("claim") or {}
    url = (f"{settings.public_base_url.rstrip('/')}/portal/claims/{claim['id']}"
           if claim.get("id") else None)
    payload = {"id": note["id"], "subject": note["subject"], "url": url,
               "sent_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), **note["body"]}
    # Signed (Standard Webhooks) over the exact text sent, with the account's own secret.
    body = json.dumps(payload)
    signed = webhook_signing.signed_headers(
        webhook_signing.secret_for(str(note["account_id"]), settings=settings), note["id"], body)
    # Posted to the address the check approved: the name is never looked up again.
    with httpx.Client(transport=pinned_transport(ip), trust_env=False,
                      timeout=settings.notify_timeout_s) as client:
        resp = client.post(note["target"], content=body.encode(),
                           headers={"User-Agent": "clipgate-notify",
                                    "Content-Type": "application/json",
                                    "X-Clipgate-Event": note["body"].get("event", ""), **signed})
    if resp.status_code >= 300:
        raise RuntimeError(f"webhook answered HTTP {resp.status_code}")


def _describe(e: Exception) -> str:
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__

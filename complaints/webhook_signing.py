"""Signed webhook notices (the Standard Webhooks scheme, with its `standardwebhooks` library).

Each account has its own signing secret ("whsec_" and base64; made for it by the database, shown
on its account page, and replaced there at will). A notice posted to the account's webhook
carries:
- webhook-id: the notice's id ("notice_<id>"), the same on every retry, so the receiver can
  drop a notice it already had;
- webhook-timestamp: when this attempt was signed (Unix seconds);
- webhook-signature: "v1," and the base64 HMAC-SHA256 of "<id>.<timestamp>.<body>".
A receiver checks them with any Standard Webhooks library, e.g. in Python
`standardwebhooks.Webhook(secret).verify(body, headers)`, which also refuses a timestamp more
than five minutes old (a replay).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from standardwebhooks import Webhook

from clipgate import db
from clipgate.errors import NotFound
from clipgate.settings import Settings
from complaints import audit
from complaints.actors import actor_for_account

# A fresh secret, as the migration that added the column makes them (see 0010_webhook_secret).
_NEW_SECRET = ("'whsec_' || encode(decode(replace(gen_random_uuid()::text || "
               "gen_random_uuid()::text, '-', ''), 'hex'), 'base64')")


def _key(account_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(account_id))
    except ValueError:
        raise NotFound(f"no account with id {account_id}") from None


def secret_for(account_id: str, *, settings: Settings | None = None) -> str:
    """The account's signing secret (for its own account page, and for signing)."""
    with db.connection(settings) as conn:
        row = conn.execute("SELECT webhook_secret FROM accounts WHERE id = %s",
                           (_key(account_id),)).fetchone()
    if row is None:
        raise NotFound(f"no account with id {account_id}")
    return row["webhook_secret"]


def rotate_secret(account_id: str, *, settings: Settings | None = None) -> str:
    """Replace the account's signing secret (audited, without the secret); returns the new one.
    Notices signed from now on use it, retries of older ones included."""
    with db.connection(settings) as conn:
        row = conn.execute(
            f"UPDATE accounts SET webhook_secret = {_NEW_SECRET} WHERE id = %s "
            "RETURNING id, role, email, webhook_secret", (_key(account_id),)).fetchone()
        if row is None:
            raise NotFound(f"no account with id {account_id}")
        audit.record(conn, actor_for_account(row), "account.rotate_webhook_secret",
                     subject_type="account", subject_id=str(row["id"]),
                     detail={"role": row["role"], "email": row["email"]})
    return row["webhook_secret"]


def signed_headers(secret: str, notice_id: Any, body: str,
                   now: dt.datetime | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers for posting `body` (the exact text sent)."""
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    msg_id = f"notice_{notice_id}"
    return {"webhook-id": msg_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, now, body)}

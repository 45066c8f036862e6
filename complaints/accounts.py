"""Accounts of the people who sign in to the web pages: rights holders, reviewers and admins.

Passwords are hashed with Argon2id (argon2-cffi, its default parameters). The generator service
has API keys only, never an account.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
import uuid
from typing import Any
from urllib.parse import urlsplit

import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from zxcvbn import zxcvbn

from clipgate import db, text
from clipgate.errors import BadInput, Conflict, NotFound
from clipgate.settings import Settings, get_settings
# The audit log and the notices' outbox belong to the claims workflow.
from complaints import actors, audit, notify
from complaints.webhook_url import check_webhook_url

log = logging.getLogger(__name__)

ROLES = ("rights_holder", "reviewer", "admin")
MIN_PASSWORD_LEN = 12
MAX_PASSWORD_LEN = 1024  # hashing a megabyte "password" is a cheap way to burn our CPU
# zxcvbn's score (0-4) a password needs: 3 is "safely unguessable" to an offline attack that
# meets a slow hash (Argon2id). Below that are the passwords on its lists of common and breached
# ones (and their variants: l33t, reversed, with digits added), keyboard runs and repeats.
MIN_PASSWORD_SCORE = 3
_ZXCVBN_MAX = 72  # zxcvbn refuses longer input; the first 72 characters tell enough
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_COLUMNS = ("id, email, name, organisation, role, webhook_url, session_epoch, created_at, "
            "disabled_at")

SIGNUP_TRIED = "account.signup_tried"  # the notice's event: a sign-up with a taken email
# At most one such email per account in this long: a stranger replaying the form (from many
# addresses, past the per-address limit) cannot flood the owner's inbox.
SIGNUP_NOTICE_EVERY_S = 3600

_hasher = PasswordHasher()
# Verified against when the email is unknown, so a miss costs as long as a wrong password.
_DUMMY_HASH = _hasher.hash("not a real password: timing filler")


def normalise_email(email: str) -> str:
    return (email or "").strip().lower()


def validate_password(password: str, user_inputs: tuple[str, ...] = ()) -> None:
    """Raise BadInput, in plain words, when a password is too weak or unusable: too short, or
    easy to guess by zxcvbn's measure (its lists of common and breached passwords, words, names,
    keyboard patterns; user_inputs are the person's own email and name, guessed first too)."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LEN:
        raise BadInput(f"the password must be at least {MIN_PASSWORD_LEN} characters long")
    if len(password) > MAX_PASSWORD_LEN:
        raise BadInput(f"the password must be at most {MAX_PASSWORD_LEN} characters long")
    if not password.strip():
        raise BadInput("the password cannot be only spaces")
    found = zxcvbn(password[:_ZXCVBN_MAX], user_inputs=[u for u in user_inputs if u])
    if found["score"] < MIN_PASSWORD_SCORE:
        why = found["feedback"].get("warning") or "It is easy to guess."
        raise BadInput(f"that password is too easy to guess: {why.rstrip('.')}. Try a few "
                       "unrelated words together, or a password manager's suggestion")


def _validate(email: str, name: str, role: str, webhook_url: str | None,
              settings: Settings | None = None, organisation: str | None = None) -> None:
    text.one_line(email, "email", 320)
    text.one_line(name, "name", text.NAME_MAX)
    text.one_line(organisation or "", "organisation", text.NAME_MAX)
    if not _EMAIL.match(email) or len(email) > 320:
        raise BadInput(f"{email!r} does not look like an email address (name@example.com)")
    if not name or not name.strip():
        raise BadInput("please give a name")
    if len(name) > 200:
        raise BadInput("the name must be at most 200 characters long")
    if role not in ROLES:
        raise BadInput(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if webhook_url is not None:
        _validate_webhook(webhook_url, settings)


def _validate_webhook(url: str, settings: Settings | None = None) -> None:
    text.one_line(url, "the webhook address", 2000)
    if not re.match(r"^https?://[^\s/]+", url) or len(url) > 2000:
        raise BadInput("the webhook address must start with http:// or https://")
    check_webhook_url(url, settings or get_settings(), must_resolve=False)


def _uuid(account_id: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(account_id))
    except ValueError:
        return None


def create_account(
    email: str,
    password: str,
    name: str,
    role: str,
    organisation: str | None = None,
    *,
    webhook_url: str | None = None,
    created_by: Any = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Create an account. Raises BadInput for a bad field and Conflict for an email in use.

    created_by: the complaints Actor who made it (None: the person signed up themselves); the
    creation is written to the audit log in the same transaction."""
    email = normalise_email(email)
    name = (name or "").strip()
    organisation = (organisation or "").strip() or None
    webhook_url = (webhook_url or "").strip() or None
    _validate(email, name, role, webhook_url, settings, organisation)
    validate_password(password, (email, email.split("@")[0], name))
    digest = _hasher.hash(password)
    try:
        with db.connection(settings) as conn:
            row = conn.execute(
                f"INSERT INTO accounts (email, name, organisation, role, password_hash, "
                f"webhook_url) VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
                (email, name, organisation, role, digest, webhook_url),
            ).fetchone()
            _audit(conn, row, "account.create", created_by)
    except psycopg.errors.UniqueViolation:
        existing = get_account_by_email(email, settings=settings)
        raise Conflict(f"an account with the email {email} already exists",
                       existing_id=str(existing["id"]) if existing else None) from None
    log.info("created %s account %s", role, row["id"])
    return row


def _audit(conn: psycopg.Connection, account: dict[str, Any], action: str, actor: Any,
           **extra: Any) -> None:
    """Write the change to the complaints audit log, in the same transaction."""
    who = actor if actor is not None else actors.actor_for_account(account)
    audit.record(conn, who, action, subject_type="account", subject_id=str(account["id"]),
                 detail={"role": account["role"], "email": account["email"], **extra})


def authenticate(email: str, password: str, *, settings: Settings | None = None
                 ) -> dict[str, Any] | None:
    """The active account for this email and password, or None. An unknown email costs as much
    time as a wrong password (a dummy hash is checked), so timing does not tell which it was."""
    email = normalise_email(email)
    if not email or not password or len(password) > MAX_PASSWORD_LEN:
        return None
    with db.connection(settings) as conn:
        row = conn.execute(
            f"SELECT {_COLUMNS}, password_hash FROM accounts WHERE email = %s", (email,)
        ).fetchone()
    digest = row.pop("password_hash") if row else _DUMMY_HASH
    try:
        _hasher.verify(digest, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if row is None or row["disabled_at"] is not None:
        return None
    if _hasher.check_needs_rehash(digest):
        _set_hash(row["id"], _hasher.hash(password), settings)
    return row


def _set_hash(account_id: Any, digest: str, settings: Settings | None) -> None:
    with db.connection(settings) as conn:
        conn.execute("UPDATE accounts SET password_hash = %s WHERE id = %s", (digest, account_id))


def get_account(account_id: str, *, settings: Settings | None = None) -> dict[str, Any] | None:
    """The account (disabled ones too), or None."""
    key = _uuid(account_id)
    if key is None:
        return None
    with db.connection(settings) as conn:
        return conn.execute(f"SELECT {_COLUMNS} FROM accounts WHERE id = %s", (key,)).fetchone()


def get_account_by_email(email: str, *, settings: Settings | None = None) -> dict[str, Any] | None:
    with db.connection(settings) as conn:
        return conn.execute(f"SELECT {_COLUMNS} FROM accounts WHERE email = %s",
                            (normalise_email(email),)).fetchone()


def tell_owner_of_signup(email: str, *, settings: Settings | None = None) -> bool:
    """Someone signed up with the email of an existing account: email its owner (through the
    notices' outbox, so with retries, or kept there while email is off). The sign-up form never
    says the email is taken, so this is how the owner learns of it. Runs after the answer was
    sent (a background task), so the answer takes as long either way. True when a notice was
    written; False for no such active account, or one told within SIGNUP_NOTICE_EVERY_S."""
    settings = settings or get_settings()
    with db.connection(settings) as conn:
        # Locked, so two sign-ups at once write one notice.
        account = conn.execute("SELECT id, email FROM accounts WHERE email = %s "
                               "AND disabled_at IS NULL FOR UPDATE",
                               (normalise_email(email),)).fetchone()
        if account is None:
            return False
        recent = conn.execute(
            "SELECT 1 FROM notifications WHERE account_id = %s AND body->>'event' = %s "
            "AND created_at > now() - make_interval(secs => %s)",
            (account["id"], SIGNUP_TRIED, SIGNUP_NOTICE_EVERY_S)).fetchone()
        if recent is not None:
            return False
        notify.enqueue_account_email(
            conn, account, event=SIGNUP_TRIED, path="/signin",
            subject="Someone tried to sign up with your email address",
            text=f"Someone tried to open a new clipgate account with your email address "
                 f"({account['email']}). You already have an account, so nothing was changed.\n\n"
                 "If it was you, sign in with your existing account's password at the address "
                 "below. If you have forgotten it, ask your clipgate administrator to reset it.\n\n"
                 "If it was not you, you need do nothing: your account and its password are as "
                 "they were.")
    log.info("told account %s of a sign-up with its email", account["id"])
    notify.submit_send(settings)
    return True


def list_accounts(*, role: str | None = None, include_disabled: bool = True,
                  settings: Settings | None = None) -> list[dict[str, Any]]:
    if role is not None and role not in ROLES:
        raise BadInput(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    where, args = ["TRUE"], []
    if role:
        where.append("role = %s")
        args.append(role)
    if not include_disabled:
        where.append("disabled_at IS NULL")
    with db.connection(settings) as conn:
        return conn.execute(
            f"SELECT {_COLUMNS} FROM accounts WHERE {' AND '.join(where)} ORDER BY created_at",
            args,
        ).fetchall()


def _require(account_id: str, settings: Settings | None) -> uuid.UUID:
    key = _uuid(account_id)
    if key is None:
        raise NotFound(f"no account with id {account_id}")
    return key


def disable_account(account_id: str, *, by: Any = None, settings: Settings | None = None
                    ) -> dict[str, Any]:
    """Disable an account: it cannot sign in, and its sessions end (the epoch moves on).
    Disabling a disabled account changes nothing and returns it."""
    key = _require(account_id, settings)
    with db.connection(settings) as conn:
        row = conn.execute(
            f"UPDATE accounts SET disabled_at = now(), session_epoch = session_epoch + 1 "
            f"WHERE id = %s AND disabled_at IS NULL RETURNING {_COLUMNS}", (key,),
        ).fetchone()
        if row is not None:
            _audit(conn, row, "account.disable", by or actors.system("operator"))
            return row
        row = conn.execute(f"SELECT {_COLUMNS} FROM accounts WHERE id = %s", (key,)).fetchone()
    if row is None:
        raise NotFound(f"no account with id {account_id}")
    return row


def end_sessions(account_id: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """Sign out everywhere: every session cookie issued so far stops working."""
    key = _require(account_id, settings)
    with db.connection(settings) as conn:
        row = conn.execute(
            f"UPDATE accounts SET session_epoch = session_epoch + 1 WHERE id = %s "
            f"RETURNING {_COLUMNS}", (key,),
        ).fetchone()
        conn.execute("DELETE FROM web_sessions WHERE account_id = %s", (key,))
        if row is not None:
            _audit(conn, row, "account.end_sessions", None)
    if row is None:
        raise NotFound(f"no account with id {account_id}")
    return row


# --- server-side sessions of the web pages ------------------------------------------------------

def _sid_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(account_id: Any, max_age_s: int, *, settings: Settings | None = None) -> str:
    """A new session of this account; returns its id for the cookie (only its hash is kept)."""
    token = secrets.token_urlsafe(32)
    with db.connection(settings) as conn:
        # Expired sessions of anyone go as new ones come, so the table stays small.
        conn.execute("DELETE FROM web_sessions WHERE expires_at < now()")
        conn.execute("INSERT INTO web_sessions (id_sha256, account_id, expires_at) "
                     "VALUES (%s, %s, now() + make_interval(secs => %s))",
                     (_sid_hash(token), account_id, max_age_s))
    return token


def session_account(token: str, *, settings: Settings | None = None) -> dict[str, Any] | None:
    """The account of a live session (disabled ones too: the caller decides), or None when the
    session ended, expired or never was."""
    if not token or len(token) > 100:
        return None
    with db.connection(settings) as conn:
        return conn.execute(
            f"SELECT {', '.join('a.' + c for c in _COLUMNS.split(', '))} FROM web_sessions s "
            "JOIN accounts a ON a.id = s.account_id WHERE s.id_sha256 = %s AND s.expires_at > now()",
            (_sid_hash(token),)).fetchone()


def end_session(token: str, *, settings: Settings | None = None) -> None:
    """Sign out: this session's cookie stops working at once, wherever it was copied."""
    if token:
        with db.connection(settings) as conn:
            conn.execute("DELETE FROM web_sessions WHERE id_sha256 = %s", (_sid_hash(token),))


def set_webhook(account_id: str, url: str | None, *, settings: Settings | None = None
                ) -> dict[str, Any]:
    """Set (or clear, with None or "") the address that decisions are posted to."""
    url = (url or "").strip() or None
    if url is not None:
        _validate_webhook(url, settings)
    key = _require(account_id, settings)
    with db.connection(settings) as conn:
        row = conn.execute(
            f"UPDATE accounts SET webhook_url = %s WHERE id = %s RETURNING {_COLUMNS}", (url, key)
        ).fetchone()
        if row is not None:
            _audit(conn, row, "account.set_webhook", None,
                   webhook_host=urlsplit(url).hostname if url else None)
    if row is None:
        raise NotFound(f"no account with id {account_id}")
    return row

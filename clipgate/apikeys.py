"""API keys: random tokens shown once, stored only as their sha256.

Keys are 32 random bytes (high entropy, not passwords), so a plain sha256 is enough to store them:
nobody can brute-force the hash back into a key. The first 8 characters are kept for display.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import uuid
from collections.abc import Callable
from typing import Any

import psycopg

from clipgate import db, pages, text
from clipgate.errors import BadInput, NotFound
from clipgate.settings import Settings, get_settings

log = logging.getLogger(__name__)

KEY_PREFIX = "cg_"
# Below this a bootstrap key could be guessed; it still works, but the operator is told.
_MIN_BOOTSTRAP_LEN = 24
ROLES = ("generator", "admin", "rights_holder", "reviewer")
# Keys of these roles act for a person's account (a rights holder's or reviewer's integration).
ACCOUNT_ROLES = ("rights_holder", "reviewer")
_COLUMNS = "id, name, role, prefix, created_at, revoked_at, account_id"


# Accounts belong to the complaints domain; it hands its lookup here (use_accounts) when imported.
AccountLookup = Callable[..., "dict[str, Any] | None"]  # (account_id, *, settings) -> account
_account_lookup: AccountLookup | None = None


def use_accounts(lookup: AccountLookup) -> None:
    """Where keys find the account they act for: (account_id, *, settings) -> the account (id,
    role, disabled_at) or None."""
    global _account_lookup
    _account_lookup = lookup


def _account(account_id: Any, settings: Settings | None) -> dict[str, Any] | None:
    if _account_lookup is None:  # fail closed: no key acts for an account nobody can look up
        raise NotFound(f"no account with id {account_id}: accounts are not available here")
    return _account_lookup(str(account_id), settings=settings)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _validate(name: str, role: str, account_id: str | None) -> None:
    if not name or not name.strip():
        raise BadInput("an API key needs a name")
    text.one_line(name, "the key's name", text.NAME_MAX)
    if role not in ROLES:
        raise BadInput(f"role must be one of {', '.join(ROLES)}, not {role!r}")
    if role in ACCOUNT_ROLES and not account_id:
        raise BadInput(f"a {role} key acts for an account: name the account (its id)")
    if role not in ACCOUNT_ROLES and account_id:
        raise BadInput(f"a {role} key does not act for an account; only "
                       f"{' and '.join(ACCOUNT_ROLES)} keys do")


# Called with the connection and the key's record inside the transaction that changes the key:
# a caller's audit row commits, or rolls back, with the change it records.
OnChange = Callable[[psycopg.Connection, dict[str, Any]], None]


def create_key(
    name: str, role: str = "generator", settings: Settings | None = None, *,
    account_id: str | None = None, on_change: OnChange | None = None,
) -> tuple[dict[str, Any], str]:
    """A new key. Returns (record, plaintext key); the plaintext is not stored anywhere.

    rights_holder and reviewer keys must name the (enabled) account they act for, whose role
    must be the key's role."""
    _validate(name, role, account_id)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return _insert(name.strip(), role, key, settings, account_id, on_change), key


def _insert(name: str, role: str, key: str, settings: Settings | None,
            account_id: str | None, on_change: OnChange | None = None) -> dict[str, Any]:
    account = None
    if account_id:
        try:
            uuid.UUID(str(account_id))
        except ValueError:
            raise NotFound(f"no account with id {account_id}") from None
        account = _account(account_id, settings)
        if account is None:
            raise NotFound(f"no account with id {account_id}")
        if account["disabled_at"] is not None:
            raise BadInput(f"account {account_id} is disabled")
        if account["role"] != role:
            raise BadInput(f"account {account_id} is a {account['role']}, not a {role}")
    with db.connection(settings) as conn:
        record = conn.execute(
            f"INSERT INTO api_keys (name, role, prefix, key_hash, account_id) "
            f"VALUES (%s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
            (name, role, key[:8], hash_key(key), account["id"] if account else None),
        ).fetchone()
        if on_change is not None:
            on_change(conn, record)
        return record


def verify_key(key: str, settings: Settings | None = None) -> dict[str, Any] | None:
    """The active (not revoked) key record for this plaintext key, or None."""
    if not key:
        return None
    digest = hash_key(key)
    with db.connection(settings) as conn:
        # A key that acts for a disabled account stops working with it.
        row = conn.execute(
            f"SELECT {_COLUMNS}, key_hash FROM api_keys WHERE key_hash = %s "
            "AND revoked_at IS NULL", (digest,),
        ).fetchone()
    # The lookup is by hash, so timing reveals nothing about the key; compare anyway, cheaply.
    if row is None or not hmac.compare_digest(row.pop("key_hash"), digest):
        return None
    if row["account_id"] is not None:
        # A key that acts for a disabled account stops working with it (and fails closed where
        # no account can be looked up).
        if _account_lookup is None:
            return None
        account = _account_lookup(str(row["account_id"]), settings=settings)
        if account is not None and account["disabled_at"] is not None:
            return None
    return row


def list_keys(settings: Settings | None = None, *, include_revoked: bool = True) -> list[dict]:
    where = "" if include_revoked else "WHERE revoked_at IS NULL"
    with db.connection(settings) as conn:
        return conn.execute(f"SELECT {_COLUMNS} FROM api_keys {where} ORDER BY created_at").fetchall()


KEYS_ORDER = pages.Order("keys:oldest", (pages.Key("created_at", "ts"), pages.Key("id", "uuid")))


def keys_page(settings: Settings | None = None, *, cursor: str | None = None,
              limit: int | None = None) -> pages.Page[dict[str, Any]]:
    """A page of API keys (revoked ones too), oldest first, with the total."""
    with db.connection(settings) as conn:
        return pages.fetch_page(conn, columns=_COLUMNS, source="api_keys", order=KEYS_ORDER,
                                cursor=cursor, limit=limit)


def revoke_key(key_id: str, settings: Settings | None = None, *,
               on_change: OnChange | None = None) -> dict[str, Any]:
    """Revoke a key by id; it stops working at once. Revoking twice keeps the first time."""
    try:
        kid = uuid.UUID(str(key_id))
    except ValueError:
        raise NotFound(f"no API key with id {key_id}") from None
    with db.connection(settings) as conn:
        row = conn.execute(
            f"UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = %s "
            f"RETURNING {_COLUMNS}",
            (kid,),
        ).fetchone()
        if row is None:
            raise NotFound(f"no API key with id {key_id}")
        if on_change is not None:
            on_change(conn, row)
    return row


def ensure_bootstrap_key(settings: Settings | None = None) -> None:
    """Make CLIPGATE_API_KEY a valid generator key, and CLIPGATE_ADMIN_KEY a valid admin key
    (each stored hashed), where they are set.

    A bootstrap key that was revoked stays revoked: the operator revoked it on purpose.
    """
    settings = settings or get_settings()
    wanted = [("bootstrap", "generator", "CLIPGATE_API_KEY", settings.api_key),
              ("bootstrap-admin", "admin", "CLIPGATE_ADMIN_KEY", settings.admin_key)]
    if settings.api_key and settings.api_key == settings.admin_key:
        # One hash, one role: the generator key would silently be the operator's too.
        log.error("CLIPGATE_ADMIN_KEY is the same as CLIPGATE_API_KEY; the admin key is not "
                  "stored: give the operator a key of their own")
        wanted.pop()
    for name, role, env, key in wanted:
        if not key:
            continue
        if len(key) < _MIN_BOOTSTRAP_LEN:
            log.warning("%s is only %d characters: use a long random key "
                        "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)",
                        env, len(key))
        with db.connection(settings) as conn:
            conn.execute(
                "INSERT INTO api_keys (name, role, prefix, key_hash) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (key_hash) DO NOTHING",
                (name, role, key[:8], hash_key(key)),
            )


def first_start_keys(settings: Settings | None = None) -> list[tuple[str, str]]:
    """Make the keys a first start needs, and return them as (role, key) to be shown once:
    a generator key when none is configured (CLIPGATE_API_KEY) and no key exists, and an admin
    key when none is configured (CLIPGATE_ADMIN_KEY) and no admin key was ever made (one that
    was revoked was revoked on purpose), so that a deployment that sets only the generator's key
    still gets an operator."""
    settings = settings or get_settings()
    existing = list_keys(settings)
    made = []
    if not settings.api_key and not any(k["revoked_at"] is None for k in existing):
        made.append(("generator", create_key("local-generator", "generator", settings)[1]))
    if not settings.admin_key and not any(k["role"] == "admin" for k in existing):
        made.append(("admin", create_key("local-operator", "admin", settings)[1]))
    return made


def public_key(record: dict[str, Any]) -> dict[str, Any]:
    """A key record as the API and CLI show it (never the hash)."""
    return {
        "id": str(record["id"]),
        "name": record["name"],
        "role": record["role"],
        "prefix": record["prefix"],
        "created_at": record["created_at"].isoformat(),
        "revoked_at": record["revoked_at"].isoformat() if record["revoked_at"] else None,
        "account_id": str(record["account_id"]) if record.get("account_id") else None,
    }

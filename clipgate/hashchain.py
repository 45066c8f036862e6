"""A hash chain over rows: each row's hash covers its own fields and the hash of the row before,
so a row edited, removed or inserted afterwards breaks every link from there on.

Pure functions, no database: the audit log (complaints.audit) chains its rows with them, and the
migration that introduced the chain backfilled the old rows with the same code.

row_hash = sha256(prev_hash || canonical(fields)), where canonical is JSON with sorted keys,
ASCII only and no spaces; datetimes as UTC ISO 8601 with microseconds, UUIDs as strings.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

GENESIS = bytes(32)  # the "previous hash" of the first row


def _plain(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot hash a {type(value).__name__} in an audit row")


def canonical(fields: Mapping[str, Any]) -> bytes:
    """The bytes hashed for one row's fields (JSON, sorted keys, ASCII, no spaces)."""
    return json.dumps(dict(fields), sort_keys=True, ensure_ascii=True, separators=(",", ":"),
                      default=_plain, allow_nan=False).encode("ascii")


def link(prev_hash: bytes, fields: Mapping[str, Any]) -> bytes:
    """The hash of a row whose predecessor's hash is prev_hash (32 bytes)."""
    return hashlib.sha256(bytes(prev_hash) + canonical(fields)).digest()


@dataclass(frozen=True)
class Break:
    """The first broken link: the row's id and what is wrong with it."""
    row_id: Any
    reason: str


@dataclass(frozen=True)
class Verdict:
    rows: int  # rows checked (up to and including the first break)
    head: bytes  # the last good hash
    broken: Break | None


def verify(rows: Iterable[tuple[Any, bytes, bytes, Mapping[str, Any]]]) -> Verdict:
    """Walk (id, prev_hash, row_hash, fields) in chain order and stop at the first broken link.

    A row whose prev_hash is not its predecessor's hash: a row before it was removed or added, or
    its stored hashes were rewritten. A row whose hash does not match its fields: it was edited."""
    expected_prev, n = GENESIS, 0
    for row_id, prev_hash, row_hash, fields in rows:
        n += 1
        if prev_hash is None or row_hash is None:
            return Verdict(n, expected_prev, Break(row_id, "the row has no hash"))
        if bytes(prev_hash) != expected_prev:
            return Verdict(n, expected_prev, Break(
                row_id, "its link to the row before does not match: a row before it was "
                "removed or inserted, or the stored hashes were rewritten"))
        if link(prev_hash, fields) != bytes(row_hash):
            return Verdict(n, expected_prev, Break(
                row_id, "its content does not match its hash: the row was edited"))
        expected_prev = bytes(row_hash)
    return Verdict(n, expected_prev, None)

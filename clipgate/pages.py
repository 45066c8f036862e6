"""Cursor pagination that every list shares: a stable order ending in a unique id, an opaque
cursor naming the last row shown, a capped limit, and the total.

Keyset, not OFFSET: a page costs the same at row 10 as at row 1,000,000, and a row added or
removed meanwhile shifts nothing (no row is shown twice). The cursor is base64url JSON of the
order's name and the last row's sort values; clients must treat it as opaque. A cursor from
another list or order, or a damaged one, is refused (BadInput: 400).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import psycopg

from clipgate.errors import BadInput

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
_KINDS = ("ts", "num", "int", "uuid", "text")

T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True)
class Key:
    """One sort key: a SQL expression, its direction and the kind of its value (ts, num, int,
    uuid or text, so the cursor's JSON turns back into the value SQL compares with)."""

    expr: str
    kind: str
    descending: bool = False

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"Key kind must be one of {', '.join(_KINDS)}, not {self.kind!r}")


@dataclass(frozen=True)
class Order:
    """A list's order: its name (carried in the cursor) and keys, the last a unique id."""

    name: str
    keys: tuple[Key, ...]

    def sql(self) -> str:
        # NULLS LAST both ways, so `after` can treat a missing value as the largest.
        return ", ".join(f"{k.expr} {'DESC' if k.descending else 'ASC'} NULLS LAST"
                         for k in self.keys)

    def after(self, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """SQL (and its arguments) true for the rows that come after a row with these values."""
        return _after(self.keys, list(values))


def _after(keys: Sequence[Key], values: list[Any]) -> tuple[str, list[Any]]:
    if not keys:
        return "FALSE", []  # every key equal: the same row, not after it
    key, value = keys[0], values[0]
    rest, rest_args = _after(keys[1:], values[1:])
    if value is None:
        return f"({key.expr} IS NULL AND {rest})", rest_args
    beyond = "<" if key.descending else ">"
    return (f"({key.expr} {beyond} %s OR {key.expr} IS NULL OR ({key.expr} = %s AND {rest}))",
            [value, value, *rest_args])


@dataclass
class Page(Generic[T]):
    """One page of a list: its items, how many the whole list holds, and the cursor of the next
    page (None on the last)."""

    items: list[T]
    total: int
    next_cursor: str | None = None
    limit: int = DEFAULT_LIMIT
    extra: dict[str, Any] = field(default_factory=dict)

    def map(self, fn: Callable[[T], U]) -> Page[U]:
        return Page([fn(i) for i in self.items], self.total, self.next_cursor, self.limit,
                    dict(self.extra))

    def to_dict(self) -> dict[str, Any]:
        return {"items": self.items, "total": self.total, "next_cursor": self.next_cursor,
                "limit": self.limit}


def check_limit(limit: int | str | None) -> int:
    """limit as an int in 1..MAX_LIMIT (DEFAULT_LIMIT when None); BadInput otherwise."""
    if limit is None:
        return DEFAULT_LIMIT
    try:
        n = int(limit)
    except (TypeError, ValueError):
        raise BadInput(f"limit must be a whole number, not {limit!r}") from None
    if not 1 <= n <= MAX_LIMIT:
        raise BadInput(f"limit must be between 1 and {MAX_LIMIT}, not {n}")
    return n


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def encode_cursor(order: Order, values: Sequence[Any]) -> str:
    raw = json.dumps({"o": order.name, "v": [_jsonable(v) for v in values]},
                     separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _bad(why: str) -> BadInput:
    return BadInput(f"bad cursor: {why}; use the next_cursor a previous page gave, unchanged, "
                    "with the same sort and order")


def decode_cursor(order: Order, cursor: str) -> list[Any]:
    """The sort values a cursor from encode_cursor(order, ...) carries; BadInput if it is
    damaged or was made for another list or order."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise _bad("it is not a cursor this service made") from None
    if not isinstance(data, dict) or not isinstance(data.get("v"), list):
        raise _bad("it is not a cursor this service made")
    if data.get("o") != order.name:
        raise _bad("it was made for another list or order")
    if len(data["v"]) != len(order.keys):
        raise _bad("it does not fit this list's order")
    return [_value(k, v) for k, v in zip(order.keys, data["v"])]


def _value(key: Key, v: Any) -> Any:
    if v is None:
        return None
    try:
        if key.kind == "ts" and isinstance(v, str):
            t = dt.datetime.fromisoformat(v)
            if t.tzinfo is not None:
                return t
        elif key.kind == "num" and isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
        elif key.kind == "int" and isinstance(v, int) and not isinstance(v, bool):
            return v
        elif key.kind == "uuid" and isinstance(v, str):
            return uuid.UUID(v)
        elif key.kind == "text" and isinstance(v, str) and "\x00" not in v:
            return v
    except ValueError:
        pass
    raise _bad("a value in it is not of the right kind")


def fetch_page(conn: psycopg.Connection, *, columns: str, source: str, order: Order,
               where: Sequence[str] = (), args: Sequence[Any] = (), cursor: str | None = None,
               limit: int | None = None) -> Page[dict[str, Any]]:
    """One page of `SELECT columns FROM source WHERE where... ORDER BY order`, after the row the
    cursor names (the first page when None), with the total of rows matching `where`.

    `where` holds SQL conditions joined by AND, with `args` for their %s in order."""
    limit = check_limit(limit)
    conds, cond_args = list(where), list(args)
    filtered = f"FROM {source}" + (f" WHERE {' AND '.join(conds)}" if conds else "")
    total = conn.execute(f"SELECT count(*) AS n {filtered}", cond_args).fetchone()["n"]
    if cursor:
        sql, extra = order.after(decode_cursor(order, cursor))
        conds.append(sql)
        cond_args += extra
    keys = ", ".join(f"{k.expr} AS _page_k{i}" for i, k in enumerate(order.keys))
    rows = conn.execute(
        f"SELECT {columns}, {keys} FROM {source}"
        + (f" WHERE {' AND '.join(conds)}" if conds else "")
        + f" ORDER BY {order.sql()} LIMIT %s", [*cond_args, limit + 1]).fetchall()
    more = len(rows) > limit
    rows = rows[:limit]
    nkeys = len(order.keys)
    next_cursor = (encode_cursor(order, [rows[-1][f"_page_k{i}"] for i in range(nkeys)])
                   if more and rows else None)
    for r in rows:
        for i in range(nkeys):
            r.pop(f"_page_k{i}", None)
    return Page(rows, int(total), next_cursor, limit)


def footer(page: Page[Any], noun: str) -> str:
    """The line a CLI list ends with: how many of the total, and how to get the next page."""
    shown = f"{len(page.items)} of {page.total} {noun}"
    return f"{shown}; next page: --cursor {page.next_cursor}" if page.next_cursor else shown

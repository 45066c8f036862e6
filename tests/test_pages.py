"""Cursor pagination (clipgate.pages) on real PostgreSQL: every row once, in order, through ties
and missing values in both directions; damaged and foreign cursors refused; and the lists of the
API walked a page at a time with their totals."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid

import pytest
from fastapi.testclient import TestClient

from clipgate import apikeys, db, pages
from clipgate.app import create_app
from clipgate.errors import BadInput

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)


def _rows(n: int = 23) -> list[dict]:
    # Few distinct values, so most rows tie on every key but the id; some values missing.
    return [{"id": uuid.uuid4(), "t": None if i % 7 == 3 else T0 + dt.timedelta(seconds=i % 3),
             "score": None if i % 5 == 1 else round(0.25 * (i % 4), 2), "n": i % 2}
            for i in range(n)]


def _expected(rows: list[dict], keys: list[tuple[str, bool]]) -> list[uuid.UUID]:
    """The order PostgreSQL gives, computed here without it: NULLS LAST both ways, then id."""
    out = list(rows)
    out.sort(key=lambda r: str(r["id"]))  # the tie-break, always ascending (uuid's text order)
    for name, desc in reversed(keys):
        present = sorted((r for r in out if r[name] is not None),
                         key=lambda r: r[name], reverse=desc)
        out = present + [r for r in out if r[name] is None]
    return [r["id"] for r in out]


ORDERS = [
    [("t", False)], [("t", True)], [("score", True)], [("score", False)],
    [("n", False), ("t", True)], [("score", True), ("n", True)],
]


@pytest.mark.parametrize("keys", ORDERS, ids=lambda k: ",".join(f"{n}{'-' if d else '+'}"
                                                                 for n, d in k))
@pytest.mark.parametrize("limit", [1, 4, 23, 50])
def test_walking_the_pages_gives_every_row_once_in_order(settings, keys, limit):
    rows = _rows()
    kinds = {"t": "ts", "score": "num", "n": "int"}
    order = pages.Order("test:" + ",".join(f"{n}{d}" for n, d in keys), tuple(
        [pages.Key(n, kinds[n], d) for n, d in keys] + [pages.Key("id", "uuid")]))
    with db.connection(settings) as conn:
        conn.execute("CREATE TEMP TABLE things (id uuid PRIMARY KEY, t timestamptz, "
                     "score double precision, n int) ON COMMIT DROP")
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO things VALUES (%(id)s, %(t)s, %(score)s, %(n)s)", rows)
        seen, cursor, totals = [], None, set()
        for _ in range(len(rows) + 2):
            page = pages.fetch_page(conn, columns="id", source="things", order=order,
                                    cursor=cursor, limit=limit)
            assert len(page.items) <= limit and "_page_k0" not in (page.items or [{}])[0]
            seen += [r["id"] for r in page.items]
            totals.add(page.total)
            cursor = page.next_cursor
            if cursor is None:
                break
        # A filter narrows the total and the pages alike.
        odd = pages.fetch_page(conn, columns="id", source="things", order=order,
                               where=["n = %s"], args=[1], limit=limit)
    assert seen == _expected(rows, keys)
    assert totals == {len(rows)}
    assert odd.total == sum(r["n"] for r in rows)


def _cursor(data: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_damaged_or_foreign_cursors_and_bad_limits_are_refused():
    order = pages.Order("works:created", (pages.Key("created_at", "ts"), pages.Key("id", "uuid")))
    good = pages.encode_cursor(order, [T0, uuid.uuid4()])
    assert pages.decode_cursor(order, good)[0] == T0
    other = pages.Order("keys:oldest", order.keys)
    for bad in ("not a cursor!", "", _cursor([1, 2]), _cursor({"o": "works:created"}),
                _cursor({"o": "works:created", "v": [1]}),
                _cursor({"o": "works:created", "v": ["yesterday", str(uuid.uuid4())]}),
                _cursor({"o": "works:created", "v": [T0.isoformat(), "not-a-uuid"]}),
                _cursor({"o": "works:created", "v": ["2026-01-01T00:00:00", str(uuid.uuid4())]}),
                pages.encode_cursor(other, [T0, uuid.uuid4()])):
        with pytest.raises(BadInput, match="bad cursor"):
            pages.decode_cursor(order, bad)
    for limit in (0, -1, pages.MAX_LIMIT + 1, "ten"):
        with pytest.raises(BadInput, match="limit"):
            pages.check_limit(limit)
    assert pages.check_limit(None) == pages.DEFAULT_LIMIT


def test_api_lists_walk_their_pages_with_a_total(settings):
    admin = apikeys.create_key("operator", role="admin", settings=settings)[1]
    made = [str(apikeys.create_key(f"k{i}", settings=settings)[0]["id"]) for i in range(4)]
    with TestClient(create_app(settings), headers={"X-API-Key": admin}) as api:
        ids, cursor = [], None
        while True:
            body = api.get("/v1/keys", params={"limit": 2, **({"cursor": cursor} if cursor
                                                               else {})}).json()
            assert body["total"] == 5 and len(body["items"]) <= 2 and body["limit"] == 2
            ids += [k["id"] for k in body["items"]]
            cursor = body["next_cursor"]
            if not cursor:
                break
        assert ids[1:] == made and len(set(ids)) == 5

        # Every list answers the same shape, even when empty.
        for url in ("/v1/works", "/v1/claims", "/v1/reviews", "/v1/flags", "/v1/releases"):
            r = api.get(url, params={"limit": 1})
            assert r.status_code == 200, (url, r.text)
            assert r.json() == {"items": [], "total": 0, "next_cursor": None, "limit": 1}, url

        # A cursor from another list, or a damaged one: 400 in words; a limit out of range: 422.
        first = api.get("/v1/keys", params={"limit": 1}).json()["next_cursor"]
        for url in ("/v1/works", "/v1/claims", "/v1/reviews", "/v1/flags", "/v1/releases"):
            for bad in (first, "garbage!"):
                r = api.get(url, params={"cursor": bad})
                assert r.status_code == 400 and "bad cursor" in r.json()["detail"], (url, r.text)
        for url in ("/v1/keys", "/v1/works", "/v1/reviews"):
            for limit in (0, pages.MAX_LIMIT + 1):
                assert api.get(url, params={"limit": limit}).status_code == 422
        # A claims cursor is tied to its sort and order.
        r = api.get("/v1/claims", params={"sort": "score", "cursor": pages.encode_cursor(
            pages.Order("claims:age:desc", ()), [])})
        assert r.status_code == 400 and "another list or order" in r.json()["detail"]


def test_cli_lists_print_the_next_page(settings, cli):
    for i in range(3):
        apikeys.create_key(f"k{i}", settings=settings)
    first = cli("keys", "list", "--limit", "2")
    assert first.exit_code == 0, first.output
    last_line = first.output.strip().splitlines()[-1]
    assert last_line.startswith("2 of 3 keys; next page: --cursor ")
    second = cli("keys", "list", "--limit", "2", "--cursor", last_line.split()[-1])
    assert second.exit_code == 0 and second.output.strip().splitlines()[-1] == "1 of 3 keys"
    assert cli("keys", "list", "--cursor", "garbage!").exit_code == 2

"""Every request's text, checked once at the edge before any route runs.

The app depends on `text_guard` for every route (pages and API): the path, the query, form
fields and upload file names (urlencoded and multipart), and every string (and key) of a JSON
body. A control character (NUL first: PostgreSQL refuses it, which was a 500) or a value over
clipgate.text.ANY_MAX characters is a 400 naming where it was. Fields with a tighter cap declare
it with clipgate.text's annotated types.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile

from clipgate import text
from clipgate.errors import BadInput

FILENAME_MAX = 255  # what file systems allow for one name


def _json_strings(value: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield where, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield (f"a key in {where}" if where else "a key"), str(k)
            yield from _json_strings(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _json_strings(v, f"{where}[{i}]")


def _check(where: str, value: str, *, max_len: int = text.ANY_MAX, one_line: bool = False
           ) -> None:
    msg = text.problem(value, max_len=max_len, one_line=one_line)
    if msg is not None:
        raise BadInput(f"{where} {msg}")


async def text_guard(request: Request) -> None:
    """Refuse control characters and over-long values anywhere in the request (BadInput, 400)."""
    _check("the path", request.scope["path"], one_line=True)  # percent-decoded
    for key, value in request.query_params.multi_items():
        _check("a query parameter name", key, one_line=True)
        _check(f"query parameter {key!r}", value)
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        # Parsed once: Starlette keeps the form, so the route reads the same object.
        form = await request.form()
        for key, value in form.multi_items():
            _check("a form field name", key, one_line=True)
            if isinstance(value, UploadFile):
                _check(f"the file name in {key!r}", value.filename or "",
                       max_len=FILENAME_MAX, one_line=True)
            else:
                _check(f"form field {key!r}", value)
    elif ctype == "application/json" or ctype.endswith("+json"):
        raw = await request.body()  # kept by Starlette for the route
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return  # the route's own parsing answers 422 with where it broke
        for where, value in _json_strings(body, ""):
            _check(f"JSON field {where!r}" if where and not where.startswith("a key")
                   else f"{where or 'the JSON body'} of the JSON body", value)

"""Response shapes every domain's routes share: an error, a request that failed validation, and
a page of a list (clipgate.pages). The domains' own response models sit beside their routes.

Response models are open (`extra="allow"`): the OpenAPI document names and types every field a
client may rely on, and a field added later reaches clients before the model names it.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")


class Out(BaseModel):
    """Base of the response models: open to fields the model does not name yet."""

    model_config = ConfigDict(extra="allow")


class ShapedRoute(APIRoute):
    """A route that answers what it built: a field its response model names but the route did
    not send stays out, rather than appearing as null (a job's download_url appears once it is
    released). The domains' routers use it (`APIRouter(route_class=ShapedRoute)`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs["response_model_exclude_unset"] = True
        super().__init__(*args, **kwargs)


class ErrorOut(Out):
    """Every 4xx and 5xx answer: what went wrong, in words."""

    detail: str = Field(description="What went wrong, in words")


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="Where: body, query, path or header, then the name")
    msg: str
    type: str


class ValidationErrorOut(BaseModel):
    """A request that does not fit the operation's schema (422): one readable line, and each
    problem by where it is."""

    detail: str = Field(description="Every problem, in one line")
    errors: list[FieldError] = Field(default_factory=list)


class PageOut(BaseModel, Generic[T]):
    """One page of a list, with the total and the next page's cursor (null on the last page)."""

    items: list[T]
    total: int = Field(description="How many the whole list holds (with these filters)")
    next_cursor: str | None = Field(description="Send as `cursor` for the next page; opaque")
    limit: int = Field(description="The most items a page holds (the `limit` asked for)")


_WORDS = {
    400: "Bad input, in words",
    401: "No API key, or not a valid one",
    403: "This API key's role may not do this",
    404: "No such thing (or not one this key may see)",
    409: "A conflict: stale revision, wrong state, or made before",
    410: "Gone: revoked",
    413: "Over an upload, frame-size or duration limit",
    503: "A part it needs is down; nothing was done",
}


def errors(*codes: int, **words: str) -> dict[int | str, dict[str, Any]]:
    """`responses=` for the error codes a route really returns, each with ErrorOut; words
    (`e404="No such claim"`) replace the general description."""
    return {code: {"model": ErrorOut, "description": words.get(f"e{code}", _WORDS[code])}
            for code in codes}


# Every route behind an API key may answer 401 (no key) and 403 (another role), and 400 for
# text the edge refuses in its path, query or body (control characters: clipgate.api.guard).
AUTH_ERRORS = errors(400, 401, 403, e400="Bad input, in words (e.g. control characters)")


class HealthOut(Out):
    """Readiness: each part (database, broker, index, signer, signals, clip) with `ok`."""

    status: str = Field(description="ok, or degraded when a part is down")
    version: str | None = None


class LiveOut(BaseModel):
    status: str

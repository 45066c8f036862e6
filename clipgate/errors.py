"""The few kinds of error every layer raises; the API and the CLI map them to 4xx/5xx and exit codes."""

from __future__ import annotations


class ClipgateError(Exception):
    """Base class. `status` is the HTTP status the API answers with."""

    status: int = 500


class BadInput(ClipgateError, ValueError):
    """The caller sent something unusable: not media, truncated, too large, no frames."""

    status = 400


class TooLarge(BadInput):
    status = 413


class Conflict(BadInput):
    """The thing already exists; `existing_id` names it."""

    status = 409

    def __init__(self, message: str, existing_id: str | None = None) -> None:
        super().__init__(message)
        self.existing_id = existing_id


class Unprocessable(BadInput):
    """Well-formed but contradictory input (a licence window that ends before it starts)."""

    status = 422


class NotFound(ClipgateError, LookupError):
    status = 404


class Unavailable(ClipgateError):
    """A part the gate needs (database, index, signer) is down: fail closed, release nothing."""

    status = 503


class Forbidden(ClipgateError, PermissionError):
    """The caller's role may not do this (a rights holder reaching for another's claim gets
    NotFound instead, so it learns nothing)."""

    status = 403

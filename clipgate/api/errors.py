"""Map errors to HTTP answers, always as JSON {"detail": "<message>"}.

clipgate's errors carry their own status (400 bad input, 413 too large, 404 not found,
503 unavailable); a plain ValueError from deep down is bad input too. Request validation stays
422, with one readable line instead of FastAPI's list.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from clipgate.api.models import ValidationErrorOut
from clipgate.errors import ClipgateError, Unavailable

log = logging.getLogger(__name__)


async def clipgate_error(request: Request, exc: Exception) -> JSONResponse:
    status = getattr(exc, "status", 500)
    if isinstance(exc, Unavailable):
        # Fail closed: the message says which part was down, so nothing was done or released.
        log.warning("%s %s: unavailable: %s", request.method, request.url.path, exc)
    elif status >= 500:
        log.error("%s %s: %s", request.method, request.url.path, exc, exc_info=exc)
    return JSONResponse({"detail": str(exc) or type(exc).__name__}, status_code=status)


async def value_error(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": str(exc) or "invalid input"}, status_code=400)


def _loc(err: dict[str, Any]) -> str:
    # ("body", "owner") -> "owner"; ("header", "x-foo") -> "header x-foo"
    parts = [str(p) for p in err.get("loc", ())]
    if parts and parts[0] in ("body", "query", "path"):
        parts = parts[1:]
    return ".".join(parts) or "request"


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    message = "; ".join(f"{_loc(e)}: {e.get('msg', 'invalid')}" for e in errors) or "invalid request"
    # Only loc/msg/type: "input" may hold an upload object and "ctx" exceptions, neither JSON.
    detail = [{"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
              for e in errors]
    return JSONResponse({"detail": message, "errors": detail}, status_code=422)


def _publish_true_shapes(app: FastAPI) -> None:
    """FastAPI's document says a 422's `detail` is a list; ours answers one line and `errors`.
    Publish the shape that is sent, under the name every operation's 422 already refers to.
    Uploads are also marked `format: binary`, which client generators read as a file."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            shape = ValidationErrorOut.model_json_schema(
                ref_template="#/components/schemas/{model}")
            found = schema.setdefault("components", {}).setdefault("schemas", {})
            found.update(shape.pop("$defs", {}))
            found["HTTPValidationError"] = {**shape, "title": "HTTPValidationError"}
            for component in found.values():
                for prop in (component.get("properties") or {}).values():
                    _mark_binary(prop)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _mark_binary(prop: dict[str, Any]) -> None:
    for part in [prop, prop.get("items") or {}, *(prop.get("anyOf") or [])]:
        if part.get("contentMediaType") == "application/octet-stream":
            part["format"] = "binary"
        if part is not prop and part.get("items"):
            _mark_binary(part)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ClipgateError, clipgate_error)
    app.add_exception_handler(ValueError, value_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    _publish_true_shapes(app)

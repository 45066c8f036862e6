"""Logging set-up shared by the CLI, the API and the workers.

Each line carries the request id (asgi-correlation-id's, from the X-Request-ID header or made
for the request; a Celery task carries the id of the request that queued it). Format: "json",
one object a line for a log collector; "text" for a developer's terminal; "auto" picks text when
stderr is a terminal. A last filter blanks anything shaped like a secret (an API key, a password
or token field, a cookie) that a message or its arguments might hold.
"""

from __future__ import annotations

import logging
import re
import sys
import warnings
from typing import Any

from asgi_correlation_id import CorrelationIdFilter, correlation_id
from celery.signals import before_task_publish, task_postrun, task_prerun
from pythonjsonlogger.json import JsonFormatter

TASK_HEADER = "clipgate_request_id"  # the message header a queued task carries the id in

_TEXT = "%(asctime)s %(levelname)s %(name)s [%(correlation_id)s]: %(message)s"
_JSON_FIELDS = "%(levelname)s %(name)s %(correlation_id)s %(message)s"
_JSON_NAMES = {"levelname": "level", "name": "logger", "correlation_id": "request_id"}

# API keys (cg_ and 43 URL-safe characters), and the values of fields named like secrets, in
# key=value, "key": "value" and header forms (Cookie, Authorization, X-API-Key).
_SECRETS = (
    re.compile(r"\bcg_[A-Za-z0-9_-]{16,}"),
    re.compile(r"(?i)((?:password|passwd|secret|token|api[_-]?key|session|cookie|authorization)"
               r"[\"']?\s*[:=]\s*)(\"[^\"]*\"|'[^']*'|(?:bearer\s+)?[^\s\"',;&]+)"),
)
REDACTED = "[redacted]"


def redact(text: str) -> str:
    """text with anything shaped like a secret replaced by [redacted]."""
    text = _SECRETS[0].sub(REDACTED, text)

    def blank(m: re.Match[str]) -> str:
        quote = m.group(2)[0] if m.group(2)[0] in "\"'" else ""
        return m.group(1) + quote + REDACTED + quote

    return _SECRETS[1].sub(blank, text)


class _RedactSecrets(logging.Filter):
    # A safety net: code should never log a secret, but a library's message might hold one.
    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


class _TextFormatter(logging.Formatter):
    # Tracebacks are blanked as they are formatted (an exception's text may quote a secret).
    def formatException(self, ei: Any) -> str:  # noqa: N802 (logging's name)
        return redact(super().formatException(ei))


class _JsonFormatter(JsonFormatter):
    def formatException(self, ei: Any) -> str:  # noqa: N802 (logging's name)
        return redact(super().formatException(ei))


class _DropOpenClipRandomNotice(logging.Filter):
    # open_clip says "No pretrained weights loaded" on the root logger; index.embedder says the
    # same louder, with what it means for verdicts.
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("No pretrained weights loaded")


class _Handler(logging.StreamHandler):
    """clipgate's handler on the root logger (so configure can find and replace it)."""


def _formatter(fmt: str) -> logging.Formatter:
    if fmt == "auto":
        fmt = "text" if sys.stderr.isatty() else "json"
    if fmt == "json":
        # "time": ISO 8601 in UTC, with milliseconds.
        return _JsonFormatter(_JSON_FIELDS, rename_fields=_JSON_NAMES, timestamp="time")
    if fmt == "text":
        return _TextFormatter(_TEXT)
    raise ValueError(f"CLIPGATE_LOG_FORMAT={fmt!r}: expected auto, json or text")


def handler(fmt: str = "auto", stream: Any = None) -> logging.Handler:
    """A handler with clipgate's filters (request id, secrets blanked) and format."""
    h = _Handler(stream)
    for f in (_DropOpenClipRandomNotice(), CorrelationIdFilter(default_value="-"),
              _RedactSecrets()):
        h.addFilter(f)
    h.setFormatter(_formatter(fmt))
    return h


def configure(level: str = "INFO", fmt: str = "auto") -> None:
    """Log to stderr at level in fmt (auto, json or text). A handler someone else put on the
    root logger first (a test runner's) is left alone; clipgate's own is replaced."""
    root = logging.getLogger()
    for h in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(h)
    if not root.handlers:
        root.addHandler(handler(fmt))
    root.setLevel(level.upper())
    # The embedded PostgreSQL narrates every start and stop at INFO; only its problems matter.
    logging.getLogger("pgserver").setLevel(logging.WARNING)
    # httpx logs every request's full URL at INFO (a webhook's query may hold a token).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # pgserver asks platformdirs for a runtime dir that containers and CI often lack; harmless.
    warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")


# -- the request id across the task queue ---------------------------------------------------------
def carry_request_ids() -> None:
    """Send the current request id with every task queued from this process, and set it in the
    worker while the task runs (Celery signals; connecting twice is a no-op)."""
    before_task_publish.connect(_send_request_id, weak=False, dispatch_uid="clipgate-rid-send")
    task_prerun.connect(_take_request_id, weak=False, dispatch_uid="clipgate-rid-take")
    task_postrun.connect(_drop_request_id, weak=False, dispatch_uid="clipgate-rid-drop")


def _send_request_id(headers: dict[str, Any] | None = None, **_: Any) -> None:
    rid = correlation_id.get()
    if rid and headers is not None:
        headers[TASK_HEADER] = rid


def _take_request_id(task: Any = None, **_: Any) -> None:
    if task is None:
        return
    # Celery puts a message's own headers on the request, or under request.headers.
    rid = getattr(task.request, TASK_HEADER, None) or (
        getattr(task.request, "headers", None) or {}).get(TASK_HEADER)
    task.request.clipgate_request_token = correlation_id.set(rid or None)


def _drop_request_id(task: Any = None, **_: Any) -> None:
    token = getattr(task.request, "clipgate_request_token", None) if task is not None else None
    if token is not None:
        try:
            correlation_id.reset(token)
        except ValueError:  # set in another context (an eager task): nothing to undo
            pass

"""Text that comes from outside: no control characters, and a length cap.

PostgreSQL refuses NUL (0x00) in text, so a NUL that reaches SQL is a 500; other control
characters forge log lines and confuse pages. Every request's text is checked once at the edge
(clipgate.api.guard); fields with their own cap use the annotated types below (422 in a
pydantic model, form or query) or `one_line` (BadInput, 400) where a domain parses a form itself.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

from clipgate.errors import BadInput

# C0 controls but tab, newline and carriage return, then DEL and the C1 controls.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# A single-line field refuses tab, newline and carriage return too.
_CONTROL_ONE_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f]")

# Caps, in characters.
NAME_MAX = 200  # names of people, keys, tenants, models; emails are capped at 320 on their own
TITLE_MAX = 500
IDENT_MAX = 200  # tenant ids, idempotency keys, user names a tenant sends
NOTE_MAX = 5_000  # notes, reasons, statements
# Any one text value anywhere in a request (a prompt or a claim's details fits easily).
ANY_MAX = 20_000


def control_char(value: str, *, one_line: bool = False) -> str | None:
    """The first control character in value as its code (e.g. 'U+0000'), or None."""
    found = (_CONTROL_ONE_LINE if one_line else _CONTROL).search(value)
    return f"U+{ord(found.group()):04X}" if found else None


def problem(value: str, *, max_len: int = ANY_MAX, one_line: bool = False) -> str | None:
    """What is wrong with this text in words, or None when it is fine."""
    bad = control_char(value, one_line=one_line)
    if bad is not None:
        return f"contains a control character ({bad}), which is not allowed"
    if len(value) > max_len:
        return f"is {len(value)} characters long; at most {max_len} are allowed"
    return None


def one_line(value: str, field: str, max_len: int) -> str:
    """value unchanged, or BadInput naming the field (a domain checking a form it parsed)."""
    msg = problem(value, max_len=max_len, one_line=True)
    if msg is not None:
        raise BadInput(f"{field} {msg}")
    return value


def _checked(max_len: int, one: bool):  # noqa: ANN202 (a pydantic validator)
    def check(value: str) -> str:
        msg = problem(value, max_len=max_len, one_line=one)
        if msg is not None:
            raise ValueError(f"the text {msg}")
        return value
    return check


# Annotated str types for pydantic models, Form(), Query() and Path() parameters: 422 with the
# reason. max_length is also declared, so the OpenAPI document shows the cap.
Name = Annotated[str, StringConstraints(max_length=NAME_MAX), AfterValidator(_checked(NAME_MAX, True))]
Title = Annotated[str, StringConstraints(max_length=TITLE_MAX),
                  AfterValidator(_checked(TITLE_MAX, True))]
Ident = Annotated[str, StringConstraints(max_length=IDENT_MAX),
                  AfterValidator(_checked(IDENT_MAX, True))]
Note = Annotated[str, StringConstraints(max_length=NOTE_MAX), AfterValidator(_checked(NOTE_MAX, False))]

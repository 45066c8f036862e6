"""Logs: one JSON object a line with the request id (or plain text for a terminal), the id carried
from a request into the work it causes, and no secret in any line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from clipgate import apikeys, logs
from clipgate.app import create_app
from tests.complaints import web_helpers as h
from tests.media import noise_frame, write_image

RID = "6f1c2d3e4b5a49c8b7d6e5f4a3b2c1d0"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Every log line of every logger, at DEBUG, as JSON, while the test runs."""
    buf = io.StringIO()
    handler = logs.handler("json", stream=buf)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield buf
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _lines(buf: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


def test_lines_are_json_with_the_request_id(settings, captured, tmp_path):
    key = apikeys.create_key("ops", role="admin", settings=settings)[1]
    clip = write_image(tmp_path / "n.png", noise_frame(3, (320, 240)))
    with TestClient(create_app(settings), headers={"X-API-Key": key}) as client:
        r = client.post("/v1/checks", headers={"X-Request-ID": RID},
                        files={"file": ("n.png", clip.read_bytes(), "image/png")})
        assert r.status_code == 200 and r.headers["X-Request-ID"] == RID
        made = client.get("/v1/health/live").headers["X-Request-ID"]  # one is made when none came
    assert made and made != RID
    lines = _lines(captured)
    check = [line for line in lines if line["logger"] == "compliance.gate"]
    assert check and check[-1]["request_id"] == RID
    assert check[-1]["level"] == "INFO" and check[-1]["message"].startswith("check ")
    assert {"time", "level", "logger", "message", "request_id"} <= set(check[-1])


def test_text_format_for_a_terminal():
    buf = io.StringIO()
    log = logging.getLogger("clipgate.test.text")
    h_ = logs.handler("text", stream=buf)
    log.addHandler(h_)
    log.propagate = False
    try:
        log.warning("plain %s", "words")
    finally:
        log.removeHandler(h_)
        log.propagate = True
    assert buf.getvalue().rstrip().endswith("WARNING clipgate.test.text [-]: plain words")
    with pytest.raises(ValueError, match="CLIPGATE_LOG_FORMAT"):
        logs.handler("yaml")


def test_signing_in_and_a_keyed_call_leave_no_secret_in_the_logs(settings, captured):
    h.account(settings, "reviewer", "reviewer@example.org")
    key = apikeys.create_key("gen", role="generator", settings=settings)[1]
    c = h.client(settings)
    assert h.sign_in(c, "reviewer@example.org", "wrong password, logged?").status_code == 400
    r = h.sign_in(c, "reviewer@example.org")
    assert r.status_code == 303
    cookie = c.cookies.get("clipgate_session") or next(iter(c.cookies.values()))
    assert c.get("/review").status_code == 200
    assert c.get("/v1/checks/00000000-0000-0000-0000-000000000000",
                 headers={"X-API-Key": key}).status_code == 404
    assert c.get("/v1/health", headers={"Authorization": f"Bearer {key}"}).status_code in (200, 503)
    text = captured.getvalue()
    assert len(_lines(captured)) > 3  # something was logged: the check below means something
    for secret in (h.PASSWORD, "wrong password, logged?", key, key[3:], cookie):
        assert secret not in text


def test_secrets_in_a_message_are_blanked(captured):
    log = logging.getLogger("clipgate.test.secrets")
    key = "cg_" + "A1b2" * 11
    log.warning("key %s from %s", key, "client")
    log.warning('form {"password": "hunter2 is long", "email": "a@b.c"}')
    log.warning("headers Cookie: clipgate_session=eyJhbGciOi.abc; X-API-Key=%s", "s3cr3t-value")
    log.warning("Authorization: Bearer tok123456")
    try:
        raise RuntimeError(f"failed with api_key={key}")
    except RuntimeError:
        log.exception("boom")
    text = captured.getvalue()
    for secret in (key, "hunter2", "eyJhbGciOi", "s3cr3t-value", "tok123456"):
        assert secret not in text
    assert "[redacted]" in text and "a@b.c" in text and "from client" in text

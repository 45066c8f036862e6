"""The API's documentation page works with no network: assets are served by clipgate itself."""

from __future__ import annotations

import re
import socket
import threading
import time

import pytest
import uvicorn
from fastapi.testclient import TestClient

from clipgate.app import create_app

def test_docs_reference_no_outside_host(settings):
    client = TestClient(create_app(settings))
    page = client.get("/docs")
    assert page.status_code == 200
    assert not re.search(r"(src|href)=\"https?://", page.text)
    for asset in re.findall(r"(?:src|href)=\"(/[^\"]+)\"", page.text):
        assert client.get(asset).status_code == 200, asset


@pytest.mark.browser
def test_docs_page_renders_in_headless_chromium(settings, browser_page):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.started
        page = browser_page
        outside: list[str] = []
        page.on("request", lambda r: None if r.url.startswith(f"http://127.0.0.1:{port}")
                else outside.append(r.url))
        # The docs run under the app's Content-Security-Policy: nothing of them is refused.
        refused: list[str] = []
        page.on("console", lambda m: refused.append(m.text)
                if "Content Security Policy" in m.text else None)
        page.goto(f"http://127.0.0.1:{port}/docs")
        page.get_by_text("/v1/releases", exact=True).first.wait_for(timeout=15000)
        assert page.get_by_role("heading", name=re.compile("clipgate")).count() >= 1
        assert [u for u in outside if not u.startswith("data:")] == []
        assert refused == []
    finally:
        server.should_exit = True
        thread.join(timeout=10)

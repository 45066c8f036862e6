"""The OpenAPI document is good enough for a generated client: openapi-python-client builds one
from the live document of a running server, and it gates a clip and reads the typed verdict,
its evidence, a page of works and a typed error."""

from __future__ import annotations

import importlib
import io
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from clipgate import apikeys
from tests.complaints import web_helpers as h
from tests.media import noise_frame, pan, photo, write_image, write_video

GENERATOR = shutil.which("openapi-python-client") or str(
    Path(sys.executable).with_name("openapi-python-client"))


@pytest.fixture
def generated(tmp_path, settings):
    """(the generated package, base URL, admin key) against a real uvicorn."""
    if not Path(GENERATOR).exists():
        pytest.skip("openapi-python-client is not installed (the test extra)")
    key = apikeys.create_key("ops", "admin", settings)[1]
    with h.live_server(settings) as base:
        document = tmp_path / "openapi.json"
        document.write_bytes(httpx.get(f"{base}/openapi.json").content)
        out = tmp_path / "gen" / "clipgate_client"
        done = subprocess.run([GENERATOR, "generate", "--path", str(document), "--output-path",
                               str(out), "--meta", "none"], capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        sys.path.insert(0, str(out.parent))
        try:
            yield importlib.import_module("clipgate_client"), base, key
        finally:
            sys.path.remove(str(out.parent))
            for name in [m for m in sys.modules if m.startswith("clipgate_client")]:
                del sys.modules[name]


def test_a_generated_client_checks_a_clip_and_reads_the_typed_verdict(generated, tmp_path):
    pkg, base, key = generated
    from clipgate_client.api.compliance import check_route_v1_checks_post as check
    from clipgate_client.api.works import add_work_v1_works_post as add_work
    from clipgate_client.api.works import list_works_route_v1_works_get as list_works
    from clipgate_client.models import (BodyAddWorkV1WorksPost, BodyCheckRouteV1ChecksPost,
                                        CheckOut, ErrorOut, WorkOut, WorkPage)
    from clipgate_client.models.body_add_work_v1_works_post_policy import (
        BodyAddWorkV1WorksPostPolicy)
    from clipgate_client.models.check_out_verdict import CheckOutVerdict
    from clipgate_client.types import File

    client = pkg.AuthenticatedClient(base_url=base, token=key, timeout=httpx.Timeout(120))
    img = photo("astronaut")
    poster = write_image(tmp_path / "poster.png", img)
    work = add_work.sync(client=client, body=BodyAddWorkV1WorksPost(
        file=File(payload=poster.open("rb"), file_name="poster.png", mime_type="image/png"),
        owner="NASA", title="Astronaut", policy=BodyAddWorkV1WorksPostPolicy.BLOCK))
    assert isinstance(work, WorkOut) and work.title == "Astronaut"

    copy = write_video(tmp_path / "copy.mp4", [pan(img, i, 36) for i in range(36)])
    verdict = check.sync(client=client, body=BodyCheckRouteV1ChecksPost(
        file=File(payload=copy.open("rb"), file_name="copy.mp4", mime_type="video/mp4")))
    assert isinstance(verdict, CheckOut), verdict
    assert verdict.verdict is CheckOutVerdict.BLOCK
    (match,) = verdict.matches
    assert match.work_id == work.id and match.segments and match.pairs[0].signals

    other = write_video(tmp_path / "other.mp4", [noise_frame(i // 6) for i in range(24)])
    clean = check.sync(client=client, body=BodyCheckRouteV1ChecksPost(
        file=File(payload=other.open("rb"), file_name="other.mp4", mime_type="video/mp4")))
    assert clean.verdict is CheckOutVerdict.RELEASE and clean.matches == []

    page = list_works.sync(client=client, limit=1)
    assert isinstance(page, WorkPage) and page.total == 1 and page.next_cursor is None
    assert [w.id for w in page.items] == [work.id]

    # Errors are typed too: not media is a 400 with its message.
    bad = check.sync_detailed(client=client, body=BodyCheckRouteV1ChecksPost(
        file=File(payload=io.BytesIO(b"not a video"), file_name="x.mp4", mime_type="video/mp4")))
    assert bad.status_code == 400 and isinstance(bad.parsed, ErrorOut) and bad.parsed.detail

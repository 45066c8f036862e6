"""Release manifests carry an RFC 3161 timestamp when CLIPGATE_TSA_URL is set: a local TSA on
loopback (OpenSSL's `ts`) stamps the signature, and verify says the stamp validates."""

from __future__ import annotations

import datetime as dt
import socket

import pytest

from clipgate import db
from clipgate.errors import Unavailable
from compliance import generator_identity, release_clip, verify_clip
from tests.compliance.tsa import local_tsa
from tests.media import noise_frame, write_video

IDENT = generator_identity(model="test-gen", version="1")


def _clip(tmp_path):
    return write_video(tmp_path / "gen.mp4", [noise_frame(70 + i // 4) for i in range(12)])


def test_release_carries_a_timestamp_that_validates(settings, tmp_path):
    with local_tsa() as tsa:
        anchors = tmp_path / "tsa-root.pem"
        anchors.write_bytes(tsa.ca_pem)
        stamped = settings.model_copy(update={"tsa_url": tsa.url, "tsa_trust_anchors": anchors})
        before = dt.datetime.now(dt.UTC).replace(microsecond=0)
        outcome = release_clip(_clip(tmp_path), generator=IDENT, settings=stamped)
        assert outcome.released and tsa.requests  # the TSA was asked
        report = verify_clip(outcome.release["path"], settings=stamped)
    assert report["verified"] and report["state"] == "Trusted"
    stamp = report["timestamp"]
    assert stamp["validated"] and stamp["trusted"]
    assert before - dt.timedelta(seconds=5) <= dt.datetime.fromisoformat(stamp["time"]) \
        <= dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
    # Without the TSA's root the stamp still validates, but is not trusted.
    plain = verify_clip(outcome.release["path"], settings=settings)
    assert plain["timestamp"]["validated"] and not plain["timestamp"]["trusted"]


def test_without_a_tsa_there_is_no_timestamp(settings, tmp_path):
    outcome = release_clip(_clip(tmp_path), generator=IDENT, settings=settings)
    assert verify_clip(outcome.release["path"], settings=settings)["timestamp"] is None


def test_an_unreachable_tsa_releases_nothing(settings, tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = settings.model_copy(update={"tsa_url": f"http://127.0.0.1:{port}/"})
    with pytest.raises(Unavailable, match="nothing was released"):
        release_clip(_clip(tmp_path), generator=IDENT, settings=down)
    with db.connection(settings) as conn:
        assert conn.execute("SELECT count(*) AS n FROM releases").fetchone()["n"] == 0

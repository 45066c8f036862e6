"""Complaints test set-up: accounts (a plain insert: the password does not matter here), released
clips made on the spot, and a copy of a signed clip with its C2PA manifest stripped."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import av
import psycopg
import pytest

from clipgate import db
from compliance import generator_identity, release_clip
from complaints import actor_for_account
from tests.media import noise_frame, pan, photo, video_of, write_image

FRAMES = 36  # 3 s at 12 fps


def make_account(settings, role: str = "rights_holder", *, name: str | None = None,
                 webhook_url: str | None = None) -> dict[str, Any]:
    email = f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    with db.connection(settings) as conn:
        return conn.execute(
            "INSERT INTO accounts (email, name, organisation, role, password_hash, webhook_url) "
            "VALUES (%s, %s, %s, %s, 'not-a-hash', %s) RETURNING *",
            (email, name or f"{role.replace('_', ' ').title()} {email[-16:-12]}", None, role,
             webhook_url)).fetchone()


def actor_of(account: dict[str, Any]):
    return actor_for_account(account)


def photo_clip(path: Path, name: str = "astronaut", frames: int = FRAMES) -> Path:
    """A slow zoom into a real photo: the clip a model that memorised the photo would make."""
    def make() -> list:
        img = photo(name)
        return [pan(img, i, frames) for i in range(frames)]

    return video_of(path, ("photo_clip", name, frames), make)


def noise_clip(path: Path, seed: int) -> Path:
    return video_of(path, ("noise_clip", seed, FRAMES),
                    lambda: [noise_frame(seed + i // 12) for i in range(FRAMES)])


def release(settings, clip: Path, *, model: str = "gen", version: str = "1") -> dict[str, Any]:
    outcome = release_clip(clip, generator=generator_identity(model=model, version=version,
                                                              prompt="p"), settings=settings)
    assert outcome.released, outcome.check.reasons
    return outcome.release


def strip_manifest(src: Path, dst: Path) -> Path:
    """Remux a signed MP4 with PyAV: same video packets, no C2PA manifest box."""
    with av.open(str(src)) as inp, av.open(str(dst), "w", format="mp4") as out:
        stream_in = inp.streams.video[0]
        stream_out = out.add_stream_from_template(stream_in)
        for packet in inp.demux(stream_in):
            if packet.dts is None:
                continue
            packet.stream = stream_out
            out.mux(packet)
    return dst


def work_image(path: Path, name: str = "astronaut") -> Path:
    return write_image(path, photo(name))


STATEMENT = {"good_faith": True, "accurate": True, "authorised": True, "signature": "Ada Holder"}


@pytest.fixture
def holder(settings):
    return make_account(settings, "rights_holder", name="Ada Holder")


@pytest.fixture
def reviewer(settings):
    return make_account(settings, "reviewer", name="Rita Reviewer")


@pytest.fixture
def copied_release(settings, tmp_path):
    """A released clip that copies the astronaut photo (released before the photo was protected)."""
    return release(settings, photo_clip(tmp_path / "copy.mp4"))


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        from email import message_from_bytes, policy

        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


@pytest.fixture
def smtp_inbox():
    """A real SMTP server (aiosmtpd) on a free local port; .messages holds what it received."""
    from aiosmtpd.controller import Controller

    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port())
    controller.start()
    inbox.port = controller.port
    yield inbox
    controller.stop()


def with_smtp(settings, inbox):
    return settings.model_copy(update={"smtp_host": "127.0.0.1", "smtp_port": inbox.port,
                                       "smtp_from": "claims@clipgate.test"})


def file_and_assign(settings, tmp_path, holder, reviewer, release_row, **kw):
    """File a claim (work uploaded) on release_row and assign it to reviewer: in review."""
    from complaints import assign_claim, file_claim

    args = {"release_id": str(release_row["id"]),
            "work_path": work_image(tmp_path / f"work-{uuid.uuid4().hex[:6]}.png"),
            "work_title": "Astronaut", "statement": STATEMENT, "remedies": ["takedown", "block"]}
    args.update(kw)
    claim = file_claim(actor_of(holder), settings=settings, **args)
    assert claim["state"] == "triaged", claim
    return assign_claim(actor_of(reviewer), claim["id"], revision=claim["revision"],
                        settings=settings)


def reencode(src: Path, dst: Path, *, width: int, height: int, crf: int = 32) -> Path:
    """Decode a clip and encode it again smaller and at a lower quality: a copy passed around
    online, its manifest gone with the original bytes."""
    with av.open(str(src)) as inp:
        frames = [f.to_ndarray(width=width, height=height, format="rgb24")
                  for f in inp.decode(inp.streams.video[0])]
    with av.open(str(dst), "w") as out:
        stream = out.add_stream("libx264", rate=12, options={"crf": str(crf)})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return dst


def wait_until_blocked(settings, pid_not: int, timeout: float = 20.0) -> None:
    """Until a backend of this database other than pid_not waits on a lock (the code under test,
    stuck behind a lock the test holds)."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(settings.database_url, autocommit=True) as watch:
        while time.monotonic() < deadline:
            row = watch.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock' AND pid <> %s", (pid_not,)).fetchone()
            if row[0]:
                return
            time.sleep(0.05)
    raise AssertionError("nothing ever waited for the lock the test holds")

"""The clipgate command: works add/list/remove, check, release, verify, and exit code 2 on bad input."""

from __future__ import annotations

import json
from pathlib import Path

from bench.provenance import TRANSFORMS
from clipgate.settings import get_settings
from tests.media import noise_frame, pan, photo, write_image, write_video


def test_works_add_list_check_release_verify_remove(cli, tmp_path):
    work = write_image(tmp_path / "astronaut.jpg", photo("astronaut", (512, 512)))
    r = cli("works", "add", work, "--owner", "NASA", "--title", "Astronaut", "--policy", "block")
    assert r.exit_code == 0, r.output
    work_id = r.output.split()[0]

    r = cli("works", "list", "--json")
    listed = json.loads(r.output)
    assert [w["title"] for w in listed["items"]] == ["Astronaut"] and listed["total"] == 1

    img = photo("astronaut")
    copy = write_video(tmp_path / "copy.mp4", [pan(img, i, 36) for i in range(36)])
    r = cli("check", copy, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["verdict"] == "block"

    r = cli("release", copy, "--model", "m")
    assert r.exit_code == 1 and "not released" in r.output

    original = write_video(tmp_path / "original.mp4", [noise_frame(i // 6) for i in range(36)])
    r = cli("release", original, "--model", "m", "--prompt", "a prompt")
    assert r.exit_code == 0, r.output
    signed = r.output.strip().splitlines()[-1]
    r = cli("verify", signed, "--json")
    report = json.loads(r.output)
    assert report["state"] == "Trusted"
    assert report["release"]["status"] == "active"
    assert report["assertions"]["org.clipgate.generator"]["prompt_sha256"] != "a prompt"

    r = cli("works", "remove", work_id)
    assert r.exit_code == 0 and "removed" in r.output
    r = cli("check", copy, "--json")
    assert json.loads(r.output)["verdict"] == "release"

    r = cli("index", "rebuild")
    assert r.exit_code == 0 and "0 works" in r.output


def test_bad_input_exits_2_with_a_message(cli, tmp_path, settings):
    not_media = tmp_path / "notes.mp4"
    not_media.write_text("this is not a video")
    real = write_video(tmp_path / "real.mp4", [noise_frame(i) for i in range(48)])
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(real.read_bytes()[: real.stat().st_size // 2])
    big = write_image(tmp_path / "big.png", photo("coffee", (900, 600)))

    for args in (
        ("check", not_media),
        ("check", truncated),
        ("check", tmp_path / "missing.mp4"),
        ("works", "add", not_media, "--owner", "o", "--title", "t"),
        ("works", "add", big, "--owner", "o", "--title", "t", "--policy", "sometimes"),
        ("works", "remove", "00000000-0000-0000-0000-000000000000"),
        ("works", "remove", "not-an-id"),
        ("release", not_media, "--model", "m"),
    ):
        r = cli(*args)
        assert r.exit_code == 2, (args, r.output)
        assert "error:" in r.output
    r = cli("works", "list", "--json")
    assert json.loads(r.output)["items"] == []  # nothing was half-registered


def test_bench_sizes_that_are_not_numbers_exit_2(cli):
    for args, says in ((("bench", "scale", "--frames", "abc"), "sizes of at least 100"),
                       (("bench", "scale", "--frames", "1e4", "--backend", "x"), "faiss or milvus"),
                       (("bench", "protect", "--frames", "1e4,1e5"), "one size"),
                       (("bench", "protect", "--frames", "lots"), "sizes of at least 100")):
        r = cli(*args)
        assert r.exit_code == 2 and says in r.output, (args, r.output)


def test_frame_over_the_pixel_limit_exits_2(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("CLIPGATE_MAX_FRAME_PIXELS", str(320 * 240))
    get_settings.cache_clear()
    big = write_image(tmp_path / "big.png", photo("coffee", (900, 600)))
    r = cli("works", "add", big, "--owner", "o", "--title", "t")
    assert r.exit_code == 2
    assert "CLIPGATE_MAX_FRAME_PIXELS" in r.output


def test_releases_revoke_and_verify_says_so(cli, tmp_path):
    original = write_video(tmp_path / "o.mp4", [noise_frame(300 + i // 6) for i in range(36)])
    r = cli("release", original, "--model", "m", "--json")
    release_id = json.loads(r.output)["release"]["release_id"]
    signed = json.loads(r.output)["path"]
    r = cli("releases", "revoke", release_id, "--reason", "takedown request")
    assert r.exit_code == 0, r.output
    r = cli("verify", signed)
    assert r.exit_code == 1 and "REVOKED" in r.output and "takedown request" in r.output
    # A stripped copy is traced back, and still said to be revoked.
    stripped = TRANSFORMS["stripped"](Path(signed), tmp_path / "stripped.mp4")
    r = cli("verify", stripped)
    assert r.exit_code == 1 and "recovered by watermark" in r.output
    assert f"a copy of release {release_id} (REVOKED)" in r.output
    r = cli("releases", "revoke", "nope", "--reason", "x")
    assert r.exit_code == 2 and "not a valid release id" in r.output

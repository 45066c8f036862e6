"""`clipgate generate`, `clipgate tenants ...`, `clipgate usage` and `works add --alias` in-process
against the test database (no broker: the job runs in this process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from generator.samples import get_work


SMALL = ("--seconds", "2", "--width", "320", "--height", "180", "--fps", "12")


def test_generate_from_the_shell_releases_a_signed_clip_and_usage_shows_it(cli):
    r = cli("tenants", "add", "acme", "--tier", "pro", "--credits", "120")
    assert r.exit_code == 0 and "acme" in r.output and "120.00 GPU-s left" in r.output
    r = cli("generate", "a calm ocean at sunset", "--tenant", "acme", "--idempotency-key", "k1",
            *SMALL)
    assert r.exit_code == 0, r.output
    assert "RELEASED" in r.output
    signed = Path(r.output.split("signed clip: ")[1].split()[0])
    assert signed.is_file() and signed.read_bytes()[4:8] == b"ftyp"
    r = cli("generate", "a calm ocean at sunset", "--tenant", "acme", "--idempotency-key", "k1",
            "--json", *SMALL)
    job = json.loads(r.output)
    assert r.exit_code == 0 and job["state"] == "released" and job["attempts"] == 1  # same job
    r = cli("usage", "--json")
    (row,) = json.loads(r.output)
    assert row["tenant"] == "acme" and row["jobs"] == 1 and row["credits_left_gpu_s"] == 120
    r = cli("tenants", "grant", "acme", "30")
    assert r.exit_code == 0 and "150.00 GPU-s left" in r.output
    assert "acme" in cli("usage").output


def test_generate_refused_by_screening_exits_1_with_the_reason(cli, tmp_path):
    work = get_work("launch-day")
    path = tmp_path / "w.png"
    work.load_image().save(path)
    r = cli("works", "add", path, "--owner", "Halcyon", "--title", "Launch Day",
            "--alias", "Halcyon Rocket", "--description", "A rocket lifting off at dawn")
    assert r.exit_code == 0, r.output
    cli("tenants", "add", "acme", "--credits", "100")
    r = cli("generate", "the halcyon rockett at night", "--tenant", "acme", *SMALL)
    assert r.exit_code == 1
    assert "BLOCKED" in r.output and "Launch Day" in r.output and "name match" in r.output


@pytest.mark.parametrize("args, words", [
    (("generate", "", "--tenant", "acme"), "non-empty"),
    (("generate", "a lake", "--tenant", "nobody"), "unknown tenant"),
    (("tenants", "add", "bad name!"), "tenant name"),
    (("tenants", "add", "x", "--tier", "gold"), "unknown tier"),
    (("tenants", "grant", "acme", "0"), "positive"),
])
def test_bad_input_exits_2(cli, args, words):
    cli("tenants", "add", "acme", "--credits", "10")
    r = cli(*args)
    assert r.exit_code == 2, r.output
    assert words in r.output

"""The main job: `clipgate demo` end to end, and its report page in a real headless Chromium."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench.demo import run_demo
from clipgate.settings import Settings
from tests.conftest import reset_database

@pytest.fixture(scope="module")
def demo(tmp_path_factory, database_url):
    reset_database(database_url)
    root = tmp_path_factory.mktemp("demo")
    settings = Settings(_env_file=None, data_dir=root / "data", database_url=database_url)
    out = root / "out"
    report = run_demo(settings, out)
    return settings, out, report


def test_demo_shows_all_three_verdicts_and_trusted_releases(demo):
    settings, out, report = demo
    assert report["counts"]["release"] >= 1
    assert report["counts"]["block"] >= 1
    assert report["counts"]["review"] >= 1
    for clip in report["clips"]:
        if clip["verdict"] == "release":
            assert clip["verification"]["state"] == "Trusted"
            assert clip["verification"]["release_status"] == "active"
        else:
            assert clip["release"] is None and clip["verification"] is None
    # The gate caught every clip the generator built from a protected work, and only those.
    for clip in report["clips"]:
        assert bool(clip["reused"]) == (clip["verdict"] != "release"), clip["prompt"]
    assert report["tamper_test"]["state"] == "Invalid"
    # Without a checkpoint CLIP is not computed, and the report says so; SSCD is in force.
    assert report["clip"]["computed"] is False and report["signals"]["sscd"]["counts"]
    assert "not computed" in (out / "index.html").read_text()
    saved = json.loads((out / "report.json").read_text())
    assert saved["counts"] == report["counts"]
    # Blocked and held clips never reach the release store.
    released = {c["release"]["release_id"] for c in report["clips"] if c["release"]}
    assert {p.stem for p in settings.release_dir.rglob("*") if p.is_file()} == released


def test_demo_is_rerunnable_without_registering_works_twice(demo, monkeypatch):
    """A second run in the same folder and data directory registers no work again and reaches
    the same verdicts. It runs three of the prompts (one of each verdict), not all twelve: the
    whole rerun cost about five minutes of CI for the same assertion."""
    import bench.demo

    settings, out, report = demo
    first = {c["prompt"]: c["verdict"] for c in report["clips"]}
    subset = tuple(next(p for p in bench.demo.PROMPTS if first[p] == v)
                   for v in ("release", "block", "review"))
    monkeypatch.setattr(bench.demo, "PROMPTS", subset)
    # A copy of the first run's folder (a demo folder it may reuse): the report page's test
    # reads the first run's.
    again_out = out.parent / "again"
    shutil.copytree(out, again_out)
    again = run_demo(settings, again_out)
    assert len(again["works"]) == len(report["works"])
    assert {c["prompt"]: c["verdict"] for c in again["clips"]} == {p: first[p] for p in subset}


@pytest.mark.browser
def test_report_page_in_headless_chromium(demo, browser_page):
    _, out, report = demo
    page = browser_page
    page.goto((out / "index.html").as_uri())
    assert page.locator("h1").inner_text() == "clipgate demo report"
    counts = page.get_by_label("Verdict counts").inner_text()
    assert f"Blocked: {report['counts']['block']}" in counts
    assert page.locator("article").count() == len(report["clips"])
    # Every warning the gate raised is a note on the page; without a CLIP checkpoint the page
    # says CLIP was not computed rather than warning about random weights.
    notes = page.get_by_role("note")
    assert notes.count() == len(report["warnings"])
    for i in range(notes.count()):
        assert notes.nth(i).inner_text().startswith("Warning:")
    assert "CLIP: not computed" in page.locator("body").inner_text()
    images = page.locator("img")
    assert images.count() > len(report["clips"]) * 4
    for i in range(images.count()):
        img = images.nth(i)
        assert img.get_attribute("alt")
        assert img.evaluate("el => el.complete && el.naturalWidth > 0"), img.get_attribute("src")
    page.screenshot(path=str(out / "report.png"))
    assert Path(out / "report.png").stat().st_size > 0


def test_demo_refuses_a_folder_that_is_not_its_own(tmp_path, settings):
    from clipgate.errors import BadInput

    (tmp_path / "clips").mkdir()
    (tmp_path / "clips" / "precious.txt").write_text("keep me")
    with pytest.raises(BadInput, match="not empty"):
        run_demo(settings, tmp_path)
    assert (tmp_path / "clips" / "precious.txt").read_text() == "keep me"

"""`clipgate bench protect`: a work registered through a real API process (a child process on
the test database) is matched by a check in this process, from the change log, not a rebuild."""

from __future__ import annotations

from bench.protect import run_protect


def test_a_work_posted_to_another_process_is_protected_here_without_a_rebuild(settings):
    result = run_protect(settings, frames=300, runs=2)
    assert result["frames"] >= 302
    assert [r["rebuilds"] for r in result["runs"]] == [0, 0]
    assert all(r["changes_applied"] == 1 and r["checks"] == 1 for r in result["runs"])
    assert result["runs"][1]["version"] == result["runs"][0]["version"] + 1
    assert result["time_to_protect_s"]["max"] < 5.0
    assert result["vectors"]["sscd"]["kind"] == "flat"  # 300 frames: exact

"""Work records beyond the media: the owning account, aliases and description, and a change of
policy that the gate sees at once (and that makes a pending release check again)."""

from __future__ import annotations

import pytest

import index
from clipgate import db
from clipgate.errors import BadInput, NotFound
from compliance import check_clip
from tests.media import pan, photo, write_image, write_video


def test_aliases_and_description_are_kept(settings, tmp_path):
    work = index.register_work(
        write_image(tmp_path / "cat.png", photo("chelsea")), owner="Studio Kat",
        title="Chelsea the cat", policy="review", aliases=["Chelsea", " Kat the cat "],
        description="A tabby cat at a window.", settings=settings,
    )
    assert work["aliases"] == ["Chelsea", "Kat the cat"]
    assert work["description"] == "A tabby cat at a window."
    assert work["account_id"] is None


@pytest.mark.parametrize("kwargs", [
    {"aliases": [""]}, {"aliases": ["x" * 201]}, {"aliases": ["a"] * 21},
    {"description": "d" * 2001},
])
def test_bad_aliases_or_description_are_refused_before_anything_is_stored(settings, tmp_path,
                                                                           kwargs):
    with pytest.raises(BadInput):
        index.register_work(write_image(tmp_path / "cat.png", photo("chelsea")), owner="o",
                            title="t", policy="review", settings=settings, **kwargs)
    assert index.list_works(settings=settings) == []
    works_dir = settings.data_dir / "works"
    assert not works_dir.exists() or not any(works_dir.iterdir())


def test_policy_change_moves_the_index_version_and_the_next_verdict(settings, tmp_path):
    cat = photo("chelsea")
    work = index.register_work(write_image(tmp_path / "cat.png", cat), owner="Studio Kat",
                               title="Chelsea", policy="review", settings=settings)
    clip = write_video(tmp_path / "clip.mp4", [pan(cat, i, 36) for i in range(36)], fps=12)
    first = check_clip(clip, settings=settings)
    assert first.verdict == "review"

    blocked = index.set_work_policy(str(work["id"]), "block", settings=settings)
    assert blocked["policy"] == "block"
    second = check_clip(clip, settings=settings)
    assert second.verdict == "block"
    assert second.index_version == first.index_version + 1
    # Setting the same policy again changes nothing.
    index.set_work_policy(str(work["id"]), "block", settings=settings)
    with db.connection(settings) as conn:
        assert conn.execute("SELECT version FROM index_state").fetchone()["version"] == \
            second.index_version


def test_policy_change_refuses_unknown_work_and_policy(settings, tmp_path):
    work = index.register_work(write_image(tmp_path / "cat.png", photo("chelsea")), owner="o",
                               title="t", policy="review", settings=settings)
    with pytest.raises(BadInput):
        index.set_work_policy(str(work["id"]), "delete", settings=settings)
    with pytest.raises(NotFound):
        index.set_work_policy("00000000-0000-0000-0000-000000000000", "block", settings=settings)


def test_every_lookup_of_a_missing_work_is_not_found(settings, tmp_path):
    """Reading, fingerprinting, failing, removing and re-policing a work share one lookup: an
    unknown id (or not an id at all) is NotFound everywhere; a removed work is still found,
    except by a policy change."""
    from index.registry import fail_pending_work

    for missing in ("00000000-0000-0000-0000-000000000000", "not-a-uuid"):
        for call in (lambda: index.get_work(missing, settings=settings),
                     lambda: index.process_pending_work(missing, settings=settings),
                     lambda: fail_pending_work(missing, "died", settings=settings),
                     lambda: index.remove_work(missing, settings=settings),
                     lambda: index.set_work_policy(missing, "block", settings=settings)):
            with pytest.raises(NotFound, match=f"no work with id {missing}"):
                call()
    work = index.register_work(write_image(tmp_path / "cat.png", photo("chelsea")), owner="o",
                               title="t", policy="review", settings=settings)
    wid = str(work["id"])
    assert index.remove_work(wid, settings=settings)["status"] == "removed"
    assert index.remove_work(wid, settings=settings)["status"] == "removed"  # again: no error
    assert index.get_work(wid, settings=settings)["status"] == "removed"
    assert fail_pending_work(wid, "died", settings=settings)["status"] == "removed"
    with pytest.raises(NotFound):
        index.set_work_policy(wid, "block", settings=settings)

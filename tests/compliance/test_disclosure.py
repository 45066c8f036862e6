"""What a generator key learns about protected works from a check (issue 15): the works that
decided the verdict, by default; never the nearest misses of an unrelated clip. Admins and
reviewers see everything."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from clipgate import apikeys
from clipgate.app import create_app
from tests.media import noise_frame, photo, write_image

SECRET_TITLE = "Unreleased sequel key art"


def _keys(settings) -> dict[str, str]:
    return {role: apikeys.create_key(f"k-{role}", role=role, settings=settings)[1]
            for role in ("admin", "generator")}


def _check(c: TestClient, key: str, path) -> dict:
    r = c.post("/v1/checks", files={"file": (path.name, path.read_bytes(), "image/png")},
               headers={"X-API-Key": key})
    assert r.status_code == 200, r.text
    return r.json()


def _names(check: dict) -> str:
    return repr({k: check.get(k) for k in ("reasons", "matches", "rules", "decided_by",
                                          "candidates")})


@pytest.fixture
def registered(settings, tmp_path):
    keys = _keys(settings)
    c = TestClient(create_app(settings))
    for title, name, policy in ((SECRET_TITLE, "astronaut", "block"),
                                ("Coffee still life", "coffee", "allow")):
        img = write_image(tmp_path / f"{name}.png", photo(name, (320, 240)))
        r = c.post("/v1/works", files={"file": (img.name, img.read_bytes(), "image/png")},
                   data={"owner": "Studio", "title": title, "policy": policy},
                   headers={"X-API-Key": keys["admin"]})
        assert r.status_code == 201, r.text
    return c, keys


def test_an_unrelated_clip_names_no_work_to_a_generator(settings, tmp_path, registered):
    c, keys = registered
    clip = write_image(tmp_path / "noise.png", noise_frame(11, (320, 240)))
    admin = _check(c, keys["admin"], clip)
    assert admin["verdict"] == "release" and admin["candidates"], admin
    assert any("title" in cand for cand in admin["candidates"])  # the operator sees them
    gen = _check(c, keys["generator"], clip)
    assert gen["verdict"] == "release" and len(gen["candidates"]) == len(admin["candidates"])
    assert all("title" not in cand and "work_id" not in cand for cand in gen["candidates"])
    assert SECRET_TITLE not in _names(gen) and "Coffee" not in _names(gen)
    # Read back, the same rule applies.
    again = c.get(f"/v1/checks/{gen['check_id']}", headers={"X-API-Key": keys["generator"]})
    assert SECRET_TITLE not in _names(again.json()) and "Coffee" not in _names(again.json())


def test_the_work_that_decided_a_block_is_named_to_the_generator(settings, tmp_path,
                                                                 registered):
    c, keys = registered
    copy = write_image(tmp_path / "copy.png", photo("astronaut", (320, 240)))
    gen = _check(c, keys["generator"], copy)
    assert gen["verdict"] == "block"
    (m,) = [m for m in gen["matches"] if "title" in m]
    assert m["title"] == SECRET_TITLE and gen["decided_by"][0]["title"] == SECRET_TITLE
    assert any(SECRET_TITLE in r for r in gen["reasons"])
    assert "Coffee" not in _names(gen)


def test_the_disclosure_setting(settings, tmp_path, registered):
    from compliance.disclosure import for_role

    check = {"verdict": "block", "reasons": ['matches "A" (o): block', 'matches "B" (o): allow'],
             "rules": [{"work_id": "a", "title": "A", "owner": "o", "outcome": "block"},
                       {"work_id": "b", "title": "B", "owner": "o", "outcome": "release"}],
             "matches": [{"work_id": "a", "title": "A", "owner": "o"},
                         {"work_id": "b", "title": "B", "owner": "o"}],
             "candidates": [{"work_id": "c", "title": "C", "score": 0.2}]}
    every = for_role(check, "generator", settings.model_copy(update={"check_disclosure": "all"}))
    assert [m.get("title") for m in every["matches"]] == ["A", "B"]
    assert every["candidates"] == [{"score": 0.2}]
    none = for_role(check, "generator", settings.model_copy(update={"check_disclosure": "none"}))
    assert "A" not in _names(none) and "B" not in _names(none)
    assert for_role(check, "reviewer", settings) is check


def test_a_match_without_its_name_is_a_valid_answer(settings, tmp_path):
    """With CLIPGATE_CHECK_DISCLOSURE=none the matches lose their names; the typed answer must
    still validate (it was a 500: the response model required work_id; found by the fuzz suite)."""
    settings = settings.model_copy(update={"check_disclosure": "none"})
    keys = _keys(settings)
    c = TestClient(create_app(settings))
    img = write_image(tmp_path / "astronaut.png", photo("astronaut", (320, 240)))
    r = c.post("/v1/works", files={"file": (img.name, img.read_bytes(), "image/png")},
               data={"owner": "Studio", "title": SECRET_TITLE, "policy": "block"},
               headers={"X-API-Key": keys["admin"]})
    assert r.status_code == 201, r.text
    gen = _check(c, keys["generator"], img)
    assert gen["verdict"] == "block" and gen["matches"]
    assert SECRET_TITLE not in _names(gen) and all("work_id" not in m for m in gen["matches"])

"""The dev corpus's variant check: a repainted or recoloured copy of a picture is one work with
it (never a work and a "negative"), an unrelated picture is not, and SIFT's verdicts survive in
the cache so that a rebuild does not pay for them again."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image, ImageEnhance

from bench.quality.corpus import distinct_variants, local_images
from bench.quality.variants import Variants


def _photo(name: str) -> Image.Image:
    path = next(p for p in local_images() if p.name == name)
    return Image.open(path).convert("RGB").resize((512, 512))


@pytest.fixture
def pictures(tmp_path: Path) -> dict[str, Path]:
    original = _photo("astronaut.png")
    # Like trow_intro_01 and _02: the left 45% painted over with another scene, the rest kept
    # but darker.
    repainted = ImageEnhance.Brightness(original).enhance(0.7)
    repainted.paste(_photo("coffee.png").crop((0, 0, 230, 512)), (0, 0))
    out = {}
    for name, im in {"original": original, "repainted": repainted,
                     "unrelated": _photo("chelsea.png")}.items():
        out[name] = tmp_path / f"{name}.png"
        im.save(out[name])
    return out


def test_a_repainted_copy_is_a_variant_and_an_unrelated_picture_is_not(pictures, tmp_path):
    v = Variants(tmp_path)
    assert v.same_sift(pictures["repainted"], pictures["original"])
    inliers, spread, scale = v.sift_fit(pictures["repainted"], pictures["original"])
    assert inliers >= 30 and spread >= 0.10 and scale == pytest.approx(1.0, abs=0.05)
    assert not v.same(pictures["unrelated"], pictures["original"])
    assert not v.same(pictures["unrelated"], pictures["repainted"])


def test_distinct_variants_keeps_the_first_and_names_what_it_dropped(pictures, tmp_path):
    paths = [pictures["original"], pictures["unrelated"], pictures["repainted"]]
    kept, found = distinct_variants(paths, Variants(tmp_path))
    assert kept == [pictures["original"], pictures["unrelated"]]
    assert found == [(pictures["repainted"], pictures["original"])]


def test_sift_verdicts_are_kept_between_builds(pictures, tmp_path):
    cache = tmp_path / "variants.json"
    first = Variants(tmp_path, cache)
    fit = first.sift_fit(pictures["repainted"], pictures["original"])
    first.save()
    assert cache.is_file()
    # The pictures are gone: only the cache can answer.
    for p in pictures.values():
        p.unlink()
    again = Variants(tmp_path, cache)
    assert again.sift_fit(pictures["repainted"], pictures["original"]) == fit
    with pytest.raises(FileNotFoundError):
        again.sift_fit(pictures["unrelated"], pictures["original"])


def test_a_damaged_cache_is_checked_again(pictures, tmp_path):
    cache = tmp_path / "variants.json"
    cache.write_text("{not json")
    v = Variants(tmp_path, cache)
    assert v.same_sift(pictures["repainted"], pictures["original"])
    fit = v.sift_fit(pictures["repainted"], pictures["original"])
    v.save()  # the damaged file is replaced by a good one
    for p in pictures.values():
        p.unlink()
    assert Variants(tmp_path, cache).sift_fit(pictures["repainted"], pictures["original"]) == fit



def test_a_negative_that_is_a_variant_of_a_work_in_another_package_of_its_group_is_dropped(
        pictures, tmp_path):
    from bench.quality.corpus import Corpus, group, overlapping_negatives

    assert group("wesnoth-1.16-trow") == group("wesnoth-1.16-data") == "wesnoth"
    assert group("plasma-workspace-wallpapers") == group("gnome-backgrounds") == "wallpapers"
    assert group("scratch") == "scratch" and group("wheels") == "wheels"
    # Another wallpaper package ships a zoomed crop of a registered wallpaper (its middle quarter
    # at full size): ORB misses it at the corpus's bar, SIFT (run within the group) finds it.
    cropped = tmp_path / "cropped.png"
    Image.open(pictures["original"]).crop((150, 100, 406, 356)).resize(
        (512, 512), Image.BICUBIC).save(cropped)
    v = Variants(tmp_path)
    assert not v.same_orb(cropped, pictures["original"])
    corpus = Corpus(works=[pictures["original"]], unregistered=[cropped, pictures["unrelated"]],
                    source_of={pictures["original"]: "gnome-backgrounds",
                               cropped: "mate-backgrounds",
                               pictures["unrelated"]: "mate-backgrounds"})
    assert corpus.group_of(cropped) == "wallpapers"
    assert overlapping_negatives(corpus, v) == [cropped]
    # Were the two packages of different groups, only ORB would look and the crop would pass.
    corpus.source_of[pictures["original"]] = "scratch"
    assert overlapping_negatives(corpus, Variants(tmp_path)) == []

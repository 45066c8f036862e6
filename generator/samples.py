"""The toy model's "training data": protected sample works built from photos that ship in scikit-image.

Titles and owners are fictional. The pixels come from skimage's bundled data files (no network).
Six are still images; one is a short animated video made from a still (see generator.short).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from clipgate.errors import BadInput
from generator import encode, short

POLICIES = ("block", "review")
KINDS = ("image", "video")


@dataclass(frozen=True)
class SampleWork:
    """One protected work.

    aliases: lower-case words (or phrases) that, found in a prompt, make the toy model regurgitate it.
    source: file name of the photo in skimage's data directory; for a video, its key still.
    """

    key: str
    title: str
    owner: str
    policy: str
    aliases: tuple[str, ...]
    kind: str
    source: str

    def load_image(self) -> Image.Image:
        """The work as an RGB image (for a video: the still it is made from). A fresh copy each call."""
        return _load_rgb(self.source).copy()


_WORKS: tuple[SampleWork, ...] = (
    SampleWork(
        key="astronaut-portrait", title="Portrait in White", owner="Orbital Heritage Archive",
        policy="block", aliases=("astronaut", "astronauts", "spacesuit", "cosmonaut"),
        kind="image", source="astronaut.png",
    ),
    SampleWork(
        key="chelsea-window", title="Chelsea at the Window", owner="Marigold Pet Photography",
        policy="block", aliases=("cat", "cats", "kitten", "tabby"),
        kind="image", source="chelsea.png",
    ),
    SampleWork(
        key="launch-day", title="Launch Day", owner="Halcyon Aerospace Media",
        policy="block", aliases=("rocket", "rockets", "launchpad", "liftoff"),
        kind="image", source="rocket.jpg",
    ),
    SampleWork(
        key="tissue-study-7", title="Tissue Study No. 7", owner="Vireo Biomedical Imaging",
        policy="block", aliases=("histology", "immunohistochemistry", "micrograph", "microscope"),
        kind="image", source="ihc.png",
    ),
    SampleWork(
        key="morning-cup", title="Morning Cup", owner="Crema & Co. Stock",
        policy="review", aliases=("coffee", "espresso", "latte", "cappuccino"),
        kind="image", source="coffee.png",
    ),
    SampleWork(
        key="fundus-portrait", title="The Inner Eye", owner="Clearview Ophthalmic Imaging",
        policy="review", aliases=("retina", "retinal", "fundus", "eyeball"),
        kind="image", source="retina.jpg",
    ),
    SampleWork(
        key="night-ride", title="Night Ride (animated short)", owner="Redline Animation Studio",
        policy="block", aliases=("motorcycle", "motorcycles", "motorbike", "biker"),
        kind="video", source="motorcycle_left.png",
    ),
)


def sample_works() -> list[SampleWork]:
    """All sample works, in a fixed order."""
    return list(_WORKS)


def get_work(key: str) -> SampleWork:
    """The sample work with this key; ValueError listing the keys if there is none."""
    for work in _WORKS:
        if work.key == key:
            return work
    raise BadInput(f"unknown sample work {key!r}; valid keys: {', '.join(w.key for w in _WORKS)}")


def render_sample_video(work: SampleWork, out_path: Path) -> Path:
    """Write the protected video work (kind "video") as H.264 MP4: 640x360, 24 fps, 6 s. Deterministic."""
    if work.kind != "video":
        raise BadInput(f"sample work {work.key!r} is an {work.kind}, not a video")
    film = animated_short(work)
    frames = (film.frame(i / short.FPS) for i in range(round(short.SECONDS * short.FPS)))
    encode.write_mp4(frames, Path(out_path), fps=short.FPS)
    return Path(out_path)


@lru_cache(maxsize=4)
def animated_short(work: SampleWork) -> short.AnimatedShort:
    """The renderer behind a video work; frame(t) gives the protected frame at t seconds."""
    if work.kind != "video":
        raise BadInput(f"sample work {work.key!r} is not a video")
    return short.AnimatedShort(work.load_image(), seed=0)


@lru_cache(maxsize=16)
def _load_rgb(source: str) -> Image.Image:
    path = _skimage_data_dir() / source
    if not path.is_file():
        raise FileNotFoundError(f"sample photo {source} is missing from scikit-image's data at {path}")
    with Image.open(path) as image:
        image.load()
        if image.mode == "RGB":
            return image.copy()
        return Image.fromarray(np.asarray(image.convert("RGB")))


def _skimage_data_dir() -> Path:
    # Locate the package without importing it: skimage's import is slow and we only need its files.
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-image is not installed; its bundled photos are the sample works")
    return Path(next(iter(spec.submodule_search_locations))) / "data"

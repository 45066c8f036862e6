"""Shared fixtures for the generator tests: clips are generated once per session, into a temp dir."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from generator import GeneratedClip, GenerationRequest, get_generator, render_sample_video
from generator.samples import get_work

ORDINARY_PROMPT = "a calm ocean at sunset with drifting lights"


def _decode(path: Path) -> tuple[list[np.ndarray], dict]:
    """All frames of path as (h, w, 3) uint8 RGB, plus the stream's width, height and fps."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        info = {"width": stream.width, "height": stream.height, "fps": float(stream.average_rate),
                "codec": stream.codec_context.name, "pix_fmt": stream.codec_context.pix_fmt}
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    return frames, info


def _thumb(image: Image.Image | np.ndarray) -> np.ndarray:
    """Grey 16x9 box-filtered thumbnail as float32: what the closeness checks compare."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    return np.asarray(image.convert("L").resize((16, 9), Image.Resampling.BOX), np.float32)


@pytest.fixture(scope="session")
def decode():
    """decode(path) -> (frames as (h, w, 3) uint8 RGB, {"width", "height", "fps", "codec", "pix_fmt"})."""
    return _decode


@pytest.fixture(scope="session")
def thumb_mae():
    """thumb_mae(a, b): mean absolute grey difference of 16x9 thumbnails of two images or frames (0-255)."""
    return lambda a, b: float(np.abs(_thumb(a) - _thumb(b)).mean())


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("generator-clips")


@pytest.fixture(scope="session")
def make_clip(clip_dir):
    """Generate (and cache per request) a clip: make_clip(prompt, **request_fields) -> GeneratedClip."""
    cache: dict[GenerationRequest, GeneratedClip] = {}
    generator = get_generator()

    def make(prompt: str, **fields) -> GeneratedClip:
        request = GenerationRequest(prompt, **fields)
        if request not in cache:
            cache[request] = generator.generate(request, clip_dir / f"clip-{len(cache)}.mp4")
        return cache[request]

    return make


@pytest.fixture(scope="session")
def ordinary_prompt() -> str:
    return ORDINARY_PROMPT


@pytest.fixture(scope="session")
def ordinary_clip(make_clip) -> GeneratedClip:
    return make_clip(ORDINARY_PROMPT)


@pytest.fixture(scope="session")
def night_ride_video(clip_dir) -> Path:
    """The protected video work, rendered once per session."""
    return render_sample_video(get_work("night-ride"), clip_dir / "protected" / "night-ride.mp4")

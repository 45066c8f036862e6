"""The generator's public surface: request validation, the registry, clip identity."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

import generator
from generator import GeneratedClip, GenerationRequest, Generator, available_backends, get_generator


def test_public_surface_is_named_in_init():
    for name in ("GenerationRequest", "GeneratedClip", "Generator", "get_generator", "available_backends",
                 "SampleWork", "sample_works", "render_sample_video"):
        assert name in generator.__all__
        assert hasattr(generator, name)


def test_registry_lists_procedural_and_returns_a_generator():
    assert "procedural" in available_backends()
    backend = get_generator()
    assert isinstance(backend, Generator)
    assert (backend.name, backend.version, backend.device) == ("clipgate-procedural", "0.1.0", "cpu")


def test_unknown_backend_raises_value_error_listing_choices():
    with pytest.raises(ValueError) as excinfo:
        get_generator("sora-9000")
    message = str(excinfo.value)
    assert "sora-9000" in message
    for name in available_backends():
        assert name in message


def test_registered_backend_is_resolvable():
    class Fake:
        name, version, device = "fake", "0", "cpu"

        def generate(self, request, out_path):  # pragma: no cover - never called
            raise NotImplementedError

    generator.register_backend("fake-for-test", Fake)
    try:
        assert "fake-for-test" in available_backends()
        assert isinstance(get_generator("fake-for-test"), Fake)
    finally:
        generator.unregister_backend("fake-for-test")
    assert "fake-for-test" not in available_backends()


@pytest.mark.parametrize(
    "fields",
    [
        {"prompt": ""},
        {"prompt": "   "},
        {"prompt": "x", "seconds": 0},
        {"prompt": "x", "seconds": 1000},
        {"prompt": "x", "width": 641},
        {"prompt": "x", "height": 10},
        {"prompt": "x", "fps": 0},
        {"prompt": "x", "seed": -1},
    ],
)
def test_bad_requests_raise_value_error(fields):
    with pytest.raises(ValueError):
        GenerationRequest(**fields)


def test_seed_defaults_to_one_derived_from_the_prompt():
    a, b = GenerationRequest("a red kite"), GenerationRequest("a red kite")
    assert a.effective_seed() == b.effective_seed()
    assert a.effective_seed() != GenerationRequest("a blue kite").effective_seed()
    assert GenerationRequest("a red kite", seed=7).effective_seed() == 7
    assert GenerationRequest("x", seconds=4, fps=24).frames == 96


def test_identity_carries_the_prompt_hash_not_the_prompt():
    prompt = "a secret prompt about a lighthouse"
    clip = GeneratedClip(
        path=Path("x.mp4"), model="clipgate-procedural", version="0.1.0",
        prompt_sha256=generator.prompt_sha256(prompt), duration_s=4.0, width=640, height=360, fps=24,
        frames=96, device="cpu", wall_s=0.5, gpu_seconds=0.0,
    )
    identity = clip.identity()
    assert set(identity) == {"model", "version", "prompt_sha256", "device"}
    assert identity["prompt_sha256"] == hashlib.sha256(prompt.encode()).hexdigest()
    assert prompt not in repr(identity)
    assert clip.memorised == [] and clip.reuse_spans == []

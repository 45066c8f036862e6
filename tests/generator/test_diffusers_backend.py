"""The diffusers backend end to end on tiny random-weight LTX-Video and Wan pipelines saved to a
local folder: load, generate a few frames on the CPU, encode, and run a whole generation job with
one. The `gpu` tests run them on CUDA in bf16 and fp16 and are skipped without CUDA."""

from __future__ import annotations

import pytest
import torch

from clipgate.errors import Unavailable
from generator import GenerationRequest, get_generator, tenants
from generator.admission import admit
from generator.diffusers_backend import DiffusersGenerator, to_uint8_frames
from generator.worker import run_inprocess
from tests.generator.tiny_pipeline import BUILDERS, save_tiny_ltx


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return save_tiny_ltx(tmp_path_factory.mktemp("tiny-ltx"))


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def any_model(request, tmp_path_factory):
    """(pipeline class name, folder) for each tiny pipeline."""
    folder = BUILDERS[request.param](tmp_path_factory.mktemp(f"tiny-{request.param}"))
    return {"ltx": "LTXPipeline", "wan": "WanPipeline"}[request.param], folder


def test_generates_a_clip_from_a_local_pipeline_on_cpu(any_model, tmp_path, decode):
    cls, model_dir = any_model
    g = DiffusersGenerator(model_dir, device="cpu", dtype="bf16", steps=2, guidance=3.0)
    assert g.name == f"diffusers:{cls}:{model_dir.name}" and g.dtype == "float32"
    seen = []
    clip = g.generate(GenerationRequest("a red kite", seconds=1.0, width=96, height=64, fps=8,
                                        seed=3), tmp_path / "a.mp4", progress=seen.append)
    frames, info = decode(clip.path)
    # 8 frames asked; LTX's VAE compresses time by 8 (Wan's by 4) and needs tk + 1: 9 come out.
    assert clip.frames == len(frames) == 9 and (info["width"], info["height"]) == (96, 64)
    assert info["codec"] == "h264" and clip.device == "cpu" and clip.gpu_seconds == 0.0
    assert seen == [0.5, 1.0]
    assert clip.identity()["model"].startswith(f"diffusers:{cls}")
    again = g.generate(GenerationRequest("a red kite", seconds=1.0, width=96, height=64, fps=8,
                                         seed=3), tmp_path / "b.mp4")
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()  # seeded


def test_a_generation_job_runs_on_the_diffusers_backend(settings, model_dir):
    s = settings.model_copy(update={"generator_backend": "diffusers", "diffusers_model_dir":
                                    model_dir, "diffusers_device": "cpu", "diffusers_steps": 2})
    tenants.create_tenant("acme", tier="pro", credits_gpu_s=60, settings=s)
    job = admit(tenant="acme", user="u", idempotency_key="k", prompt="a lighthouse in fog",
                params={"seconds": 1.0, "width": 64, "height": 64, "fps": 8}, settings=s).job
    done = run_inprocess(str(job["id"]), s)
    assert done["state"] == "released", done["error"]
    assert done["generator"]["model"].startswith("diffusers:LTXPipeline")
    assert done["backend"] == "diffusers" and done["release_id"]


def test_missing_or_wrong_model_folder_is_a_clear_error(settings, tmp_path):
    with pytest.raises(Unavailable, match="CLIPGATE_DIFFUSERS_MODEL_DIR"):
        get_generator("diffusers", settings)
    with pytest.raises(Unavailable, match="model_index.json is missing"):
        DiffusersGenerator(tmp_path, device="cpu")


def test_frames_of_any_pipeline_output_become_even_uint8():
    import numpy as np

    out = to_uint8_frames(np.full((1, 3, 33, 47, 3), 0.5, np.float32))
    assert out.shape == (3, 32, 46, 3) and out.dtype == np.uint8 and out[0, 0, 0, 0] == 128
    with pytest.raises(Unavailable):
        to_uint8_frames(np.zeros((1, 3, 8, 8), np.float32))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", ["bf16", "fp16"])
def test_generates_on_cuda_in_half_precision_and_reports_gpu_seconds(any_model, tmp_path, dtype,
                                                                      decode):
    g = DiffusersGenerator(any_model[1], device="cuda", dtype=dtype, steps=2)
    assert g.dtype == {"bf16": "bfloat16", "fp16": "float16"}[dtype]
    clip = g.generate(GenerationRequest("a red kite", seconds=1.0, width=64, height=64, fps=8),
                      tmp_path / "g.mp4")
    frames, _ = decode(clip.path)
    assert len(frames) == clip.frames == 9 and clip.device == "cuda" and clip.gpu_seconds > 0

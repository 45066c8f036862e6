"""Backend "diffusers": any text-to-video pipeline of the diffusers library (CogVideoX, LTX-Video,
Wan, ...) loaded from a LOCAL folder (CLIPGATE_DIFFUSERS_MODEL_DIR, as `save_pretrained` writes
it). Nothing is ever downloaded.

On CUDA it runs in bf16 or fp16 (CLIPGATE_DIFFUSERS_DTYPE) and reports the GPU-seconds the clip
cost (wall time of the pipeline with the GPU synchronised, times one GPU). On the CPU it runs in
fp32 and reports 0 GPU-seconds.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from clipgate.errors import BadInput, Unavailable
from clipgate.settings import Settings, get_settings
from generator import encode
from generator.base import GeneratedClip, GenerationRequest, prompt_sha256

log = logging.getLogger(__name__)

SIDE_MULTIPLE = 32  # every current video VAE x patch size divides this
_DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}

Progress = Callable[[float], None]  # fraction 0..1 of the denoising steps done


def pipeline_info(model_dir: Path) -> dict[str, Any]:
    """model_index.json of a saved pipeline; Unavailable (a server misconfiguration) if absent."""
    index = Path(model_dir) / "model_index.json"
    if not index.is_file():
        raise Unavailable(f"no diffusers pipeline at {model_dir} (CLIPGATE_DIFFUSERS_MODEL_DIR): "
                          "model_index.json is missing; models are never downloaded")
    return json.loads(index.read_text())


class DiffusersGenerator:
    """Text-to-video through a local diffusers pipeline."""

    device: str

    def __init__(self, model_dir: Path, *, device: str = "auto", dtype: str = "bf16",
                 steps: int = 30, guidance: float = 5.0) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import diffusers  # heavy, and only after HF_HUB_OFFLINE is set: no hub at run time
        import torch  # heavy: loaded with the optional backend only

        info = pipeline_info(model_dir)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if dtype not in _DTYPES:
            raise BadInput(f"diffusers dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
        # Half precision on a CPU is slow and some kernels lack it; the CPU path is for tests.
        torch_dtype = getattr(torch, _DTYPES[dtype]) if device.startswith("cuda") else torch.float32
        self.model_dir = Path(model_dir)
        self.device = device
        self.dtype = str(torch_dtype).removeprefix("torch.")
        self.steps = steps
        self.guidance = guidance
        self.pipe = diffusers.DiffusionPipeline.from_pretrained(
            str(model_dir), dtype=torch_dtype, local_files_only=True)
        self.pipe.to(device)
        if hasattr(self.pipe, "set_progress_bar_config"):
            self.pipe.set_progress_bar_config(disable=True)
        self._params = set(inspect.signature(self.pipe.__call__).parameters)
        if "num_frames" not in self._params or "prompt" not in self._params:
            raise Unavailable(f"{info.get('_class_name')} at {model_dir} is not a text-to-video "
                              "pipeline (its call takes no prompt and num_frames)")
        self.name = f"diffusers:{info.get('_class_name', 'pipeline')}:{self.model_dir.name}"
        self.version = f"diffusers-{diffusers.__version__}"
        # CogVideoX and Wan name it vae_scale_factor_temporal, LTX vae_temporal_compression_ratio.
        self._temporal = int(getattr(self.pipe, "vae_scale_factor_temporal", None)
                             or getattr(self.pipe, "vae_temporal_compression_ratio", None) or 1)
        self._lock = threading.Lock()  # one clip at a time per pipeline: it holds the GPU

    def _frames(self, wanted: int) -> int:
        # Video VAEs compress time by t and need t*k + 1 frames.
        t = self._temporal
        return max(1, round((wanted - 1) / t)) * t + 1 if t > 1 else max(1, wanted)

    def generate(self, request: GenerationRequest, out_path: Path,
                 progress: Progress | None = None) -> GeneratedClip:
        """Run the pipeline for request and encode its frames to an H.264 MP4 at out_path."""
        import torch  # heavy: loaded with the optional backend only

        started = time.perf_counter()
        seed = request.effective_seed()
        width = max(SIDE_MULTIPLE, request.width // SIDE_MULTIPLE * SIDE_MULTIPLE)
        height = max(SIDE_MULTIPLE, request.height // SIDE_MULTIPLE * SIDE_MULTIPLE)
        num_frames = self._frames(request.frames)
        kwargs: dict[str, Any] = {
            "prompt": request.prompt, "num_frames": num_frames, "height": height, "width": width,
            "num_inference_steps": self.steps, "guidance_scale": self.guidance,
            "generator": torch.Generator(device="cpu").manual_seed(seed), "output_type": "np",
        }
        if progress is not None and "callback_on_step_end" in self._params:
            def on_step(pipe: Any, step: int, timestep: Any, cb_kwargs: dict) -> dict:
                progress((step + 1) / self.steps)
                return cb_kwargs
            kwargs["callback_on_step_end"] = on_step
        cuda = self.device.startswith("cuda")
        with self._lock:
            if cuda:
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = self.pipe(**kwargs)
            if cuda:
                torch.cuda.synchronize()
            gpu_seconds = time.perf_counter() - t0 if cuda else 0.0
        frames = to_uint8_frames(out.frames)
        count = encode.write_mp4(iter(frames), Path(out_path), fps=request.fps)
        return GeneratedClip(
            path=Path(out_path), model=self.name, version=self.version,
            prompt_sha256=prompt_sha256(request.prompt), duration_s=count / request.fps,
            width=frames.shape[2], height=frames.shape[1], fps=request.fps, frames=count,
            device=self.device, wall_s=time.perf_counter() - started,
            gpu_seconds=round(gpu_seconds, 4), seed=seed,
        )


def to_uint8_frames(frames: Any) -> np.ndarray:
    """A pipeline's frames (batch of one: (1, F, H, W, 3) floats in [0, 1], as np, torch or a
    list of PIL images) as (F, H, W, 3) uint8 with even sides."""
    if isinstance(frames, list):
        first = frames[0]
        frames = np.stack([np.asarray(f) for f in first]) if isinstance(first, list) else first
    if hasattr(frames, "detach"):
        frames = frames.detach().float().cpu().numpy()
    arr = np.asarray(frames)
    if arr.ndim == 5:
        arr = arr[0]
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise Unavailable(f"the pipeline returned frames of shape {arr.shape}, not (F, H, W, 3)")
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    h, w = arr.shape[1] // 2 * 2, arr.shape[2] // 2 * 2
    return np.ascontiguousarray(arr[:, :h, :w])


_loaded: dict[tuple, DiffusersGenerator] = {}
_loaded_lock = threading.Lock()


def from_settings(settings: Settings | None = None) -> DiffusersGenerator:
    """The pipeline named by the settings, loaded once per process (loading takes minutes on a
    real model)."""
    settings = settings or get_settings()
    if settings.diffusers_model_dir is None:
        raise Unavailable("the diffusers backend needs CLIPGATE_DIFFUSERS_MODEL_DIR: a local "
                          "folder holding a saved text-to-video pipeline")
    key = (str(settings.diffusers_model_dir), settings.diffusers_device, settings.diffusers_dtype,
           settings.diffusers_steps, settings.diffusers_guidance)
    with _loaded_lock:
        if key not in _loaded:
            _loaded[key] = DiffusersGenerator(
                settings.diffusers_model_dir, device=settings.diffusers_device,
                dtype=settings.diffusers_dtype, steps=settings.diffusers_steps,
                guidance=settings.diffusers_guidance)
        return _loaded[key]

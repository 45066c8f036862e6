"""The generator interface: request and result types, the backend Protocol, and the backend registry.

Every backend (the CPU procedural stand-in now, GPU diffusers models later) takes a
GenerationRequest and writes one H.264 MP4, answering with a GeneratedClip.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from clipgate.errors import BadInput
from clipgate.prompts import prompt_sha256

MAX_SECONDS = 60.0
MIN_SIDE, MAX_SIDE = 64, 3840
MAX_FPS = 60


@dataclass(frozen=True)
class GenerationRequest:
    """What to generate. Sizes in pixels (both even), duration in seconds.

    seed None: derived from the prompt, so the same prompt always gives the same clip.
    """

    prompt: str
    seconds: float = 4.0
    width: int = 640
    height: int = 360
    fps: int = 24
    seed: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise BadInput("prompt must be a non-empty string")
        if not 0 < self.seconds <= MAX_SECONDS:
            raise BadInput(f"seconds must be in (0, {MAX_SECONDS:g}], got {self.seconds!r}")
        for name in ("width", "height"):
            value = getattr(self, name)
            # yuv420p needs even sides; say so here rather than deep in the encoder.
            if not isinstance(value, int) or not MIN_SIDE <= value <= MAX_SIDE or value % 2:
                raise BadInput(f"{name} must be an even integer in [{MIN_SIDE}, {MAX_SIDE}], got {value!r}")
        if not isinstance(self.fps, int) or not 1 <= self.fps <= MAX_FPS:
            raise BadInput(f"fps must be an integer in [1, {MAX_FPS}], got {self.fps!r}")
        if self.seed is not None and (not isinstance(self.seed, int) or self.seed < 0):
            raise BadInput(f"seed must be a non-negative integer or None, got {self.seed!r}")

    @property
    def frames(self) -> int:
        """Number of frames the clip will have (at least 1)."""
        return max(1, round(self.seconds * self.fps))

    def effective_seed(self) -> int:
        """The seed actually used: the given one, or 63 bits of the prompt's sha256."""
        if self.seed is not None:
            return self.seed
        return int(prompt_sha256(self.prompt)[:16], 16) >> 1


@dataclass
class GeneratedClip:
    """One generated clip on disk and what made it. Times in seconds.

    memorised and reuse_spans are ground truth for demos and tests (which sample works the clip
    copied, and where, as (key, start_s, end_s)); the gate never reads them.
    """

    path: Path
    model: str
    version: str
    prompt_sha256: str
    duration_s: float
    width: int
    height: int
    fps: int
    frames: int
    device: str
    wall_s: float
    gpu_seconds: float
    seed: int | None = None
    memorised: list[str] = field(default_factory=list)
    reuse_spans: list[tuple[str, float, float]] = field(default_factory=list)

    def identity(self) -> dict[str, str]:
        """What goes into the C2PA manifest: the model and the prompt's hash, never the prompt."""
        return {
            "model": self.model,
            "version": self.version,
            "prompt_sha256": self.prompt_sha256,
            "device": self.device,
        }


@runtime_checkable
class Generator(Protocol):
    """A text-to-video backend. generate() writes an H.264 MP4 at out_path and describes it."""

    name: str
    version: str
    device: str

    def generate(self, request: GenerationRequest, out_path: Path) -> GeneratedClip: ...


# Registry name -> "module:attribute" of a zero-argument factory. Resolved lazily so that naming a
# GPU backend here never imports torch for callers that only want the CPU one.
_BUILTIN: dict[str, str] = {
    "procedural": "generator.procedural:ProceduralGenerator",
    "diffusers": "generator.diffusers_backend:from_settings",
}
# Builtins whose factory takes the Settings (where their model lives).
_TAKES_SETTINGS = {"diffusers"}
_REGISTERED: dict[str, Callable[[], Generator]] = {}


def register_backend(name: str, factory: Callable[[], Generator]) -> None:
    """Add (or replace) a backend under `name`; factory takes no arguments."""
    if not name or not name.strip():
        raise BadInput("backend name must be non-empty")
    _REGISTERED[name] = factory


def unregister_backend(name: str) -> None:
    """Remove a backend added with register_backend (a builtin stays); no error if absent."""
    _REGISTERED.pop(name, None)


def available_backends() -> list[str]:
    """Names get_generator accepts, sorted."""
    return sorted(set(_BUILTIN) | set(_REGISTERED))


def get_generator(name: str = "procedural", settings: Any = None) -> Generator:
    """A backend by registry name (settings: for backends that load a model, else ignored); an
    unknown name raises BadInput listing the choices."""
    if name in _REGISTERED:
        return _REGISTERED[name]()
    target = _BUILTIN.get(name)
    if target is None:
        choices = ", ".join(available_backends())
        raise BadInput(f"unknown generator backend {name!r}; valid choices: {choices}")
    module_name, attr = target.split(":")
    factory = getattr(importlib.import_module(module_name), attr)
    return factory(settings) if name in _TAKES_SETTINGS else factory()

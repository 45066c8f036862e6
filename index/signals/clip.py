"""CLIP image embeddings (open_clip) as a signal: only where real weights are configured.

Without a checkpoint CLIP measures nothing, so by default (`CLIPGATE_CLIP=auto`) it is not even
computed; `on` forces it (tests), with random weights that are reported and never counted; `off`
disables it. With a checkpoint it counts like any other global signal, at its model's threshold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

import numpy as np

from index.embedder import ClipEmbedder, get_embedder
from index.signals.base import Computed, Kind, Signal

if TYPE_CHECKING:
    from clipgate.settings import Settings


class ClipSignal(Signal):
    name: ClassVar[str] = "clip"
    kind: ClassVar[Kind] = "float"
    search_k: ClassVar[int] = 8

    @classmethod
    def enabled(cls, settings: Settings) -> bool:
        return mode(settings) != "off"

    @property
    def embedder(self) -> ClipEmbedder:
        s = self.settings
        return get_embedder(s.clip_model, s.clip_checkpoint, s.clip_device, s.clip_batch_size)

    @property
    def version(self) -> str:
        return self.embedder.info.id

    @property
    def dim(self) -> int:
        return self.embedder.info.dim

    @property
    def counts(self) -> bool:
        return not self.embedder.info.random

    @property
    def threshold(self) -> float:
        return clip_threshold(self.settings)

    @property
    def candidate_floor(self) -> float | None:
        return -1.0  # CLIP's nearest always go to the geometric check (when CLIP counts)

    @property
    def proposals(self) -> int:
        return self.settings.orb_clip_candidates

    def compute(self, frames: list[np.ndarray]) -> Computed:
        return Computed(self.embedder.embed(frames))

    def describe(self) -> dict[str, object]:
        info = self.embedder.info
        return {"version": self.version, "counts": self.counts, "model": info.model,
                "weights": info.weights}


def mode(settings: Settings) -> str:
    """"on" or "off" as set; "auto" is "on" with a checkpoint and "off" without."""
    if settings.clip == "auto":
        return "on" if settings.clip_checkpoint is not None else "off"
    return settings.clip


def clip_threshold(settings: Settings) -> float:
    """The cosine at which CLIP fires, for the configured model."""
    return settings.clip_model_min_similarity.get(settings.clip_model,
                                                  settings.clip_min_similarity)


def status(settings: Settings) -> dict[str, object]:
    """What health, results and the demo report say about CLIP, without loading it."""
    ckpt = settings.clip_checkpoint
    m = mode(settings)
    out: dict[str, object] = {
        "mode": settings.clip,
        "computed": m == "on",
        "counted": m == "on" and ckpt is not None,
        "model": settings.clip_model,
        "weights": "checkpoint" if ckpt else ("random" if m == "on" else None),
    }
    if m == "off" and settings.clip == "auto":
        out["note"] = ("CLIP is not computed: no CLIPGATE_CLIP_CHECKPOINT is set, and without "
                       "real weights it measures nothing")
    elif m == "on" and ckpt is None:
        out["note"] = ("CLIP runs with RANDOM weights (CLIPGATE_CLIP=on without a checkpoint): "
                       "its similarities mean nothing and never count")
    return out

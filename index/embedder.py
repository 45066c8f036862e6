"""CLIP image embeddings with open_clip, from a local checkpoint or (loudly) random weights."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from clipgate.errors import BadInput, Unavailable
from clipgate.files import sha256_file

log = logging.getLogger(__name__)

RANDOM_WEIGHTS_WARNING = (
    "CLIP is running with RANDOM weights (no CLIPGATE_CLIP_CHECKPOINT set): its similarities "
    "mean nothing and it does not count towards any verdict; only the hash and local-feature "
    "(ORB) signals decide."
)
# Random weights must be the same in every process, or embeddings stored by one worker would not
# be comparable with those computed by another.
_RANDOM_SEED = 0


@dataclass(frozen=True)
class EmbedderInfo:
    model: str
    weights: str  # "random" or "checkpoint"
    checkpoint_sha256: str | None
    dim: int
    device: str

    @property
    def id(self) -> str:
        """Identifies the embedding space: two embedders with the same id give comparable vectors."""
        tag = self.checkpoint_sha256[:16] if self.checkpoint_sha256 else f"random-seed{_RANDOM_SEED}"
        return f"{self.model}:{tag}"

    @property
    def random(self) -> bool:
        return self.weights == "random"


class ClipEmbedder:
    """Embeds batches of RGB frames into L2-normalised float32 vectors of shape (n, dim)."""

    def __init__(
        self, model: str, checkpoint: Path | None, device: str = "auto", batch_size: int = 32
    ) -> None:
        # No network at run time: open_clip must never reach for a model hub.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        import open_clip  # heavy, and only after HF_HUB_OFFLINE is set

        if model not in open_clip.list_models():
            choices = ", ".join(sorted(open_clip.list_models())[:12])
            raise BadInput(f"unknown CLIP model {model!r} (CLIPGATE_CLIP_MODEL); e.g. {choices}, ...")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.batch_size = batch_size
        digest = None
        if checkpoint is not None:
            checkpoint = Path(checkpoint)
            if not checkpoint.is_file():
                # A server misconfiguration, not the caller's bad input.
                raise Unavailable(
                    f"CLIP checkpoint not found: {checkpoint} (CLIPGATE_CLIP_CHECKPOINT)")
            digest = sha256_file(checkpoint)
            net, _, preprocess = open_clip.create_model_and_transforms(
                model, pretrained=str(checkpoint)
            )
        else:
            torch.manual_seed(_RANDOM_SEED)
            net, _, preprocess = open_clip.create_model_and_transforms(model, pretrained=None)
            log.warning(RANDOM_WEIGHTS_WARNING)
        net.eval().to(self.device)
        if self.device.type == "cuda":
            net = net.half()
        self.net = net
        size = net.visual.image_size
        self.size = size if isinstance(size, int) else size[0]
        mean = getattr(net.visual, "image_mean", None) or open_clip.OPENAI_DATASET_MEAN
        std = getattr(net.visual, "image_std", None) or open_clip.OPENAI_DATASET_STD
        self._mean = torch.tensor(mean, device=self.device).view(1, 3, 1, 1)
        self._std = torch.tensor(std, device=self.device).view(1, 3, 1, 1)
        dim = int(net.visual.output_dim)
        self.info = EmbedderInfo(
            model, "checkpoint" if digest else "random", digest, dim, self.device.type
        )
        self._lock = threading.Lock()  # one forward pass at a time; torch uses every core already

    def embed(self, frames: list[np.ndarray]) -> np.ndarray:
        """frames: RGB uint8 arrays of any size. Returns (n, dim) float32, rows L2-normalised."""
        if not frames:
            return np.zeros((0, self.info.dim), np.float32)
        out = []
        with self._lock, torch.inference_mode():
            for i in range(0, len(frames), self.batch_size):
                batch = self.preprocess(frames[i : i + self.batch_size])
                batch = batch.to(next(self.net.parameters()).dtype)
                feats = self.net.encode_image(batch).float()
                feats = torch.nn.functional.normalize(feats, dim=-1)
                out.append(feats.cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    def preprocess(self, frames: list[np.ndarray]) -> torch.Tensor:
        """What the network is fed: frames (RGB uint8, any size) resized and centre-cropped to
        the model's size and normalised by its mean and std, as (n, 3, size, size) float32 on
        the embedder's device."""
        batch = torch.stack([self._prepare(f) for f in frames])
        return (batch - self._mean) / self._std

    def _prepare(self, rgb: np.ndarray) -> torch.Tensor:
        # Resize the short side to the model's size, then centre-crop: what open_clip's transform
        # does, but on tensors, without a PIL round trip per frame.
        t = torch.from_numpy(np.require(rgb, np.uint8, ["C", "W"])).to(self.device).permute(2, 0, 1).float()
        h, w = t.shape[1:]
        scale = self.size / min(h, w)
        nh, nw = max(self.size, round(h * scale)), max(self.size, round(w * scale))
        t = torch.nn.functional.interpolate(
            t[None], size=(nh, nw), mode="bicubic", align_corners=False, antialias=True
        )[0]
        top, left = (nh - self.size) // 2, (nw - self.size) // 2
        return t[:, top : top + self.size, left : left + self.size].clamp(0, 255) / 255.0


_cache: dict[tuple, ClipEmbedder] = {}
_cache_lock = threading.Lock()


def get_embedder(
    model: str, checkpoint: Path | None, device: str = "auto", batch_size: int = 32
) -> ClipEmbedder:
    """One embedder per (model, checkpoint, device) per process: loading it takes seconds."""
    key = (model, str(checkpoint) if checkpoint else None, device, batch_size)
    with _cache_lock:
        if key not in _cache:
            _cache[key] = ClipEmbedder(model, checkpoint, device, batch_size)
        return _cache[key]

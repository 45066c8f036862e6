"""The peer baseline: PDQ matching as Meta's open-source Hasher-Matcher-Actioner does it, with the
`threatexchange` package's own PDQ signal type and index, frame by frame.

Each registered work's frames (a photo once, a video at the gate's sampling) are hashed with
`PdqSignal.hash_from_bytes` and put in `PdqSignal.get_index_cls()` (a FAISS PDQ index, match
distance 31). A query's sampled frames are hashed the same way and looked up one by one; a work's
score is the number of query frames that matched it, with the closest distance breaking ties.
"""

from __future__ import annotations

import io
from collections.abc import Iterable

import numpy as np
from PIL import Image

from clipgate.quality.metrics import Prediction

PDQ_BITS = 256


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


class ThreatExchangePdq:
    """threatexchange's PDQ signal and index over the works' frames."""

    def __init__(self) -> None:
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

"""Which frames of a video to fingerprint: at a steady rate, at every shot change, and never a
near-copy of the frame kept just before, so a still shot costs one frame, not one a second."""

from __future__ import annotations

import numpy as np


class FrameSampler:
    """Decides, frame by frame, whether to keep it.

    A frame is kept when it is the first, when it differs from the previous decoded frame by more
    than the shot-change threshold (mean absolute difference of 32x32 grey thumbnails, on a 0..1
    scale), or when at least 1/sample_fps seconds passed since the last kept frame, unless it
    differs from that frame by less than skip_threshold and fewer than max_gap_s seconds passed:
    a near-identical frame adds cost and no evidence.
    """

    def __init__(self, *, sample_fps: float, shot_change_threshold: float,
                 skip_threshold: float = 0.0, max_gap_s: float = 0.0) -> None:
        self.period = 1.0 / sample_fps
        self.threshold = shot_change_threshold
        self.skip_threshold = skip_threshold
        self.max_gap_s = max_gap_s
        self._last_kept_t: float | None = None
        self._last_kept: np.ndarray | None = None
        self._prev: np.ndarray | None = None
        self.shot_changes: list[float] = []
        self.skipped = 0

    def take(self, t_s: float, thumb: np.ndarray) -> bool:
        """thumb: (32, 32) uint8 grey thumbnail of the frame at t_s seconds."""
        cur = thumb.astype(np.float32)
        cut = False
        if self._prev is not None:
            cut = float(np.abs(cur - self._prev).mean()) / 255.0 > self.threshold
        self._prev = cur
        if cut:
            self.shot_changes.append(t_s)
        # A small tolerance so a 1 fps rate is not pushed late by timestamp rounding.
        due = self._last_kept_t is None or t_s - self._last_kept_t >= self.period - 1e-3
        if due and not cut and self._last_kept is not None \
                and t_s - self._last_kept_t < self.max_gap_s - 1e-3 \
                and float(np.abs(cur - self._last_kept).mean()) / 255.0 < self.skip_threshold:
            self.skipped += 1
            return False
        if due or cut:
            self._last_kept_t = t_s
            self._last_kept = cur
            return True
        return False

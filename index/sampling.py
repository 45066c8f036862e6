"""Which frames of a video to fingerprint: at a steady rate, and at every shot change."""

from __future__ import annotations

import numpy as np


class FrameSampler:
    """Decides, frame by frame, whether to keep it.

    A frame is kept when it is the first, when at least 1/sample_fps seconds passed since the last
    kept frame, or when it differs from the previous decoded frame by more than the shot-change
    threshold (mean absolute difference of 32x32 grey thumbnails, on a 0..1 scale).
    """

    def __init__(self, *, sample_fps: float, shot_change_threshold: float) -> None:
        self.period = 1.0 / sample_fps
        self.threshold = shot_change_threshold
        self._last_kept_t: float | None = None
        self._prev: np.ndarray | None = None
        self.shot_changes: list[float] = []

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
        if due or cut:
            self._last_kept_t = t_s
            return True
        return False

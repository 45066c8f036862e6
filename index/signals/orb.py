"""The local features' rule: ORB keypoints placed by one transform (index/features.py) count as
evidence by how many of them agree. It is the one signal independent of the global ones: a caption
or a crop moves every global descriptor, and the keypoints of what was copied still agree."""

from __future__ import annotations

from typing import ClassVar

from index.signals.base import Kind, Rule


class OrbRule(Rule):
    name: ClassVar[str] = "orb"
    kind: ClassVar[Kind] = "local"
    group: ClassVar[str] = "local"

    @property
    def threshold(self) -> float:
        return float(self.settings.orb_min_inliers)

    def evidence(self, value: float) -> float:
        # 0.5 at the threshold, towards 1 as more keypoints agree: there is no "perfect" count.
        return value / (value + self.threshold)

    def similarity(self, value: float) -> float:
        return value / (value + self.threshold)

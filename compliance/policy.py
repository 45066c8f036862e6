"""The decision: release, block or review, with the reasons in words."""

from __future__ import annotations

from dataclasses import dataclass

from clipgate.settings import Settings
from compliance.alignment import WorkMatch

VERDICTS = ("release", "block", "review")


@dataclass(frozen=True)
class Decision:
    verdict: str  # one of VERDICTS
    reasons: list[str]


def decide(
    matches: list[WorkMatch], settings: Settings, *, frames_sampled: int, still: bool = False
) -> Decision:
    """Block on a strong match with a `block` work; review on any other match; else release.

    A match is strong when it spans at least block_min_frames matched clip frames (or every frame
    of a clip that has fewer), or a segment that long in seconds at the sampling rate (a held shot
    is sampled once): one stray frame is worth a human look, not an automatic block.
    """
    needed = min(settings.block_min_frames, frames_sampled)
    # A held shot is sampled once however long it lasts: its segment's length counts too.
    long_enough = settings.block_min_frames / settings.sample_fps
    blocking, reviewing = [], []
    for m in matches:
        strong = m.frames_matched >= needed or any(
            s.duration_s >= long_enough - 1e-6 for s in m.segments)
        where = "in the image" if still else "at " + ", ".join(
            f"{s.clip_start:g}-{s.clip_end:g} s" for s in m.segments)
        desc = f'"{m.title}" ({m.owner}): {"+".join(m.signals)} {where}, score {m.score:.3f}'
        if m.policy == "block" and strong:
            blocking.append(f"matches protected work {desc}; its policy is block")
        elif m.policy == "block":
            reviewing.append(
                f"weak match ({m.frames_matched} frame) with protected work {desc}; "
                "a human decides"
            )
        else:
            reviewing.append(f"matches protected work {desc}; its policy is review")
    if blocking:
        return Decision("block", blocking + reviewing)
    if reviewing:
        return Decision("review", reviewing)
    return Decision("release", ["no protected work matched"])

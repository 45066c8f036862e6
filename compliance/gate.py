"""The pre-release gate: fingerprint a clip, search the index, align, decide, record.

Bad input raises BadInput before anything is written. If the index or the database cannot be
reached, Unavailable propagates: the caller releases nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import index
from clipgate import db
from clipgate.settings import Settings, get_settings
from compliance import records
from compliance.alignment import WorkMatch, match_works
from compliance.policy import decide

log = logging.getLogger(__name__)


@dataclass
class CheckResult:
    check_id: str
    verdict: str
    reasons: list[str]
    index_version: int
    created_at: str
    filename: str
    sha256: str
    duration_s: float
    frames_sampled: int
    matches: list[WorkMatch]
    clip: dict[str, Any]  # the CLIP model in use, its weights, and whether it counted
    candidates: list[dict[str, Any]]  # CLIP's nearest works when they did not count
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # The clip's fingerprint, kept so a release can index its frames (never serialised).
    fingerprint: index.Fingerprint | None = field(default=None, repr=False, compare=False)

    def evidence(self) -> dict[str, Any]:
        return {
            "matches": [m.to_dict() for m in self.matches],
            "clip": self.clip,
            "candidates": self.candidates,
            "warnings": self.warnings,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "check_id": self.check_id,
            "verdict": self.verdict,
            "reasons": self.reasons,
            "index_version": self.index_version,
            "created_at": self.created_at,
            "filename": self.filename,
            "sha256": self.sha256,
            "duration_s": self.duration_s,
            "frames_sampled": self.frames_sampled,
            **self.evidence(),
            "timings": self.timings,
        }


@dataclass
class MatchOutcome:
    """What the matcher found for one file, before any decision is recorded."""

    fingerprint: index.Fingerprint
    found: index.SearchResult
    matches: list[WorkMatch]
    candidates: list[dict[str, Any]]
    clip_counts: bool
    timings: dict[str, float]


def match_file(
    path: Path, settings: Settings | None = None, *, disabled: Collection[str] = ()
) -> MatchOutcome:
    """Fingerprint a clip and match it against the protected works: the gate's matcher, which
    claims triage and takedown rescans reuse. Records nothing. Raises BadInput for bad media.
    disabled: signals switched off, for the quality benchmark's ablations (none by default)."""
    settings = settings or get_settings()
    fp = index.fingerprint_file(Path(path), settings, query=True)
    timings = {k: round(v, 4) for k, v in fp.timings.items()}

    t0 = time.perf_counter()
    found = index.search(fp, settings, disabled=disabled)
    timings["search"] = round(time.perf_counter() - t0, 4)

    t0 = time.perf_counter()
    clip_counts = not fp.embedder.random
    matches, candidates = match_works(found, fp.t_s, fp.pdq_quality, settings,
                                      clip_counts=clip_counts, duration_s=fp.info.duration_s)
    timings["aggregate"] = round(time.perf_counter() - t0, 4)
    return MatchOutcome(fp, found, matches, candidates, clip_counts, timings)


def check_clip(
    path: Path,
    *,
    source: str = "api",
    filename: str | None = None,
    settings: Settings | None = None,
) -> CheckResult:
    """Gate one clip and record the check. Raises BadInput for bad media, Unavailable when a part
    the gate needs is down."""
    settings = settings or get_settings()
    path = Path(path)
    outcome = match_file(path, settings)
    fp, found, matches, candidates = (outcome.fingerprint, outcome.found, outcome.matches,
                                      outcome.candidates)
    clip_counts, timings = outcome.clip_counts, outcome.timings

    t0 = time.perf_counter()
    decision = decide(matches, settings, frames_sampled=len(fp), still=fp.info.kind == "image")
    timings["decide"] = round(time.perf_counter() - t0, 4)

    warnings = [index.RANDOM_WEIGHTS_WARNING] if fp.embedder.random else []
    result = CheckResult(
        check_id=str(uuid.uuid4()),
        verdict=decision.verdict,
        reasons=decision.reasons,
        index_version=found.index_version,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        filename=filename or path.name,
        sha256=fp.sha256,
        duration_s=round(fp.info.duration_s, 3),
        frames_sampled=len(fp),
        matches=matches,
        clip={
            "model": fp.embedder.model,
            "weights": fp.embedder.weights,
            "embedder": fp.embedder.id,
            "counted": clip_counts,
        },
        candidates=candidates,
        timings=timings,
        warnings=warnings,
        fingerprint=fp,
    )
    t0 = time.perf_counter()
    with db.connection(settings) as conn:
        records.insert_check(conn, check={
            "id": uuid.UUID(result.check_id),
            "source": source,
            "filename": result.filename,
            "sha256": fp.sha256,
            "size_bytes": fp.size_bytes,
            "duration_s": fp.info.duration_s,
            "frames_sampled": len(fp),
            "verdict": result.verdict,
            "reasons": result.reasons,
            "index_version": result.index_version,
            "embedder": fp.embedder.id,
            "clip_weights": fp.embedder.weights,
            "evidence": result.evidence(),
            "timings": timings,
        })
    timings["record"] = round(time.perf_counter() - t0, 4)
    log.info("check %s: %s (%d matches)", result.check_id, result.verdict, len(matches))
    return result

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
from compliance import metrics as gate_metrics
from compliance import store
from compliance.alignment import WorkMatch, match_works
from compliance.licences import Licensee, licences_for
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
    signals: dict[str, dict[str, Any]]  # each signal used: its version, model, whether it counts
    clip: dict[str, Any]  # CLIP's mode: computed or not, counted or not, and why
    candidates: list[dict[str, Any]]  # the nearest works that did not count
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    # Which rule decided each matched work (a licence or its policy), and those that decided
    # the verdict: what a lawyer follows (compliance.policy).
    rules: list[dict[str, Any]] = field(default_factory=list)
    decided_by: list[dict[str, Any]] = field(default_factory=list)
    licensee: dict[str, Any] | None = None  # the tenant and model the clip was made for
    # The clip's fingerprint, kept so a release can index its frames (never serialised).
    fingerprint: index.Fingerprint | None = field(default=None, repr=False, compare=False)

    def evidence(self) -> dict[str, Any]:
        return {
            "matches": [m.to_dict() for m in self.matches],
            "signals": self.signals,
            "clip": self.clip,
            "candidates": self.candidates,
            "warnings": self.warnings,
            "rules": self.rules,
            "decided_by": self.decided_by,
            "licensee": self.licensee,
        }

    @property
    def licence_ids(self) -> list[str]:
        """The licences that released a matched work."""
        return list(dict.fromkeys(r["licence_id"] for r in self.rules
                                  if r.get("rule") == "licence"))

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
    timings: dict[str, float]


def match_file(
    path: Path, settings: Settings | None = None, *, disabled: Collection[str] = ()
) -> MatchOutcome:
    """Fingerprint a clip and match it against the protected works: the gate's matcher, which
    claims triage and takedown rescans reuse. Records nothing. Raises BadInput for bad media,
    Unavailable when a part it needs (a model, the database) is down.
    disabled: signals or switches turned off, for the quality benchmark's ablations (none by
    default)."""
    settings = settings or get_settings()
    fp = index.fingerprint_file(Path(path), settings, query=True)
    return match_fingerprint(fp, settings, disabled=disabled)


def match_fingerprint(fp: index.Fingerprint, settings: Settings, *,
                      disabled: Collection[str] = ()) -> MatchOutcome:
    """match_file for a query fingerprint already made (the bench matches one several ways)."""
    def lazy() -> float:
        # Local features and crops are made during the search, on demand: their time is theirs.
        return fp.timings.get("features", 0.0) + fp.timings.get("regions", 0.0)

    before, t0 = lazy(), time.perf_counter()
    found = index.search(fp, settings, disabled=disabled)
    search_s = time.perf_counter() - t0 - (lazy() - before)
    timings = {k: round(v, 4) for k, v in fp.timings.items()}
    timings["search"] = round(max(0.0, search_s), 4)

    t0 = time.perf_counter()
    matches, candidates = match_works(found, fp.t_s, settings, duration_s=fp.info.duration_s)
    timings["aggregate"] = round(time.perf_counter() - t0, 4)
    return MatchOutcome(fp, found, matches, candidates, timings)


def check_clip(
    path: Path,
    *,
    source: str = "api",
    filename: str | None = None,
    settings: Settings | None = None,
    licensee: Licensee | None = None,
    model: str | None = None,
) -> CheckResult:
    """Gate one clip and record the check. Raises BadInput for bad media, Unavailable when a part
    the gate needs is down. licensee: the tenant the clip is made for (a generation job), whose
    licences may release matched works; model: the model that made it (model-bound licences)."""
    settings = settings or get_settings()
    path = Path(path)
    outcome = match_file(path, settings)
    fp, found, matches = outcome.fingerprint, outcome.found, outcome.matches
    timings = outcome.timings

    t0 = time.perf_counter()
    held = licences_for(licensee, [{"work_id": m.work_id, "owner": m.owner} for m in matches],
                        settings)
    decision = decide(matches, settings, frames_sampled=len(fp), still=fp.info.kind == "image",
                      licences=held, model=model)
    timings["decide"] = round(time.perf_counter() - t0, 4)

    clip = index.clip_status(settings)
    warnings = [clip["note"]] if clip["computed"] and not clip["counted"] else []
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
        signals=fp.signals,
        clip=clip,
        candidates=outcome.candidates,
        timings=timings,
        warnings=warnings,
        rules=decision.rules,
        decided_by=decision.decided_by,
        licensee=({"tenant_id": licensee.tenant_id, "tenant": licensee.tenant_name,
                   "model": model} if licensee is not None else None),
        fingerprint=fp,
    )
    t0 = time.perf_counter()
    with db.connection(settings) as conn:
        store.insert_check(conn, check={
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
            "signals": fp.versions,
            "evidence": result.evidence(),
            "timings": timings,
        })
    timings["record"] = round(time.perf_counter() - t0, 4)
    gate_metrics.record_check(result.verdict, result.decided_by, timings)
    log.info("check %s: %s (%d matches)", result.check_id, result.verdict, len(matches))
    return result

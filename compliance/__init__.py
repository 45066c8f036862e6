"""Compliance: the gate (check), the decision, C2PA signing of releases, and verification."""

from compliance.alignment import Segment, WorkMatch
from compliance.gate import CheckResult, MatchOutcome, check_clip, match_file, match_fingerprint
from compliance.policy import VERDICTS, decide
from compliance.released import FoundRelease, find_release
from compliance.release import (
    ReleaseOutcome,
    backfill_release_frames,
    generator_identity,
    get_release,
    public_release,
    release_clip,
    release_for_job,
    releases_matching,
    restore_release,
    revoke_release,
    signer,
    sweep_staging,
    verify_clip,
)

__all__ = [
    "VERDICTS",
    "CheckResult",
    "FoundRelease",
    "MatchOutcome",
    "ReleaseOutcome",
    "backfill_release_frames",
    "Segment",
    "WorkMatch",
    "check_clip",
    "decide",
    "find_release",
    "generator_identity",
    "get_release",
    "match_file",
    "match_fingerprint",
    "public_release",
    "release_clip",
    "release_for_job",
    "releases_matching",
    "restore_release",
    "revoke_release",
    "signer",
    "sweep_staging",
    "verify_clip",
]

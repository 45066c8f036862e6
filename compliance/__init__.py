"""Compliance: the gate (check), the decision, C2PA signing of releases, and verification."""

from compliance.alignment import Segment, WorkMatch
from compliance.gate import CheckResult, MatchOutcome, check_clip, match_file, match_fingerprint
from compliance.held import (
    REVIEW_SORTS,
    REVIEW_STATES,
    get_check,
    get_review,
    list_reviews,
    review_for_job,
    review_media,
)
from compliance.licences import (
    Licensee,
    create_licence,
    get_licence,
    list_licences,
    revoke_licence,
    tracked_counts,
)
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
    releases_page,
    restore_release,
    revoke_release,
    signer,
    sweep_staging,
    verify_clip,
)
from compliance.schemas import ReleaseOut
from compliance.review import (
    Reviewer,
    decide_review,
    expire_reviews,
    on_review_decided,
    start_review_timeouts,
)

__all__ = [
    "ReleaseOut",
    "REVIEW_SORTS",
    "REVIEW_STATES",
    "Reviewer",
    "VERDICTS",
    "CheckResult",
    "FoundRelease",
    "Licensee",
    "MatchOutcome",
    "ReleaseOutcome",
    "backfill_release_frames",
    "Segment",
    "WorkMatch",
    "check_clip",
    "create_licence",
    "decide",
    "decide_review",
    "expire_reviews",
    "find_release",
    "generator_identity",
    "get_check",
    "get_licence",
    "get_review",
    "get_release",
    "list_licences",
    "list_reviews",
    "match_file",
    "match_fingerprint",
    "on_review_decided",
    "public_release",
    "release_clip",
    "release_for_job",
    "releases_matching",
    "releases_page",
    "restore_release",
    "review_for_job",
    "review_media",
    "revoke_licence",
    "revoke_release",
    "signer",
    "start_review_timeouts",
    "sweep_staging",
    "tracked_counts",
    "verify_clip",
]

"""What the gate's routes answer, as pydantic models: the verdict and its evidence, releases,
verification reports and held clips. They give the OpenAPI document its shapes (and a generated
client its types); the routes still build plain dicts, which these check on the way out."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from clipgate.api.models import Out, PageOut

Verdict = Literal["release", "block", "review"]


class FramePairOut(Out):
    clip_t: float = Field(description="Seconds into the clip")
    work_t: float = Field(description="Seconds into the work (0 for an image)")
    signals: dict[str, float] = Field(description="Signal -> similarity, 0..1")
    distances: dict[str, float] = Field(
        default_factory=dict, description="Hash signal -> Hamming distance; orb -> inliers")
    region: list[float] | None = Field(
        None, description="Where the copy sits in the clip frame: x0, y0, x1, y1 as parts of 1")
    mirrored: bool = False
    scores: dict[str, float] = Field(default_factory=dict)
    raw: dict[str, float] = Field(default_factory=dict)
    crop: list[float] | None = None


class SegmentOut(Out):
    clip_start: float
    clip_end: float
    work_start: float
    work_end: float
    frames: int
    signals: list[str]


class WorkMatchOut(Out):
    """A protected work the clip matched, with the evidence: segments and frame pairs."""

    # Absent where the key may not learn which work it is (CLIPGATE_CHECK_DISCLOSURE).
    work_id: str | None = None
    title: str | None = None
    owner: str | None = None
    policy: Literal["block", "review", "track", "allow"]
    kind: str
    score: float = Field(description="The best frame pair's similarity, 0..1")
    signals: list[str] = Field(description="Every signal that fired on some frame pair")
    frames_matched: int
    segments: list[SegmentOut] = Field(default_factory=list)
    pairs: list[FramePairOut] = Field(default_factory=list)
    confidence: float = Field(0.0, description="0.5..1, for ranking")
    mirrored: bool = False


class RuleOut(Out):
    """The rule that decided a matched work: a licence in force (licence_id) or its policy."""

    work_id: str | None = None
    rule: str | None = Field(None, description="licence or policy")
    action: str | None = None
    licence_id: str | None = None


class CheckOut(Out):
    """A gate check: the verdict, why, and the evidence."""

    check_id: str
    verdict: Verdict
    reasons: list[str] = Field(description="Why, in words a lawyer can follow")
    index_version: int
    created_at: str
    filename: str | None = None
    sha256: str | None = None
    duration_s: float | None = None
    frames_sampled: int | None = None
    matches: list[WorkMatchOut] = Field(default_factory=list)
    signals: dict[str, dict[str, Any]] = Field(default_factory=dict,
                                               description="Each signal used: version, model")
    clip: dict[str, Any] = Field(default_factory=dict, description="CLIP's mode, and why")
    candidates: list[dict[str, Any]] = Field(default_factory=list,
                                             description="Nearest works that did not count")
    warnings: list[str] = Field(default_factory=list)
    rules: list[RuleOut] = Field(default_factory=list)
    decided_by: list[RuleOut] = Field(default_factory=list)
    licensee: dict[str, Any] | None = None
    timings: dict[str, float] = Field(default_factory=dict, description="Seconds per stage")


class CheckRecordOut(CheckOut):
    """A recorded check read back, with what came of it."""

    source: str | None = None
    release_id: str | None = None
    review_id: str | None = None
    review_state: str | None = None


class ReleaseOut(Out):
    release_id: str
    check_id: str
    status: Literal["active", "revoked"]
    created_at: str
    file_sha256: str
    generator: dict[str, Any] = Field(description="Model, version, prompt hash (never a prompt)")
    revoked_at: str | None = None
    revoked_reason: str | None = None
    restored_at: str | None = None
    download_url: str | None = None


class ReleasePage(PageOut[ReleaseOut]):
    pass


class ReleaseOutcomeOut(Out):
    """POST /v1/releases: released with the signed clip's URL, or the verdict that stopped it."""

    released: bool
    check: CheckOut
    release: ReleaseOut | None = None
    download_url: str | None = None
    verdict: Verdict | None = None
    reasons: list[str] | None = None
    review: dict[str, Any] | None = Field(None, description="The held clip, for a review verdict")


class RecoveryOut(Out):
    """A copy without a valid manifest, traced to its release by its pixels."""

    by: Literal["watermark", "fingerprint"]
    confidence: float = Field(description="0 to 1: how far the watermark bits lean, or the best "
                                          "frame's fingerprint evidence")
    release: ReleaseOut = Field(description="The release it is a copy of, with its status")
    frames_matched: int | None = None
    frames: int | None = None
    manifest: dict[str, Any] | None = Field(None, description="The manifest signed at release")


class VerifyOut(Out):
    file: str
    sha256: str | None = None
    state: str = Field(description="Trusted, Valid, Invalid or NoManifest")
    verdict: str | None = Field(None, description="What this file is, in one sentence")
    verified: bool = Field(description="Trusted, byte for byte an active release")
    file_matches_release: bool | None = None
    validation_errors: list[dict[str, Any]] = Field(default_factory=list)
    timestamp: dict[str, Any] | None = Field(None, description="The RFC 3161 timestamp, if any")
    manifest: dict[str, Any] | None = None
    assertions: dict[str, Any] | None = None
    release: ReleaseOut | None = None
    release_matched_by: str | None = Field(
        None, description="file_sha256, manifest, watermark or fingerprint")
    recovered_by: Literal["watermark", "fingerprint"] | None = None
    recovery: RecoveryOut | None = None


class ReviewOut(Out):
    """A clip held for review, and the decision once made."""

    review_id: str
    check_id: str
    state: Literal["pending", "released", "blocked"]
    revision: int
    created_at: str
    age_s: float
    deadline: str | None = None
    sla_left_s: float | None = Field(None, description="Seconds before the timeout blocks it")
    source: str
    filename: str | None = None
    file_sha256: str | None = None
    generator: dict[str, Any] | None = None
    held_by: dict[str, Any] = Field(description="The works and policies that held it, score")
    decided_at: str | None = None
    decision: dict[str, Any] | None = None
    release_id: str | None = None
    download_url: str | None = None


class ReviewDetailOut(ReviewOut):
    check: CheckRecordOut


class ReviewPage(PageOut[ReviewOut]):
    pass


class ReviewConflictOut(Out):
    detail: str
    review: ReviewDetailOut

"""What the complaints API answers, as pydantic models (for the OpenAPI document and generated
clients): claims in the queue and in full, retraining flags, counter-notices and API keys."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from clipgate.api.models import Out, PageOut
from compliance import ReleaseOut


class Ref(Out):
    id: str
    name: str | None = None


class ClaimWork(Out):
    id: str
    title: str | None = None
    owner: str | None = None


class ClaimSummaryOut(Out):
    """A claim as the queue lists it."""

    id: str
    number: int
    state: str = Field(description="submitted, triaged, in_review, info_requested, upheld, "
                                   "rejected")
    state_since: str
    age_s: float = Field(description="Seconds in its state")
    revision: int
    priority: int | None = Field(None, description="1 (urgent) .. 4, set at triage")
    score: float | None = Field(None, description="The matcher's score for (clip, work)")
    release_id: str | None = None
    work: ClaimWork
    claimant: Ref | None = None
    assignee: Ref | None = None
    duplicate_of: str | None = None
    merged: bool = False
    remedies: list[str] = Field(default_factory=list)
    created_at: str


class ClaimPage(PageOut[ClaimSummaryOut]):
    pass


class ClaimOut(Out):
    """A claim in full: the release, the work, the evidence, the history."""

    id: str
    number: int
    state: str
    state_since: str
    age_s: float
    revision: int
    priority: int | None = None
    score: float | None = None
    release: ReleaseOut | None = None
    work: ClaimWork
    remedies: list[str] = Field(default_factory=list)
    evidence: dict[str, Any] | None = None


class ServiceLevelsOut(Out):
    states: dict[str, dict[str, Any]] = Field(
        description="Per state: count, oldest_s, median_age_s, median_time_in_state_s")


class FlagOut(Out):
    """A retraining flag: a work to take out of the training data, and the models it reached."""

    id: str
    work_id: str
    work_title: str | None = None
    work_owner: str | None = None
    work_sha256: str | None = None
    claim_id: str
    claim_number: int
    model_versions: list[dict[str, Any]] = Field(default_factory=list)
    created_at: str
    handled_at: str | None = None
    handled_by: str | None = None
    handled_note: str | None = None


class FlagPage(PageOut[FlagOut]):
    pass


class CounterNoticeOut(Out):
    id: str
    state: str | None = None


class TrackedUseOut(Out):
    """Released clips that used one of your works under `track` or a licence, for one work,
    rule (and licence), model and tenant."""

    work_id: str
    work_title: str | None = None
    rule: str = Field(description="track (the work's policy) or licence")
    licence_id: str | None = None
    model: str | None = None
    tenant: str | None = None
    clips: int
    last_at: str


class TrackedOut(Out):
    uses: list[TrackedUseOut]
    clips: int = Field(description="All the clips counted above")


class KeyOut(Out):
    """An API key's record (never the key itself)."""

    id: str
    name: str
    role: str
    prefix: str
    created_at: str
    revoked_at: str | None = None
    account_id: str | None = None


class NewKeyOut(KeyOut):
    key: str = Field(description="The key: shown once, stored only as a hash")


class KeyPage(PageOut[KeyOut]):
    pass

"""What the generation API answers, as pydantic models (for the OpenAPI document and generated
clients): jobs, tenants, usage and licences."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from clipgate.api.models import Out


class JobOut(Out):
    """A generation job: its state, progress, timings, GPU-seconds and, once released, the clip."""

    id: str
    tenant: str | None = None
    user: str
    idempotency_key: str
    prompt_sha256: str
    params: dict[str, Any] = Field(default_factory=dict)
    backend: str | None = None
    generator: dict[str, Any] | None = None
    state: str = Field(description="queued, screening, generating, gating, released, blocked, "
                                   "in_review or failed")
    done: bool
    progress: float = Field(description="0..1")
    attempts: int
    error: str | None = None
    warnings: list[Any] | None = None
    verdict: str | None = None
    check_id: str | None = None
    release_id: str | None = None
    gpu_seconds: float
    gate_gpu_seconds: float
    timings: dict[str, Any] | None = None
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    screening: dict[str, Any] | None = None
    review: dict[str, Any] | None = None
    release_url: str | None = None
    download_url: str | None = None


class OverloadedOut(Out):
    detail: str
    retry_after_s: float


class TenantOut(Out):
    id: str
    name: str
    tier: str
    paid: bool
    priority: int
    max_concurrent_jobs: int
    credits_gpu_s: float
    created_at: str


class TenantsOut(Out):
    tenants: list[TenantOut]
    count: int


class UsageOut(Out):
    usage: list[dict[str, Any]] = Field(description="Per tenant: GPU-seconds used and jobs")


class LicenceOut(Out):
    """A licence: a work (or all of an owner's works) for a tenant, maybe one model, a window."""

    licence_id: str
    work_id: str | None = None
    owner: str | None = None
    tenant_id: str
    tenant: str | None = None
    model: str | None = None
    valid_from: str | None = None
    valid_until: str | None = None
    note: str | None = None
    state: str = Field(description="in_force, expired, revoked or not_yet_valid")
    created_at: str | None = None
    revoked_at: str | None = None
    revoked_reason: str | None = None


class LicencesOut(Out):
    licences: list[LicenceOut]
    count: int

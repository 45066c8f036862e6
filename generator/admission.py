"""Admission: whether a new generation job may join the queue, decided before any GPU time.

In order: the prompt and sizes (400), the tenant (404), the idempotency key (same key and prompt:
the first job again; another prompt: 409), the credits (402: the balance less one estimated job
per unfinished job must still cover one more), then load: the tenant's
concurrent-jobs limit and the queue depth the settings declare (429 with Retry-After). Paid tiers
may fill the whole queue; free tiers only `free_tier_queue_share` of it, so paid work still gets
in, and it is claimed first (higher priority) by the workers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from clipgate import db
from clipgate.errors import BadInput, ClipgateError, Conflict
from clipgate.settings import Settings, get_settings
from generator import store
from generator.base import GenerationRequest, available_backends, prompt_sha256
from generator.tenants import tenant_row

MAX_KEY_LEN = 200
MAX_USER_LEN = 200
ACTIVE_STATES = ("queued", "screening", "generating", "gating")


class PaymentRequired(BadInput):
    """The tenant's credits (GPU-seconds) are used up."""

    status = 402


class Forbidden(BadInput):
    """The tenant exists but may not generate (disabled by an operator)."""

    status = 403


class Overloaded(ClipgateError):
    """More demand than the declared capacity: come back after `retry_after` seconds."""

    status = 429

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class Admitted:
    job: dict[str, Any]
    created: bool  # False: an earlier job with the same idempotency key and prompt


def validate_prompt(prompt: Any, settings: Settings) -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise BadInput("prompt must be a non-empty string")
    if len(prompt) > settings.max_prompt_chars:
        raise BadInput(f"prompt is {len(prompt)} characters, over the limit of "
                       f"{settings.max_prompt_chars} (CLIPGATE_MAX_PROMPT_CHARS)")
    return prompt.strip()


def _validate(user: Any, key: Any, backend: str) -> None:
    if not isinstance(user, str) or not user.strip() or len(user) > MAX_USER_LEN:
        raise BadInput(f"user must be 1 to {MAX_USER_LEN} characters")
    if not isinstance(key, str) or not key.strip() or len(key) > MAX_KEY_LEN:
        raise BadInput(f"idempotency_key must be 1 to {MAX_KEY_LEN} characters")
    if backend not in available_backends():
        raise BadInput(f"unknown generator backend {backend!r}; valid: "
                       f"{', '.join(available_backends())}")


def admit(
    *,
    tenant: str,
    user: str,
    idempotency_key: str,
    prompt: str,
    params: dict[str, Any] | None = None,
    backend: str | None = None,
    settings: Settings | None = None,
) -> Admitted:
    """Queue a job, or say why not (BadInput 400, NotFound 404, Conflict 409, PaymentRequired 402,
    Overloaded 429). Nothing is written unless the job is admitted."""
    settings = settings or get_settings()
    prompt = validate_prompt(prompt, settings)
    backend = backend or settings.generator_backend
    _validate(user, idempotency_key, backend)
    params = dict(params or {})
    unknown = set(params) - {"seconds", "width", "height", "fps", "seed"}
    if unknown:
        raise BadInput(f"unknown generation parameters: {', '.join(sorted(unknown))}")
    request = GenerationRequest(prompt, **params)  # validates sizes, fps, duration, seed
    digest = prompt_sha256(prompt)
    with db.connection(settings) as conn:
        # One admission at a time across every API process: the queue-depth check and the
        # insert must see the same queue. Admission is a few small queries, so this costs little.
        store.lock_admissions(conn)
        t = tenant_row(conn, tenant, lock=True)
        if t["disabled_at"] is not None:
            raise Forbidden(f"tenant {tenant!r} is disabled; an operator must enable it")
        existing = store.job_by_key(conn, tenant_id=t["id"], idempotency_key=idempotency_key)
        if existing is not None:
            if existing["prompt_sha256"] != digest:
                raise Conflict(f"idempotency key {idempotency_key!r} was already used for job "
                               f"{existing['id']} with a different prompt",
                               existing_id=str(existing["id"]))
            return Admitted(existing, created=False)
        _check_credits(conn, t, settings)
        _check_load(conn, t, settings)
        job = store.insert_job(
            conn, tenant_id=t["id"], user_ref=user.strip(), idempotency_key=idempotency_key,
            prompt=prompt, prompt_sha256=digest, params=_params(request), backend=backend,
            priority=t["priority"], max_attempts=settings.job_max_attempts)
    return Admitted(job, created=True)


def _params(r: GenerationRequest) -> dict[str, Any]:
    return {"seconds": r.seconds, "width": r.width, "height": r.height, "fps": r.fps,
            "seed": r.seed}


def _check_credits(conn, tenant: dict[str, Any], settings: Settings) -> None:
    """The balance must cover one more job on top of those already admitted and not yet charged.

    Each unfinished job not yet charged for its generation holds back `generation_estimate_s`;
    the ledger stays the truth: a job is charged what it actually used when it is generated."""
    estimate = max(0.0, settings.generation_estimate_s)
    pending = store.uncharged_jobs(conn, tenant_id=tenant["id"], states=list(ACTIVE_STATES))
    balance = float(tenant["credits_gpu_s"])
    reserved = pending * estimate
    if balance <= 0:
        raise PaymentRequired(
            f"tenant {tenant['name']!r} has no GPU credits left ({balance:.1f} GPU-seconds); "
            "an operator grants more with `clipgate tenants grant`")
    if balance - reserved < estimate:
        raise PaymentRequired(
            f"tenant {tenant['name']!r} has {balance:.1f} GPU-seconds of credit, "
            f"{reserved:.1f} of them held for {pending} unfinished job(s); a new job needs "
            f"{estimate:.1f} more (CLIPGATE_GENERATION_ESTIMATE_S). An operator grants more with "
            "`clipgate tenants grant`")


def _check_load(conn, tenant: dict[str, Any], settings: Settings) -> None:
    row = store.job_load(conn, tenant_id=tenant["id"], states=list(ACTIVE_STATES))
    estimate = max(1.0, settings.generation_estimate_s)
    workers = max(1, settings.gpu_workers)
    if row["mine"] >= tenant["max_concurrent_jobs"]:
        raise Overloaded(
            f"tenant {tenant['name']!r} already has {row['mine']} jobs in progress, the most its "
            f"tier ({tenant['tier']}) allows at once; try again when one finishes",
            retry_after=math.ceil(estimate))
    capacity = max(1, settings.generation_queue_capacity)
    limit = capacity if tenant["paid"] else max(1, int(capacity * settings.free_tier_queue_share))
    if row["queued"] >= limit:
        wait = math.ceil((row["queued"] - limit + 1) * estimate / workers)
        raise Overloaded(
            f"the generation queue is full ({row['queued']} jobs waiting; {limit} allowed for "
            f"the {tenant['tier']} tier); try again later", retry_after=max(1, wait))

"""HTTP routes for generation jobs, tenants and usage.

POST /v1/generations admits a job (or says why not, before any GPU time) and queues it: to the
`gpu` workers with a broker, else to a thread of this process. GET shows its progress.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Header, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from clipgate.api import AdminKeyDep, GeneratorKeyDep, SettingsDep, public_url
from clipgate.api.models import (
    AUTH_ERRORS,
    ErrorOut,
    ShapedRoute,
    ValidationErrorOut,
    errors,
)
from clipgate.errors import NotFound
from clipgate.settings import Settings
from clipgate.text import Ident, Name, Note
import compliance
from generator import admission, jobs, licences, tenants, worker
from generator.schemas import (
    JobOut,
    LicenceOut,
    LicencesOut,
    OverloadedOut,
    TenantOut,
    TenantsOut,
    UsageOut,
)

router = APIRouter(prefix="/v1", tags=["generation"], route_class=ShapedRoute)


class GenerationIn(BaseModel):
    prompt: str = Field(description="What to generate (screened against protected works first).")
    tenant: Ident = Field(description="The tenant whose credits pay for it.")
    user: Ident = Field(description="The end user who asked, as the tenant names them.")
    idempotency_key: Ident | None = Field(
        None, description="Same key and prompt returns the first job; or send Idempotency-Key.")
    seconds: float | None = None
    width: int | None = None
    height: int | None = None
    fps: int | None = None
    seed: int | None = None


class TenantIn(BaseModel):
    name: Name
    tier: str = "free"
    credits_gpu_s: float = 0.0


class GrantIn(BaseModel):
    gpu_seconds: float
    note: Note = "grant"


class LicenceIn(BaseModel):
    tenant: Ident = Field(description="The tenant licensed (by name).")
    work_id: str | None = Field(None, description="The work licensed; or give owner.")
    owner: str | None = Field(None, description="License every work of this owner instead.")
    model: str | None = Field(None, description="Only clips made by this model (any if empty).")
    valid_from: dt.datetime | None = Field(
        None, description="Start of the window (ISO 8601; UTC if no zone; default now).")
    valid_until: dt.datetime | None = Field(
        None, description="End of the window (open-ended if empty); must be after the start.")
    note: Note | None = Field(None, description="The agreement it rests on, for people.")


class RevokeIn(BaseModel):
    reason: Note


def _job_id(job_id: str) -> str:
    try:
        return str(uuid.UUID(job_id))
    except ValueError:
        raise NotFound(f"no generation job with id {job_id!r}: not a valid id (a UUID)") from None


def _overloaded(e: admission.Overloaded) -> JSONResponse:
    return JSONResponse({"detail": str(e), "retry_after_s": e.retry_after}, status_code=429,
                        headers={"Retry-After": str(e.retry_after)})


@router.post(
    "/generations",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Queue a text-to-video generation (screened, generated, gated, signed)",
    responses={200: {"description": "The job already made with this idempotency key",
                     "model": JobOut},
               **AUTH_ERRORS,
               **errors(400, 404, 409, e400="Empty or over-long prompt, bad sizes",
                        e404="Unknown tenant",
                        e409="Idempotency key already used with another prompt"),
               402: {"description": "The tenant's GPU credits are used up", "model": ErrorOut},
               429: {"description": "Over capacity: retry after Retry-After seconds",
                     "model": OverloadedOut}},
    response_model=JobOut,
)
async def create_generation(
    body: GenerationIn,
    request: Request,
    response: Response,
    background: BackgroundTasks,
    settings: SettingsDep,
    _key: GeneratorKeyDep,
    idempotency_header: Annotated[str | None, Header(alias="Idempotency-Key")] = None,
) -> Any:
    params = {k: v for k in ("seconds", "width", "height", "fps", "seed")
              if (v := getattr(body, k)) is not None}
    try:
        admitted = await run_in_threadpool(
            admission.admit, tenant=body.tenant, user=body.user,
            idempotency_key=body.idempotency_key or idempotency_header or "",
            prompt=body.prompt, params=params, settings=settings)
    except admission.Overloaded as e:
        return _overloaded(e)
    job = admitted.job
    if admitted.created:
        await run_in_threadpool(_dispatch, str(job["id"]), settings, background)
    else:
        response.status_code = status.HTTP_200_OK
    response.headers["Location"] = public_url(request, "get_generation", job_id=str(job["id"]))
    return jobs.public_job(await run_in_threadpool(jobs.get_job, str(job["id"]),
                                                   settings=settings))


def _dispatch(job_id: str, settings: Settings, background: BackgroundTasks) -> None:
    """To the GPU workers, or run in this process after the response when there is no broker."""
    if not worker.dispatch(job_id, settings):
        background.add_task(worker.run_inprocess, job_id, settings)


@router.get("/generations/{job_id}", name="get_generation", response_model=JobOut,
            responses={**AUTH_ERRORS, **errors(404)},
            summary="A generation job: state, progress, timings, GPU-seconds, the signed clip")
def get_generation(job_id: str, settings: SettingsDep, _key: GeneratorKeyDep) -> dict[str, Any]:
    return jobs.public_job(jobs.get_job(_job_id(job_id), settings=settings))


@router.post("/tenants", status_code=status.HTTP_201_CREATED, summary="Add a tenant (operator)",
             response_model=TenantOut, responses={**AUTH_ERRORS, **errors(400, 409)})
def create_tenant(body: TenantIn, settings: SettingsDep, _key: AdminKeyDep) -> dict[str, Any]:
    return tenants.public_tenant(tenants.create_tenant(
        body.name, tier=body.tier, credits_gpu_s=body.credits_gpu_s, settings=settings))


@router.get("/tenants", summary="Tenants with their tier and credits (operator)",
            response_model=TenantsOut, responses=AUTH_ERRORS)
def list_tenants(settings: SettingsDep, _key: AdminKeyDep) -> dict[str, Any]:
    rows = tenants.list_tenants(settings)
    return {"tenants": [tenants.public_tenant(t) for t in rows], "count": len(rows)}


@router.post("/tenants/{name}/credits", summary="Grant GPU-seconds of credit (operator)",
             response_model=TenantOut, responses={**AUTH_ERRORS, **errors(400, 404)})
def grant(name: str, body: GrantIn, settings: SettingsDep, _key: AdminKeyDep) -> dict[str, Any]:
    return tenants.public_tenant(tenants.grant_credits(name, body.gpu_seconds, note=body.note,
                                                       settings=settings))


@router.get("/usage", summary="GPU-seconds used and jobs per tenant (operator)",
            response_model=UsageOut,
            responses={**AUTH_ERRORS, **errors(404, e404="Unknown tenant")})
def usage(settings: SettingsDep, _key: AdminKeyDep,
          tenant: Annotated[str | None, Query(description="Only this tenant.")] = None
          ) -> dict[str, Any]:
    rows = tenants.usage(tenant=tenant, settings=settings)
    return {"usage": [{k: (round(float(v), 4) if isinstance(v, float) else v)
                       for k, v in r.items()} for r in rows]}


@router.post("/licences", status_code=status.HTTP_201_CREATED, tags=["licences"],
             summary="License a work, or an owner's works, to a tenant (operator)",
             response_model=LicenceOut,
             responses={**AUTH_ERRORS, **errors(400, 404, e404="Unknown tenant or work"),
                        422: {"description": "The window ends before it starts, or a field "
                                             "does not fit the schema",
                              "model": ValidationErrorOut}})
def create_licence(body: LicenceIn, settings: SettingsDep, key: AdminKeyDep) -> dict[str, Any]:
    return licences.grant_licence(
        tenant=body.tenant, work_id=body.work_id, owner=body.owner, model=body.model,
        valid_from=body.valid_from, valid_until=body.valid_until, note=body.note,
        by=f"api_key:{key['id']}", by_role=key["role"], settings=settings)


@router.get("/licences", tags=["licences"], summary="Licences, newest first (operator)",
            response_model=LicencesOut, responses={**AUTH_ERRORS, **errors(404)})
def list_licences(settings: SettingsDep, _key: AdminKeyDep,
                  tenant: Annotated[str | None, Query(description="Only this tenant's.")] = None,
                  work_id: Annotated[str | None, Query(
                      description="Only those covering this work.")] = None) -> dict[str, Any]:
    rows = licences.list_licences(tenant=tenant, work_id=work_id, settings=settings)
    return {"licences": rows, "count": len(rows)}


@router.get("/licences/{licence_id}", tags=["licences"], summary="A licence (operator)",
            response_model=LicenceOut, responses={**AUTH_ERRORS, **errors(404)})
def get_licence(licence_id: str, settings: SettingsDep, _key: AdminKeyDep) -> dict[str, Any]:
    return compliance.get_licence(licence_id, settings=settings)


@router.post("/licences/{licence_id}/revoke", tags=["licences"],
             summary="End a licence now: the works' policies decide again (operator)",
             response_model=LicenceOut, responses={**AUTH_ERRORS, **errors(400, 404)})
def revoke_licence(licence_id: str, body: RevokeIn, settings: SettingsDep,
                   key: AdminKeyDep) -> dict[str, Any]:
    return compliance.revoke_licence(licence_id, reason=body.reason, by=f"api_key:{key['id']}",
                                     by_role=key["role"], settings=settings)

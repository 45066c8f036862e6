"""Running a claimed generation job: screen the prompt, generate, gate and sign (or hand the
gating to the CPU queue), recording state, progress, timings and GPU-seconds on the way.

Fail closed: the clip reaches users only through compliance.release_clip, which signs only on a
`release` verdict. A failure anywhere leaves the job `failed` with its reason, or back in the
queue while it has attempts left; never stuck in a running state, never released unchecked.
"""

from __future__ import annotations

import inspect
import logging
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

import compliance
from clipgate import db, queue
from clipgate.errors import BadInput, NotFound, Unavailable
from clipgate.settings import Settings
from generator import jobs, screening, store, tenants
from generator.base import GenerationRequest, get_generator

log = logging.getLogger(__name__)

HandOver = Callable[[str], None]  # sends a job id to the gating queue
_PROGRESS_EVERY_S = 0.5
ONE_RELEASE_PER_JOB = "releases_one_per_job"  # the unique index of migration 0004
# The queue's names for the bodies below (kept from before the queue moved: messages name them).
RUN_GENERATION = "clipgate.run_generation"
GATE_GENERATION = "clipgate.gate_generation"
RECOVER_GENERATION = "clipgate.recover_generation"


def clip_path(settings: Settings, job_id: Any) -> Path:
    return settings.data_dir / "generations" / f"{job_id}.mp4"


def send_generation(job_id: str, settings: Settings, *, priority: int = 0) -> str:
    """Queue a generation job for the `gpu` workers (each message runs the best queued job)."""
    queue.require_broker(settings)
    return queue.send(RUN_GENERATION, [job_id], settings, queue=queue.GPU_QUEUE,
                      priority=priority)


def send_gate(job_id: str, settings: Settings) -> str:
    """Queue the gating of a generated clip on the queue the settings name."""
    return queue.send(GATE_GENERATION, [job_id], settings, queue=settings.gate_queue)


def dispatch(job_id: str, settings: Settings) -> bool:
    """Send an admitted job to the `gpu` workers. False when there is no broker: the caller runs
    it in-process (run_inprocess). If the broker cannot take it, the job is withdrawn (no queued
    job without a message) and Unavailable raised."""
    if not settings.broker_url:
        return False
    try:
        send_generation(job_id, settings)
    except Unavailable:
        with db.connection(settings) as conn:
            store.delete_queued(conn, job_id=job_id)
        raise
    return True


def run_next(settings: Settings, *, job_id: str | None = None,
             hand_over: HandOver | None = None) -> dict[str, Any] | None:
    """Claim a queued job (job_id, or the highest-priority one) and run it. None if none was
    queued. hand_over None: gate here; else the job is passed on to be gated elsewhere."""
    job = jobs.claim(settings, job_id=job_id)
    if job is None:
        return None
    return run_claimed(job, settings, hand_over=hand_over)


def run_claimed(job: dict[str, Any], settings: Settings, *,
                hand_over: HandOver | None = None) -> dict[str, Any]:
    try:
        done = _finish_if_released(job, settings)
        if done is not None:  # an earlier attempt released it but could not record that
            return done
        job = _screen(job, settings)
        if job["state"] in jobs.TERMINAL:
            return job
        job = _generate(job, settings)
        if hand_over is not None:
            job = jobs.update(settings, job, state="gating", renew=False, lease_until=None,
                              progress=0.85)
            hand_over(str(job["id"]))
            return job
        return gate(jobs.update(settings, job, state="gating", progress=0.82), settings)
    except jobs.LeaseLost as e:
        log.warning("%s; leaving the job to its new owner", e)
        return jobs.get_job(str(job["id"]), settings=settings)
    except Exception as e:  # every failure is recorded on the job, never swallowed silently
        return _fail_or_retry(job, settings, e)


def _timings(job: dict[str, Any], **new: float) -> dict[str, float]:
    return {**(job["timings"] or {}), **{k: round(v, 4) for k, v in new.items()}}


def _screen(job: dict[str, Any], settings: Settings) -> dict[str, Any]:
    t0 = time.perf_counter()
    result = screening.screen_prompt(job["prompt"], settings=settings,
                                     tenant_id=str(job["tenant_id"]), job_id=str(job["id"]))
    fields = {"screening_id": result.id, "progress": 0.08,
              "timings": _timings(job, screening_s=time.perf_counter() - t0)}
    if result.decision == "refuse":
        return jobs.update(settings, job, state="blocked", verdict="prompt_refused",
                           error=result.reason, **fields)
    if result.warnings:
        fields["warnings"] = list(job["warnings"] or []) + result.warnings
    return jobs.update(settings, job, **fields)


def _generate(job: dict[str, Any], settings: Settings) -> dict[str, Any]:
    job = jobs.update(settings, job, state="generating", progress=0.1)
    backend = get_generator(job["backend"], settings)
    request = GenerationRequest(job["prompt"], **job["params"])
    last = [0.0]

    def progress(fraction: float) -> None:
        # Renews the lease too: a long generation is alive as long as it reports.
        if time.monotonic() - last[0] >= _PROGRESS_EVERY_S:
            last[0] = time.monotonic()
            jobs.update(settings, job, progress=0.1 + 0.7 * min(max(fraction, 0.0), 1.0))

    t0 = time.perf_counter()
    out = clip_path(settings, job["id"])
    kwargs = {"progress": progress} if "progress" in _params(backend.generate) else {}
    clip = backend.generate(request, out, **kwargs)
    wall = time.perf_counter() - t0
    with db.connection(settings) as conn:
        tenants.charge(conn, tenant_id=job["tenant_id"], job_id=job["id"], kind="generation",
                       gpu_seconds=clip.gpu_seconds, wall_seconds=wall)
    return jobs.update(settings, job, progress=0.8, clip_path=str(out),
                       gpu_seconds=clip.gpu_seconds, generator=clip.identity(),
                       timings=_timings(job, generation_s=wall))


def _params(fn: Callable[..., Any]) -> set[str]:
    return set(inspect.signature(fn).parameters)


def run_gate(job_id: str, settings: Settings) -> dict[str, Any] | None:
    """Claim a job handed over for gating and gate it. None if it is not waiting for gating."""
    job = jobs.claim_gate(settings, job_id)
    if job is None:
        return None
    try:
        return gate(job, settings)
    except jobs.LeaseLost as e:
        log.warning("%s; leaving the job to its new owner", e)
        return jobs.get_job(job_id, settings=settings)
    except Exception as e:  # recorded on the job
        return _fail_or_retry(job, settings, e)


def run_inprocess(job_id: str, settings: Settings) -> dict[str, Any]:
    """Run one job here, to the end, retrying while it has attempts left (no broker)."""
    while True:
        # claim() first recovers jobs whose worker died, this one included.
        ran = run_next(settings, job_id=job_id)
        if ran is None or ran["state"] != "queued":  # done, or held by another worker
            return jobs.get_job(job_id, settings=settings)


def gate(job: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Gate and sign the job's clip (state `gating`); the verdict decides the final state."""
    done = _finish_if_released(job, settings)
    if done is not None:
        return done
    path = Path(job["clip_path"] or "")
    if not path.is_file():
        log.error("the generated clip of job %s is missing at %s", job["id"], path)
        raise Unavailable(f"the generated clip of job {job['id']} is missing")
    job = jobs.update(settings, job, progress=0.85)
    t0 = time.perf_counter()
    made_by = job["generator"] or {}
    # job_id travels into the release record (and the manifest): it is how a retry finds the
    # release this job already made instead of releasing it again.
    identity = {"model": made_by.get("model") or job["backend"],
                "version": made_by.get("version") or "unknown",
                "prompt_sha256": job["prompt_sha256"], "job_id": str(job["id"])}
    with jobs.keep_lease(settings, job):  # a takeover mid-release would release it twice
        try:
            # The tenant the job runs for: its licences may release works the clip matches.
            with db.connection(settings) as conn:
                name = store.tenant_name(conn, tenant_id=job["tenant_id"])
            licensee = compliance.Licensee(tenant_id=str(job["tenant_id"]),
                                           tenant_name=name or str(job["tenant_id"]))
            outcome = compliance.release_clip(path, generator=identity, source="generation",
                                              settings=settings, licensee=licensee)
        except psycopg.errors.UniqueViolation as e:
            if e.diag.constraint_name != ONE_RELEASE_PER_JOB:
                raise
            return _lost_release_race(job, settings, e)
    wall = time.perf_counter() - t0
    gate_gpu = wall if _gate_on_cuda(settings) else 0.0
    with db.connection(settings) as conn:
        tenants.charge(conn, tenant_id=job["tenant_id"], job_id=job["id"], kind="gating",
                       gpu_seconds=gate_gpu, wall_seconds=wall)
    check = outcome.check
    state = jobs.VERDICT_STATE[check.verdict]
    warnings = list(job["warnings"] or []) + list(check.warnings)
    job = jobs.update(
        settings, job, state=state, progress=1.0, verdict=check.verdict,
        check_id=check.check_id,
        release_id=outcome.release["id"] if outcome.release else None,
        gate_gpu_seconds=gate_gpu, warnings=warnings,
        error=None if outcome.released else "; ".join(check.reasons) or None,
        timings=_timings(job, gate_s=wall, **{f"gate_{k}_s": v for k, v in check.timings.items()}),
    )
    path.unlink(missing_ok=True)  # the signed copy lives in the release store; this was staging
    return job


def _lost_release_race(job: dict[str, Any], settings: Settings, e: Exception) -> dict[str, Any]:
    """Another worker released this job between our release_of check and our insert (one of
    the two leases lapsed). Its release stands; ours rolled back, signed file and all. Record
    that release on the job (LeaseLost if the job is no longer ours to write)."""
    log.warning("job %s was released by another worker meanwhile; keeping that release",
                job["id"])
    done = _finish_if_released(job, settings)
    if done is None:  # the unique index fired, so a release existed; gone since: try again
        raise Unavailable(f"job {job['id']} lost a release race to a release now gone") from e
    return done


def _finish_if_released(job: dict[str, Any], settings: Settings) -> dict[str, Any] | None:
    """If this job already has a release (a worker released it, then died or failed to record
    it), record that release on the job and return it finished; None otherwise."""
    release = jobs.release_of(settings, job["id"])
    if release is None:
        return None
    log.warning("job %s was already released as %s; recording that, not releasing again",
                job["id"], release["id"])
    done = jobs.update(settings, job, state="released", progress=1.0, verdict="release",
                       release_id=release["id"], check_id=release["check_id"], error=None)
    clip_path(settings, job["id"]).unlink(missing_ok=True)
    return done


def _gate_on_cuda(settings: Settings) -> bool:
    if settings.clip_device.startswith("cuda"):
        return True
    if settings.clip_device != "auto":
        return False
    import torch  # heavy: loaded only when the device is auto

    return torch.cuda.is_available()


def _fail_or_retry(job: dict[str, Any], settings: Settings, e: Exception) -> dict[str, Any]:
    retryable = not isinstance(e, (BadInput, NotFound))
    reason = client_reason(e)  # shown to API clients: no paths, no internals
    if isinstance(e, BadInput | NotFound):
        log.warning("generation job %s failed: %s: %s", job["id"], type(e).__name__, e)
    else:
        log.error("generation job %s failed on attempt %s: %s: %s", job["id"], job["attempts"],
                  type(e).__name__, e, exc_info=e)
    try:
        # Released already (the failure came after the release row was committed): finish it
        # as released rather than generate and release it a second time.
        done = _finish_if_released(job, settings)
        if done is not None:
            return done
    except jobs.LeaseLost:
        return jobs.get_job(str(job["id"]), settings=settings)
    except Exception as e2:  # noqa: BLE001 - the lease expiring hands the job to recovery
        log.error("could not check job %s for an earlier release: %s", job["id"], e2)
        return job
    clip_path(settings, job["id"]).unlink(missing_ok=True)
    try:
        if retryable and job["attempts"] < job["max_attempts"]:
            return jobs.update(settings, job, state="queued", renew=False, lease_until=None,
                               progress=0.0, error=f"attempt {job['attempts']} failed: {reason}; "
                                                   "retrying")
        return jobs.update(settings, job, state="failed", error=reason)
    except jobs.LeaseLost:
        return jobs.get_job(str(job["id"]), settings=settings)
    except Unavailable:
        # The database itself is down: the lease will run out and recovery will act then.
        log.error("could not record the failure of job %s; its lease will expire", job["id"])
        return job


_PATH = re.compile(r"(?:[A-Za-z]:)?(?:[/\\][\w.@+~-]+){2,}[/\\]?")
_MAX_REASON = 200


def client_reason(e: BaseException) -> str:
    """A failure in plain words for API clients: the exception's class and a short reason, with
    file paths taken out (the full details go to the worker's log)."""
    text = " ".join(_PATH.sub("<file>", str(e)).split())
    if len(text) > _MAX_REASON:
        text = text[:_MAX_REASON - 3].rstrip() + "..."
    if isinstance(e, BadInput | NotFound | Unavailable):  # our own messages, written for users
        return text or type(e).__name__
    return f"{type(e).__name__}: {text}" if text else f"{type(e).__name__} (internal error)"


_MAX_WAITS = 10  # a message that found no job waits at most this many lease periods


def celery_run_generation(task: Any, job_id: str, settings: Settings) -> dict[str, Any] | None:
    """Body of the `gpu` queue's task: run the best queued job (paid tiers first).

    A message that finds nothing queued while some job still holds a lease may be the redelivery
    of a dead worker's message: it waits for that lease to run out, so the job is recovered."""
    hand_over = None if settings.gate_queue == "gpu" else (
        lambda jid: send_gate(jid, settings))
    job = run_next(settings, hand_over=hand_over)
    if job is None:
        wait = jobs.next_lease_expiry_s(settings)
        if wait is not None and task.request.retries < _MAX_WAITS:
            raise task.retry(countdown=wait + 1.0)
        return None
    if job["state"] == "queued":  # a failed attempt went back to the queue: run it again
        send_generation(str(job["id"]), settings, priority=0)
    return jobs.public_job(job)


def celery_gate(task: Any, job_id: str, settings: Settings) -> dict[str, Any] | None:
    """Body of the gating task (`cpu` queue, or `gpu` per settings)."""
    job = run_gate(job_id, settings)
    if job is None:
        current = jobs.get_job(job_id, settings=settings)
        if current["state"] == "gating" and task.request.retries < _MAX_WAITS:
            # Another gating worker holds it; if that one died, its lease runs out first.
            raise task.retry(countdown=(jobs.next_lease_expiry_s(settings) or 0.0) + 1.0)
        return None
    if job["state"] == "queued":
        send_generation(str(job["id"]), settings)
    return jobs.public_job(job)


def celery_recover(settings: Settings) -> dict[str, int]:
    """Body of the periodic sweep: jobs of workers that died (lease run out) go back to the queue,
    each with a message for the `gpu` workers, or fail when out of attempts. Needed because a
    killed worker's unacknowledged message returns only after the broker's visibility timeout.
    Jobs queued longer than job_requeue_after_s are sent again ("resent"), as many as the queued
    jobs outnumber the messages waiting: theirs may have been lost. Without a broker nothing is
    sent (no message could carry it)."""
    changed = jobs.recover(settings)
    requeued = [j for j in changed if j["state"] == "queued"]
    counts = {"requeued": len(requeued), "failed": len(changed) - len(requeued), "resent": 0}
    if not settings.broker_url:  # in-process: the admitting thread, or generator.resume, runs them
        return counts
    for j in requeued:
        send_generation(str(j["id"]), settings)
    # Only as many as the broker lacks: a long backlog still has its messages and needs no spares.
    lacking = jobs.queued_count(settings) - queue.queue_depth(settings, queue.GPU_QUEUE)
    resent = jobs.resend_due(settings, lambda jid: send_generation(jid, settings),
                             limit=lacking)
    if resent:
        log.warning("sent %d job(s) queued over %.0f s again (message lost?): %s", len(resent),
                    settings.job_requeue_after_s, ", ".join(resent))
    return {**counts, "resent": len(resent)}

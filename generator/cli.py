"""The generation commands of `clipgate`: generate, tenants, usage, jobs. clipgate.cli installs them
(with its error handling and settings), so this module never imports the kernel's CLI."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

import compliance
from clipgate.errors import BadInput
from compliance import get_release
from generator import admission, jobs, licences, resume, tenants, worker

EXIT_BAD_INPUT = 2
POLL_S = 0.25


def install(app: typer.Typer, *, handles_errors: Callable, setup: Callable[..., Any]) -> None:
    """Add `generate`, `tenants ...`, `usage` and `jobs ...` to app."""
    tenants_app = typer.Typer(help="Tenants of the generation service: tiers and GPU credits.",
                              no_args_is_help=True)
    app.add_typer(tenants_app, name="tenants")
    jobs_app = typer.Typer(help="Generation jobs: resume those a dead process left behind.",
                           no_args_is_help=True)
    app.add_typer(jobs_app, name="jobs")

    @jobs_app.command("resume")
    @handles_errors
    def jobs_resume(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
        """Resume jobs left behind by a process that died: expired leases go back to the queue
        (or fail with the reason when out of attempts), then the queued jobs run here, highest
        priority first. With a broker, run the recovery sweep instead (its workers run them)."""
        settings = setup()
        if settings.broker_url:
            _recover_for_workers(settings, as_json=as_json)
        else:
            _resume_here(settings, as_json=as_json)

    @app.command("generate")
    @handles_errors
    def generate(
        prompt: Annotated[str, typer.Argument(help="What to generate.")],
        tenant: Annotated[str, typer.Option(help="The tenant whose credits pay for it.")],
        user: Annotated[str, typer.Option(help="Who asked.")] = "cli",
        idempotency_key: Annotated[str | None, typer.Option(
            help="Same key and prompt returns the first job (default: a new key).")] = None,
        seconds: Annotated[float, typer.Option(help="Clip length.")] = 4.0,
        width: Annotated[int, typer.Option()] = 640,
        height: Annotated[int, typer.Option()] = 360,
        fps: Annotated[int, typer.Option()] = 24,
        seed: Annotated[int | None, typer.Option()] = None,
        wait: Annotated[bool, typer.Option(help="Follow the job to its end.")] = True,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Queue a generation job (screened, generated, gated, signed) and follow it with a
        progress bar. Exit 0: released; 1: blocked, held for review or failed; 2: refused at
        admission (bad prompt, unknown tenant, no credits, queue full)."""
        settings = setup()
        _generate(settings, prompt=prompt, tenant=tenant, user=user,
                  key=idempotency_key or str(uuid.uuid4()),
                  params={"seconds": seconds, "width": width, "height": height, "fps": fps,
                          "seed": seed}, wait=wait, as_json=as_json)

    @tenants_app.command("add")
    @handles_errors
    def tenants_add(
        name: str,
        tier: Annotated[str, typer.Option(help="free, pro or enterprise")] = "free",
        credits: Annotated[float, typer.Option(help="Opening GPU-seconds of credit.")] = 0.0,
    ) -> None:
        """Add a tenant."""
        typer.echo(_tenant_line(tenants.create_tenant(name, tier=tier, credits_gpu_s=credits,
                                                      settings=setup())))

    @tenants_app.command("list")
    @handles_errors
    def tenants_list() -> None:
        """List tenants with their tier and credits left."""
        rows = tenants.list_tenants(setup())
        for t in rows:
            typer.echo(_tenant_line(t))
        typer.echo(f"{len(rows)} tenants")

    @tenants_app.command("grant")
    @handles_errors
    def tenants_grant(name: str, gpu_seconds: float,
                      note: Annotated[str, typer.Option()] = "grant") -> None:
        """Grant GPU-seconds of credit."""
        typer.echo(_tenant_line(tenants.grant_credits(name, gpu_seconds, note=note,
                                                      settings=setup())))

    @tenants_app.command("tier")
    @handles_errors
    def tenants_tier(name: str, tier: str) -> None:
        """Move a tenant to another tier."""
        typer.echo(_tenant_line(tenants.set_tier(name, tier, settings=setup())))

    licences_app = typer.Typer(help="Licences: a work, or an owner's works, licensed to a "
                               "tenant (optionally one model) for a window of time.",
                               no_args_is_help=True)
    app.add_typer(licences_app, name="licences")

    @licences_app.command("add")
    @handles_errors
    def licences_add(
        tenant: Annotated[str, typer.Option(help="The tenant licensed (by name).")],
        work: Annotated[str | None, typer.Option(help="The work's id.")] = None,
        owner: Annotated[str | None, typer.Option(help="Every work of this owner.")] = None,
        model: Annotated[str | None, typer.Option(help="Only this model (default any).")] = None,
        valid_from: Annotated[str | None, typer.Option(
            "--from", help="Start, ISO 8601 (UTC without a zone; default now).")] = None,
        valid_until: Annotated[str | None, typer.Option(
            "--until", help="End, ISO 8601 (default open-ended).")] = None,
        note: Annotated[str | None, typer.Option(help="The agreement it rests on.")] = None,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """License a work (--work) or an owner's works (--owner) to a tenant. Exit 2 for an
        unknown tenant or work, or a window that ends before it starts."""
        lic = licences.grant_licence(
            tenant=tenant, work_id=work, owner=owner, model=model,
            valid_from=_when(valid_from, "--from"), valid_until=_when(valid_until, "--until"),
            note=note, settings=setup())
        typer.echo(json.dumps(lic, indent=2) if as_json else _licence_line(lic))

    @licences_app.command("list")
    @handles_errors
    def licences_list(
        tenant: Annotated[str | None, typer.Option(help="Only this tenant's.")] = None,
        work: Annotated[str | None, typer.Option(help="Only those covering this work.")] = None,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """Licences, newest first, with their state (in_force, expired, revoked, ...)."""
        rows = licences.list_licences(tenant=tenant, work_id=work, settings=setup())
        if as_json:
            typer.echo(json.dumps(rows, indent=2))
            return
        for lic in rows:
            typer.echo(_licence_line(lic))
        typer.echo(f"{len(rows)} licences")

    @licences_app.command("revoke")
    @handles_errors
    def licences_revoke(
        licence_id: str,
        reason: Annotated[str, typer.Option(help="Why it ends.")],
    ) -> None:
        """End a licence now; the works' policies decide again."""
        typer.echo(_licence_line(compliance.revoke_licence(licence_id, reason=reason,
                                                           settings=setup())))

    @app.command("usage")
    @handles_errors
    def usage(
        tenant: Annotated[str | None, typer.Option(help="Only this tenant.")] = None,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """GPU-seconds used (generation, gating), credits left and jobs, per tenant."""
        rows = tenants.usage(tenant=tenant, settings=setup())
        if as_json:
            typer.echo(json.dumps(rows, indent=2, default=str))
            return
        typer.echo(f"{'tenant':<20} {'tier':<10} {'jobs':>5} {'gen GPU-s':>10} "
                   f"{'gate GPU-s':>10} {'credits left':>12}")
        for r in rows:
            typer.echo(f"{r['tenant']:<20} {r['tier']:<10} {r['jobs']:>5} "
                       f"{r['generation_gpu_s']:>10.2f} {r['gating_gpu_s']:>10.3f} "
                       f"{r['credits_left_gpu_s']:>12.2f}")


def _when(value: str | None, option: str) -> dt.datetime | None:
    if value is None:
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise BadInput(f"{option} must be a date or time in ISO 8601 "
                       f"(2026-01-31 or 2026-01-31T12:00:00Z), not {value!r}") from None


def _licence_line(lic: dict[str, Any]) -> str:
    what = f"work {lic['work_id']}" if lic["work_id"] else f"every work of {lic['owner']!r}"
    return (f"{lic['licence_id']}  {lic['state']:<13} {what} -> tenant {lic['tenant']}"
            f"{' model ' + lic['model'] if lic['model'] else ''}  "
            f"{lic['valid_from']} .. {lic['valid_until'] or 'open-ended'}")


def _tenant_line(t: dict[str, Any]) -> str:
    return (f"{t['name']:<20} {t['tier']:<10} priority {t['priority']:>2}  "
            f"max {t['max_concurrent_jobs']:>2} at once  {float(t['credits_gpu_s']):.2f} GPU-s left")


def _generate(settings: Any, *, prompt: str, tenant: str, user: str, key: str,
              params: dict[str, Any], wait: bool, as_json: bool) -> None:
    params = {k: v for k, v in params.items() if v is not None}
    try:
        admitted = admission.admit(tenant=tenant, user=user, idempotency_key=key, prompt=prompt,
                                   params=params, settings=settings)
    except admission.Overloaded as e:
        typer.secho(f"error: {e} (retry after {e.retry_after} s)", fg=typer.colors.RED, err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    job_id = str(admitted.job["id"])
    runner = None
    if admitted.created and not worker.dispatch(job_id, settings):
        runner = threading.Thread(target=worker.run_inprocess, args=(job_id, settings),
                                  daemon=True)
        runner.start()
    if not wait:
        typer.echo(job_id)
        return
    job = _follow(job_id, settings, runner)
    out = jobs.public_job(job)
    if as_json:
        typer.echo(json.dumps(out, indent=2, default=str))
    else:
        _print_job(out, settings)
    raise typer.Exit(0 if job["state"] == "released" else 1)


def _progress() -> Any:
    """The progress bar of a job (on stderr, gone once done): state, bar, percent, time."""
    columns = (TextColumn("{task.description:<12}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
               TimeElapsedColumn())
    return Progress(*columns, console=Console(stderr=True), transient=True)


def _follow(job_id: str, settings: Any, runner: threading.Thread | None) -> dict[str, Any]:
    with _progress() as bar:
        task = bar.add_task("queued", total=1.0)
        while True:
            job = jobs.get_job(job_id, settings=settings)
            bar.update(task, description=job["state"], completed=float(job["progress"]))
            if job["state"] in jobs.SETTLED:  # held for review: a person decides, not us
                return job
            if runner is not None and not runner.is_alive() and job["state"] == "queued":
                return job  # in-process runner gave up (claimed elsewhere); report as is
            time.sleep(POLL_S)


def _print_job(job: dict[str, Any], settings: Any) -> None:
    colour = {"released": typer.colors.GREEN, "blocked": typer.colors.RED,
              "failed": typer.colors.RED}.get(job["state"], typer.colors.YELLOW)
    typer.secho(f"{job['state'].upper()}  job {job['id']}", fg=colour, bold=True)
    if job["release_id"]:
        typer.echo(f"  signed clip: {get_release(job['release_id'], settings=settings)['path']}")
    if job["error"]:
        typer.echo(f"  {job['error']}")
    for w in job["warnings"]:
        typer.secho(f"  warning: {w}", fg=typer.colors.YELLOW)
    t = job["timings"]
    typer.echo(f"  screening {t.get('screening_s', 0):.2f} s, generation "
               f"{t.get('generation_s', 0):.2f} s, gate {t.get('gate_s', 0):.2f} s; "
               f"GPU-seconds: generation {job['gpu_seconds']}, gate {job['gate_gpu_seconds']}")


def _recover_for_workers(settings: Any, *, as_json: bool) -> None:
    counts = worker.celery_recover(settings)
    if as_json:
        typer.echo(json.dumps({"mode": "broker", **counts}, indent=2))
        return
    typer.echo(f"a broker is configured, so its workers run the jobs: the recovery sweep "
               f"requeued {counts['requeued']}, failed {counts['failed']} (out of attempts) and "
               f"sent {counts['resent']} again")


def _resume_here(settings: Any, *, as_json: bool) -> None:
    done = resume.resume_once(settings, run=None if as_json else _run_followed)
    held = jobs.next_lease_expiry_s(settings)
    if as_json:
        typer.echo(json.dumps({"mode": "in-process", "requeued": done.requeued,
                               "failed": done.failed, "ran": [jobs.public_job(j) for j in done.ran],
                               "next_lease_expiry_s": held}, indent=2, default=str))
        return
    typer.echo(f"recovered from dead workers: {done.requeued} requeued, {done.failed} failed "
               f"(out of attempts); {len(done.ran)} attempt(s) run here")
    if held is not None:
        typer.echo(f"some jobs still hold a lease (the soonest runs out in {held:.0f} s); if "
                   "their process is gone, run this again then")


def _run_followed(job: dict[str, Any], settings: Any) -> dict[str, Any]:
    """Run a claimed job in a thread with the progress bar; print and return how it ended."""
    ended: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: ended.update(job=worker.run_claimed(job, settings)),
                              daemon=True)
    runner.start()
    with _progress() as bar:
        task = bar.add_task(job["state"], total=1.0)
        while runner.is_alive():
            now = jobs.get_job(str(job["id"]), settings=settings)
            bar.update(task, description=now["state"], completed=float(now["progress"]))
            runner.join(POLL_S)
    out = ended.get("job") or jobs.get_job(str(job["id"]), settings=settings)
    colour = {"released": typer.colors.GREEN, "blocked": typer.colors.RED,
              "failed": typer.colors.RED}.get(out["state"], typer.colors.YELLOW)
    typer.secho(f"{out['state'].upper():<9} job {out['id']}"
                + (f"  {out['error']}" if out["error"] else ""), fg=colour)
    return out

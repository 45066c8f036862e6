"""The `clipgate` command: one entry point for the demo, the API, workers and operators.

Bad input (not media, truncated, no frames, too large, unknown id) exits with code 2 and a
one-line message; an unreachable part (database, index, signer) exits with code 3.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from clipgate.errors import BadInput, NotFound, Unavailable
from complaints import cli as complaints_cli
from compliance import cli as compliance_cli
from generator import cli as generation_cli
from index import cli as index_cli

app = typer.Typer(
    help="clipgate: gate AI-generated clips against protected works, sign what is released.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(help="Benchmarks that print numbers.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys for the generator service.", no_args_is_help=True)
app.add_typer(bench_app, name="bench")
app.add_typer(keys_app, name="keys")

EXIT_BAD_INPUT = 2
EXIT_UNAVAILABLE = 3


def _fail(message: str, code: int) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def handles_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn clipgate's errors into a message and an exit code instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (BadInput, NotFound) as e:
            _fail(str(e), EXIT_BAD_INPUT)
        except Unavailable as e:
            _fail(str(e), EXIT_UNAVAILABLE)

    return wrapper


def _setup(default_level: str = "WARNING") -> Any:
    """Settings, and logging at CLIPGATE_LOG_LEVEL if set, else at default_level: one-shot
    commands keep their output to what was asked; the server and workers log at INFO."""
    from clipgate import logs
    from clipgate.settings import get_settings

    settings = get_settings()
    logs.configure(os.environ.get("CLIPGATE_LOG_LEVEL") or default_level)
    return settings


def _json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))



@app.command()
@handles_errors
def demo(
    out: Annotated[Path, typer.Option(help="Folder for the report and clips.")] = Path("demo-out"),
) -> None:
    """The main job: register sample works, generate and gate a dozen clips, sign and verify the
    releases, and write an HTML + JSON report."""
    from rich.console import Console
    from rich.table import Table

    from clipgate.demo import run_demo

    settings = _setup()
    console = Console()
    where = "embedded PostgreSQL" if settings.embedded else "configured PostgreSQL"
    console.print(f"clipgate demo: data in {settings.data_dir} ({where})")
    with console.status("starting") as status:
        report = run_demo(settings, out, progress=lambda msg: status.update(msg))
    table = Table(title="clipgate demo")
    for col in ("#", "prompt", "verdict", "matched work", "reused (truth)", "verify"):
        table.add_column(col)
    colours = {"release": "green", "block": "red", "review": "yellow"}
    for i, c in enumerate(report["clips"], 1):
        matched = ", ".join(m["title"] for m in c["check"]["matches"]) or "-"
        verify_state = c["verification"]["state"] if c["verification"] else "-"
        table.add_row(str(i), c["prompt"], f"[{colours[c['verdict']]}]{c['verdict']}[/]",
                      matched, ", ".join(c["reused"]) or "-", verify_state)
    console.print(table)
    counts = report["counts"]
    console.print(f"released {counts['release']}, blocked {counts['block']}, "
                  f"held for review {counts['review']} in {report['seconds']} s")
    if report["tamper_test"]:
        console.print(f"tampered signed copy verifies: {report['tamper_test']['state']}")
    for w in report["warnings"]:
        console.print(f"[yellow]warning:[/] {w}")
    console.print(f"report: {(out / 'index.html').resolve()}  (JSON: {out / 'report.json'})")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Default from CLIPGATE_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Default from CLIPGATE_PORT.")] = None,
) -> None:
    """Run the HTTP API (OpenAPI docs at /docs)."""
    import uvicorn

    from clipgate import apikeys, db
    from clipgate.app import create_app

    from compliance import sweep_staging

    settings = _setup("INFO")
    db.migrate(db.database_url(settings))
    sweep_staging(settings)  # waits (bounded) for the database to come up
    if not settings.api_key and not apikeys.list_keys(settings, include_revoked=False):
        _, gen = apikeys.create_key("local-generator", "generator", settings)
        _, admin = apikeys.create_key("local-operator", "admin", settings)
        typer.secho("No API key existed, so two were made. Send one as the X-API-Key header; "
                    "they are not shown again (`clipgate keys create NAME` makes more):\n"
                    f"  generator service (checks, releases, verify): {gen}\n"
                    f"  operator (also manages protected works):      {admin}",
                    fg=typer.colors.CYAN)
    # Without a broker this process is the only worker: it resumes the jobs a previous run left.
    uvicorn.run(create_app(settings, resume_jobs=True), host=host or settings.host,
                port=port or settings.port)


@app.command()
def worker(
    queues: Annotated[str, typer.Option(help="Comma-separated queues to consume.")] = "cpu",
    concurrency: Annotated[int, typer.Option(help="Worker processes.")] = 1,
    beat: Annotated[bool, typer.Option(
        help="Also run the periodic tasks (claims' notices, counter-notice restores); "
             "give exactly one worker --beat.")] = False,
) -> None:
    """Run a Celery worker (needs CLIPGATE_BROKER_URL)."""
    settings = _setup("INFO")
    if not settings.broker_url:
        _fail("CLIPGATE_BROKER_URL is not set: without a broker tasks run in-process "
              "and no worker is needed", EXIT_BAD_INPUT)
    from clipgate.tasks import celery_app

    celery_app.worker_main(["worker", "-Q", queues, "-c", str(concurrency), "-l", "INFO",
                            *(["-B"] if beat else [])])


@app.command()
@handles_errors
def migrate() -> None:
    """Bring the database schema up to date (the compose one-shot migration service)."""
    from clipgate import db

    _setup()
    db.migrate()
    typer.echo("database is at the newest schema")


@keys_app.command("create")
@handles_errors
def keys_create(
    name: Annotated[str, typer.Argument(help="Who uses the key, e.g. generator-prod.")],
    role: Annotated[str, typer.Option(
        help="generator, admin, rights_holder or reviewer")] = "generator",
    account: Annotated[str | None, typer.Option(
        help="The account a rights_holder or reviewer key acts for (its id).")] = None,
) -> None:
    """Create an API key; it is printed once and stored only as a hash."""
    from clipgate import apikeys

    settings = _setup()
    record, key = apikeys.create_key(name, role, settings, account_id=account)
    typer.echo(key)
    typer.echo(f"key {record['id']} ({record['role']}) created; store it now, it is not "
               "shown again", err=True)


@keys_app.command("list")
@handles_errors
def keys_list() -> None:
    """List API keys (never the keys themselves)."""
    from clipgate import apikeys

    settings = _setup()
    for k in apikeys.list_keys(settings):
        pk = apikeys.public_key(k)
        state = "revoked" if pk.get("revoked_at") else "active"
        typer.echo(f"{pk['id']}  {pk['prefix']}...  {pk['role']:<9} {state:<7} {pk['name']}")


@keys_app.command("revoke")
@handles_errors
def keys_revoke(key_id: str) -> None:
    """Revoke an API key by its id."""
    from clipgate import apikeys

    settings = _setup()
    apikeys.revoke_key(key_id, settings)
    typer.echo(f"revoked {key_id}")


@bench_app.command("perf")
@handles_errors
def bench_perf(
    works: Annotated[int, typer.Option(help="Protected works in the bench index.")] = 1000,
    runs: Annotated[int, typer.Option(help="Timed runs; the median is reported.")] = 3,
    device: Annotated[str | None, typer.Option(
        help="Where the gate runs (CLIP embedding and index search): cpu, cuda or auto.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Bench data (kept between runs).")] = None,
    seconds: Annotated[float, typer.Option(help="Length of the generated clip.")] = 10.0,
    backend: Annotated[str, typer.Option(
        help="Generator of the clip: procedural, or diffusers (CLIPGATE_DIFFUSERS_MODEL_DIR) "
             "for the gate-to-generation GPU-seconds ratio.")] = "procedural",
) -> None:
    """Time each gate stage on a 10 s 640x360 clip against an index of >= 1,000 works; print JSON."""
    from rich.console import Console
    from rich.progress import Progress

    from clipgate.bench import run_perf

    import logging

    settings = _setup()
    logging.getLogger("index.registry").setLevel(logging.WARNING)  # a line per synthetic work is noise
    bench_settings = settings.model_copy(update={
        "data_dir": data_dir or settings.data_dir / "bench",
        "database_url": None,  # its own embedded database: never the operator's
        "broker_url": None,
        "clip_device": device or settings.clip_device,
    })
    with Progress(transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task("registering bench works", total=works)
        result = run_perf(bench_settings, works=works, runs=runs, seconds=seconds,
                          backend=backend,
                          progress=lambda done, total: bar.update(task, completed=done))
    _json(result)


for _domain_cli in (index_cli, compliance_cli, generation_cli, complaints_cli):
    # works, index; check, release, verify, releases; generate, tenants, usage, jobs;
    # accounts, flags, claims
    _domain_cli.install(app, handles_errors=handles_errors, setup=_setup)


@bench_app.command("quality")
@handles_errors
def bench_quality(
    quick: Annotated[bool, typer.Option(help="A handful of works and queries, no download.")] = False,
    per_family: Annotated[int, typer.Option(help="Queries per transformation family.")] = 10,
    per_pair: Annotated[int, typer.Option(help="Queries per pair of families.")] = 4,
    negatives: Annotated[int, typer.Option(help="Queries made only of unregistered media.")] = 300,
    seed: Annotated[int, typer.Option(help="Seed of the query plan.")] = 0,
    ablations: Annotated[bool, typer.Option(
        help="Also score clipgate with each signal switched off, and pHash alone.")] = True,
    data_dir: Annotated[Path | None, typer.Option(help="Bench data (kept between runs).")] = None,
    other_models: Annotated[str | None, typer.Option(
        help="SSCD models also scored, as rows clipgate-MODEL (comma-separated, or 'none'); "
        "default: the model not configured (none with --quick).")] = None,
    dump: Annotated[Path | None, typer.Option(
        help="Write each query's search results here (pickle), to study scoring offline.")
    ] = None,
) -> None:
    """Match quality on a dev corpus of real media (fetched once into the user cache): µAP, recall
    at 0.5% false positives, segment AP, recall per family, gate time, against the threatexchange
    PDQ baseline, pHash alone and each signal switched off. JSON on stdout, a table on stderr."""
    from rich.console import Console
    from rich.progress import Progress

    import logging

    from clipgate.quality.run import run_quality, table

    settings = _setup()
    logging.getLogger("index.registry").setLevel(logging.WARNING)
    bench_settings = settings.model_copy(update={
        "data_dir": data_dir or settings.data_dir / ("bench-quality-quick" if quick
                                                     else "bench-quality"),
        "database_url": None,  # its own embedded database: never the operator's
        "broker_url": None,
    })
    with Progress(transient=True, console=Console(stderr=True)) as bar:
        tasks: dict[str, Any] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)

        others = None if other_models is None else tuple(
            m.strip() for m in other_models.split(",") if m.strip() and m.strip() != "none")
        result = run_quality(bench_settings, quick=quick, per_family=per_family,
                             per_pair=per_pair, negatives=negatives, seed=seed,
                             ablations=ablations, other_models=others, dump=dump,
                             progress=progress)
    _json(result)
    typer.echo(table(result), err=True)


def _exit_on_sigterm(signum: int, frame: Any) -> None:
    # A normal exit, so that atexit handlers run: the embedded PostgreSQL is stopped by one.
    # (uvicorn re-raises SIGTERM after its graceful shutdown; the default action would skip them.)
    sys.exit(128 + signum)


def main() -> None:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)

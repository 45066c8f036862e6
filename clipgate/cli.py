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

app = typer.Typer(
    help="clipgate: gate AI-generated clips against protected works, sign what is released.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
works_app = typer.Typer(help="Protected works: add, list, remove.", no_args_is_help=True)
index_app = typer.Typer(help="The FAISS index of protected works.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks that print numbers.", no_args_is_help=True)
keys_app = typer.Typer(help="API keys for the generator service.", no_args_is_help=True)
releases_app = typer.Typer(help="Released (signed) clips.", no_args_is_help=True)
app.add_typer(works_app, name="works")
app.add_typer(index_app, name="index")
app.add_typer(bench_app, name="bench")
app.add_typer(keys_app, name="keys")
app.add_typer(releases_app, name="releases")

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


def _work_line(w: dict[str, Any]) -> str:
    frames = w.get("frames", "?")
    return (
        f"{w['id']}  {w['status']:<8} {w['policy']:<6} {w['kind']:<5} {frames:>4} frames  "
        f"{w['title']} ({w['owner']})"
    )


@works_app.command("add")
@handles_errors
def works_add(
    paths: Annotated[list[Path], typer.Argument(help="Images (JPEG, PNG, WebP) or videos.")],
    owner: Annotated[str, typer.Option(help="Who holds the rights.")],
    title: Annotated[str, typer.Option(help="The work's title.")],
    policy: Annotated[str, typer.Option(help="block or review")] = "block",
    alias: Annotated[list[str] | None, typer.Option(
        help="Another name of the work, for prompt screening (repeatable).")] = None,
    description: Annotated[str | None, typer.Option(
        help="What the work shows, for prompt screening.")] = None,
) -> None:
    """Register protected works."""
    import index
    from index import tasks

    settings = _setup()
    aliases = alias or []
    index.validate_meta(owner=owner, title=title, policy=policy, aliases=aliases,
                        description=description)
    for path in paths:
        name = title if len(paths) == 1 else f"{title} ({path.name})"
        work, task_id = tasks.add_work(path, owner=owner, title=name, policy=policy,
                                       aliases=aliases, description=description,
                                       settings=settings)
        if task_id:
            typer.echo(f"queued {work['id']} (task {task_id}); see `clipgate works list`")
        else:
            typer.echo(_work_line(work))


@works_app.command("list")
@handles_errors
def works_list(
    all_: Annotated[bool, typer.Option("--all", help="Include removed works.")] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """List protected works."""
    import index

    settings = _setup()
    works = index.list_works(include_removed=all_, settings=settings)
    if as_json:
        _json([{k: v for k, v in w.items() if k != "media_path"} for w in works])
        return
    for w in works:
        typer.echo(_work_line(w))
    typer.echo(f"{len(works)} works")


@works_app.command("remove")
@handles_errors
def works_remove(work_id: str) -> None:
    """Remove a work: it never matches again."""
    import index

    settings = _setup()
    typer.echo(_work_line(index.remove_work(work_id, settings=settings)))


@index_app.command("rebuild")
@handles_errors
def index_rebuild(
    reembed: Annotated[bool, typer.Option(
        help="Embed every work again from its stored media (after changing the CLIP model).")] = False,
) -> None:
    """Rebuild the FAISS index from the database."""
    import index
    from index import tasks

    settings = _setup()
    if reembed:
        r = index.reembed_all(settings)
        typer.echo(f"re-embedded: index version {r['version']}, {r['works']} works, "
                   f"{r['frames']} frames")
        return
    sub = tasks.submit_rebuild(settings)
    if sub.task_id:
        typer.echo(f"rebuild queued as task {sub.task_id}")
    else:
        r = sub.result
        typer.echo(f"index version {r['version']}: {r['works']} works, {r['frames']} frames "
                   f"in {r['seconds']} s")


def _print_check(result: dict[str, Any]) -> None:
    colour = {"release": typer.colors.GREEN, "block": typer.colors.RED}.get(
        result["verdict"], typer.colors.YELLOW)
    typer.secho(f"{result['verdict'].upper()}  check {result['check_id']}  "
                f"(index version {result['index_version']})", fg=colour, bold=True)
    for r in result["reasons"]:
        typer.echo(f"  - {r}")
    for m in result["matches"]:
        typer.echo(f"  {m['title']} [{m['work_id']}] policy={m['policy']} score={m['score']} "
                   f"signals={','.join(m['signals'])}")
        for s in m["segments"]:
            work = ("the still image" if m["kind"] == "image"
                    else f"work {s['work_start']:.2f}-{s['work_end']:.2f} s")
            typer.echo(f"      clip {s['clip_start']:.2f}-{s['clip_end']:.2f} s  ~  {work}  "
                       f"({s['frames']} frames, {'+'.join(s['signals'])})")
    for w in result["warnings"]:
        typer.secho(f"  warning: {w}", fg=typer.colors.YELLOW)


@app.command()
@handles_errors
def check(
    path: Path,
    as_json: Annotated[bool, typer.Option("--json", help="Print the full evidence as JSON.")] = False,
) -> None:
    """Gate a clip: print the verdict with its evidence."""
    from compliance import check_clip

    settings = _setup()
    result = check_clip(path, source="cli", settings=settings).to_dict()
    if as_json:
        _json(result)
    else:
        _print_check(result)


@app.command()
@handles_errors
def release(
    path: Path,
    model: Annotated[str, typer.Option(help="Generator model name (goes into the manifest).")],
    model_version: Annotated[str | None, typer.Option(help="Generator model version.")] = None,
    prompt: Annotated[str | None, typer.Option(help="The prompt (only its sha256 is kept).")] = None,
    prompt_sha256: Annotated[str | None, typer.Option(help="sha256 of the prompt, hex.")] = None,
    out: Annotated[Path | None, typer.Option(help="Also copy the signed clip here.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Gate a clip and, if released, write the signed file and print its path.

    Exit code 0: released; 1: not released (blocked or held for review); 2: bad input."""
    from clipgate.files import copy_atomic
    from compliance import generator_identity, public_release, release_clip

    settings = _setup()
    ident = generator_identity(model=model, version=model_version, prompt=prompt,
                               prompt_sha256=prompt_sha256)
    outcome = release_clip(path, generator=ident, source="cli", settings=settings)
    signed = outcome.release["path"] if outcome.release else None
    if signed and out:
        signed = str(copy_atomic(Path(signed), out))
    check = outcome.check.to_dict()
    if as_json:
        _json({"released": outcome.released, "verdict": check["verdict"],
               "reasons": check["reasons"], "path": signed,
               "release": public_release(outcome.release) if outcome.release else None,
               "check": check})
    elif outcome.released:
        typer.echo(signed)
    else:
        _print_check(check)
        typer.secho("not released", fg=typer.colors.RED, err=True)
    if not outcome.released:
        raise typer.Exit(1)


@app.command()
@handles_errors
def verify(path: Path, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Report a file's C2PA manifest, its validation state and its release record.

    Exit code 0 only when the file is Trusted, is byte for byte the released file, and its
    release is active; 1 otherwise; 2 for bad input."""
    from compliance import verify_clip

    settings = _setup()
    report = verify_clip(path, settings=settings)
    if as_json:
        _json(report)
        raise typer.Exit(0 if report["verified"] else 1)
    colour = {"Trusted": typer.colors.GREEN, "Valid": typer.colors.YELLOW}.get(
        report["state"], typer.colors.RED)
    typer.secho(f"{report['state']}  {report['file']}", fg=colour, bold=True)
    comp = report["assertions"].get("org.clipgate.compliance")
    if comp:
        typer.echo(f"  compliance: verdict {comp.get('verdict')}, check {comp.get('check_id')}, "
                   f"index version {comp.get('index_version')}, at {comp.get('checked_at')}")
    gen = report["assertions"].get("org.clipgate.generator")
    if gen:
        typer.echo(f"  generator: {gen.get('model')} {gen.get('version')}")
    for err in report["validation_errors"]:
        typer.echo(f"  validation: {err.get('code')} {err.get('explanation', '')}")
    rel = report["release"]
    if rel:
        typer.echo(f"  release {rel['release_id']}: {rel['status'].upper()}"
                   + (f" ({rel['revoked_reason']})" if rel["revoked_reason"] else ""))
        if not report["file_matches_release"]:
            typer.secho("  this file is NOT the released file: its content differs",
                        fg=typer.colors.RED)
    else:
        typer.echo("  no clipgate release record")
    raise typer.Exit(0 if report["verified"] else 1)


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


@releases_app.command("show")
@handles_errors
def releases_show(release_id: str) -> None:
    """Show a release record."""
    from compliance import get_release, public_release

    settings = _setup()
    _json(public_release(get_release(release_id, settings=settings)))


@releases_app.command("revoke")
@handles_errors
def releases_revoke(
    release_id: str,
    reason: Annotated[str, typer.Option(help="Why: shown by verify and the API.")],
) -> None:
    """Revoke a release: verify reports it revoked and the API stops serving its file."""
    from compliance import public_release, revoke_release

    settings = _setup()
    rel = public_release(revoke_release(release_id, reason=reason, settings=settings))
    typer.echo(f"revoked {rel['release_id']} at {rel['revoked_at']}: {rel['revoked_reason']}")


@releases_app.command("index-frames")
@handles_errors
def releases_index_frames() -> None:
    """Index the frames of releases made before the released-clips index existed, so copies
    with their manifest stripped can be traced to them (claims)."""
    from compliance import backfill_release_frames

    typer.echo(f"indexed {backfill_release_frames(_setup())} release(s)")


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


def _install_domains() -> None:
    from complaints import cli as complaints_cli
    from generator import cli as generation_cli

    generation_cli.install(app, handles_errors=handles_errors, setup=_setup)
    complaints_cli.install(app, handles_errors=handles_errors, setup=_setup)


_install_domains()  # generate, tenants, usage; accounts, flags, claims


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

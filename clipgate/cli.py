"""The `clipgate` command: one entry point for the demo, the API, workers and operators.

Bad input (not media, truncated, no frames, too large, unknown id) exits with code 2 and a
one-line message; an unreachable part (database, index, signer) exits with code 3.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer
import uvicorn

from bench import cli as bench_cli
from clipgate import apikeys, db, logs, metrics, pages
from clipgate.errors import BadInput, NotFound, Unavailable
from clipgate.settings import get_settings
from complaints import cli as complaints_cli
from compliance import cli as compliance_cli
from compliance import sweep_staging
from generator import cli as generation_cli
from index import cli as index_cli

app = typer.Typer(
    help="clipgate: gate AI-generated clips against protected works, sign what is released.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(help="API keys for the generator service.", no_args_is_help=True)
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
    settings = get_settings()
    logs.configure(os.environ.get("CLIPGATE_LOG_LEVEL") or default_level, settings.log_format)
    return settings


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Default from CLIPGATE_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Default from CLIPGATE_PORT.")] = None,
) -> None:
    """Run the HTTP API (OpenAPI docs at /docs)."""
    from clipgate.app import UVICORN_OPTIONS, create_app  # the web app: only for this command

    settings = _setup("INFO")
    db.migrate(db.database_url(settings))
    sweep_staging(settings)  # waits (bounded) for the database to come up
    made = dict(apikeys.first_start_keys(settings))
    if made:
        lines = {"generator": "generator service (checks, releases, verify)",
                 "admin": "operator (also manages protected works)  "}
        typer.secho("No such API key existed, so one was made for each role below. Send it as "
                    "the X-API-Key header; it is not shown again (`clipgate keys create NAME` "
                    "makes more):\n" + "\n".join(f"  {lines[role]}: {key}"
                                                  for role, key in made.items()),
                    fg=typer.colors.CYAN)
    # Without a broker this process is the only worker: it resumes the jobs a previous run left.
    uvicorn.run(create_app(settings, resume_jobs=True, sweep_reviews=True),
                host=host or settings.host,
                port=port or settings.port, **UVICORN_OPTIONS,
                log_config=None)  # uvicorn's loggers go through clipgate's handler (JSON, ids)


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
    if settings.worker_metrics_port:
        try:
            metrics.serve_worker(settings)
        except (ValueError, OSError) as e:
            _fail(f"worker metrics: {e}", EXIT_BAD_INPUT)
    # The worker's assembly configures its Celery app from the environment on import: only here.
    from clipgate.tasks import celery_app

    celery_app.worker_main(["worker", "-Q", queues, "-c", str(concurrency), "-l", "INFO",
                            *(["-B"] if beat else [])])


@app.command()
def beat() -> None:
    """Run Celery beat, which queues the periodic tasks (claims' notices and counter-notice
    restores, held clips' timeouts, lost jobs' requeues); run exactly one (needs
    CLIPGATE_BROKER_URL). Its schedule's state is kept in DATA_DIR/celerybeat-schedule."""
    settings = _setup("INFO")
    if not settings.broker_url:
        _fail("CLIPGATE_BROKER_URL is not set: without a broker `clipgate serve` runs the "
              "periodic work itself", EXIT_BAD_INPUT)
    from clipgate.tasks import celery_app

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    celery_app.start(["beat", "-l", "INFO",
                      "--schedule", str(settings.data_dir / "celerybeat-schedule")])


@app.command()
@handles_errors
def migrate() -> None:
    """Bring the database schema up to date (the compose one-shot migration service)."""
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
    settings = _setup()
    record, key = apikeys.create_key(name, role, settings, account_id=account)
    typer.echo(key)
    typer.echo(f"key {record['id']} ({record['role']}) created; store it now, it is not "
               "shown again", err=True)


@keys_app.command("list")
@handles_errors
def keys_list(
    limit: Annotated[int, typer.Option(help="At most this many.")] = pages.DEFAULT_LIMIT,
    cursor: Annotated[str | None, typer.Option(
        help="The next page: the cursor the page before printed.")] = None,
) -> None:
    """List API keys (never the keys themselves), oldest first, a page at a time."""
    settings = _setup()
    page = apikeys.keys_page(settings, cursor=cursor, limit=limit)
    for k in page.items:
        pk = apikeys.public_key(k)
        state = "revoked" if pk.get("revoked_at") else "active"
        typer.echo(f"{pk['id']}  {pk['prefix']}...  {pk['role']:<9} {state:<7} {pk['name']}")
    typer.echo(pages.footer(page, "keys"))


@keys_app.command("revoke")
@handles_errors
def keys_revoke(key_id: str) -> None:
    """Revoke an API key by its id."""
    settings = _setup()
    apikeys.revoke_key(key_id, settings)
    typer.echo(f"revoked {key_id}")


for _domain_cli in (index_cli, compliance_cli, generation_cli, complaints_cli, bench_cli):
    # works, index; check, release, verify, releases; generate, tenants, usage, jobs;
    # accounts, flags, claims; demo, bench
    _domain_cli.install(app, handles_errors=handles_errors, setup=_setup)


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

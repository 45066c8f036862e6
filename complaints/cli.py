"""The complaints commands of `clipgate`: accounts, retraining flags, and the claims' periodic
tasks. clipgate.cli installs them (with its error handling and settings), so this module never
imports the kernel's CLI."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from clipgate import pages
from clipgate.errors import BadInput
from complaints import SYSTEM, accounts, actors, audit, notify, triage
from complaints.counter import restore_due
from complaints.flags import export_flags, flags_page, handle_flag


def _account_line(a: dict[str, Any]) -> str:
    state = "disabled" if a.get("disabled_at") else "active"
    org = f" ({a['organisation']})" if a.get("organisation") else ""
    return f"{a['id']}  {a['role']:<13} {state:<8} {a['email']}  {a['name']}{org}"


def install(app: typer.Typer, *, handles_errors: Callable, setup: Callable[..., Any]) -> None:
    """Add `accounts ...`, `flags ...` and `claims ...` to app."""
    accounts_app = typer.Typer(help="Accounts of people who sign in to the web pages.",
                               no_args_is_help=True)
    flags_app = typer.Typer(help="Retraining flags from upheld claims, for the ML team.",
                            no_args_is_help=True)
    claims_app = typer.Typer(help="Claims' periodic tasks (a worker with --beat runs them too).",
                             no_args_is_help=True)
    app.add_typer(accounts_app, name="accounts")
    app.add_typer(flags_app, name="flags")
    app.add_typer(claims_app, name="claims")
    audit_app = typer.Typer(help="The audit log.", no_args_is_help=True)
    app.add_typer(audit_app, name="audit")

    @accounts_app.command("create")
    @handles_errors
    def accounts_create(
        email: Annotated[str, typer.Option(help="Their email; they sign in with it.")],
        name: Annotated[str, typer.Option(help="Their full name.")],
        role: Annotated[str, typer.Option(help="rights_holder, reviewer or admin")],
        organisation: Annotated[str | None, typer.Option(help="Company or team.")] = None,
        password_stdin: Annotated[bool, typer.Option(
            "--password-stdin", help="Read the password from the first line of standard input.")] = False,
    ) -> None:
        """Create an account (at least 12 characters of password; asked for unless --password-stdin)."""
        settings = setup()
        if password_stdin:
            password = sys.stdin.readline().rstrip("\r\n")
        else:
            password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
        typer.echo(_account_line(accounts.create_account(
            email, password, name, role, organisation, created_by=actors.system("cli"),
            settings=settings)))


    @accounts_app.command("list")
    @handles_errors
    def accounts_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
        """List accounts (never their passwords)."""
        settings = setup()
        rows = accounts.list_accounts(settings=settings)
        if as_json:
            typer.echo(json.dumps(rows, indent=2, default=str))
            return
        for a in rows:
            typer.echo(_account_line(a))
        typer.echo(f"{len(rows)} accounts")


    @accounts_app.command("disable")
    @handles_errors
    def accounts_disable(account_id: str) -> None:
        """Disable an account: it cannot sign in and its sessions end."""
        settings = setup()
        typer.echo(_account_line(accounts.disable_account(account_id, by=actors.system("cli"),
                                                          settings=settings)))


    @flags_app.command("list")
    @handles_errors
    def flags_list(
        all_: Annotated[bool, typer.Option("--all", help="Include flags marked handled.")] = False,
        limit: Annotated[int, typer.Option(help="At most this many.")] = pages.DEFAULT_LIMIT,
        cursor: Annotated[str | None, typer.Option(
            help="The next page: the cursor the page before printed.")] = None,
    ) -> None:
        """List retraining flags (open ones unless --all), oldest first, a page at a time."""
        settings = setup()
        page = flags_page(SYSTEM, open_only=not all_, cursor=cursor, limit=limit,
                          settings=settings)
        for f in page.items:
            models = ", ".join(f"{m['model']} {m['version']}" for m in f["model_versions"]) or "-"
            state = f"handled {f['handled_at'][:10]}" if f["handled_at"] else "open"
            typer.echo(f"{f['id']}  {state:<18} claim {f['claim_number']:<5} "
                       f"{f['work_title']} ({f['work_owner']})  models: {models}")
        typer.echo(pages.footer(page, "flags"))


    @flags_app.command("export")
    @handles_errors
    def flags_export(
        format_: Annotated[str, typer.Option("--format", help="jsonl or csv")] = "jsonl",
        out: Annotated[Path | None, typer.Option(help="Write to this file, not stdout.")] = None,
        all_: Annotated[bool, typer.Option("--all", help="Include flags marked handled.")] = False,
    ) -> None:
        """Export retraining flags as JSON lines or CSV."""
        settings = setup()
        text = export_flags(format_, open_only=not all_, settings=settings)
        if out is None:
            typer.echo(text, nl=False)
            return
        try:
            out.write_text(text)
        except OSError as e:
            raise BadInput(f"cannot write {out}: {e.strerror or e}") from e
        typer.echo(f"wrote {text.count(chr(10)) - (format_ == 'csv')} flag(s) to {out}", err=True)


    @flags_app.command("handle")
    @handles_errors
    def flags_handle(
        flag_id: str,
        note: Annotated[str, typer.Option(help="How it was handled (e.g. the dataset change).")],
    ) -> None:
        """Mark a retraining flag handled."""
        settings = setup()
        flag = handle_flag(SYSTEM, flag_id, note, settings=settings)
        typer.echo(f"handled {flag['id']} at {flag['handled_at']}")


    @claims_app.command("restore-due")
    @handles_errors
    def claims_restore_due() -> None:
        """Restore clips whose counter-notice waiting period ended without an escalation."""
        typer.echo(f"restored {restore_due(setup())} release(s)")


    @claims_app.command("triage-stuck")
    @handles_errors
    def claims_triage_stuck() -> None:
        """Triage claims left submitted (the broker or database was down when they were filed)."""
        typer.echo(f"queued {triage.retriage_stuck(setup())} claim(s) for triage")


    @claims_app.command("send-notices")
    @handles_errors
    def claims_send_notices() -> None:
        """Send the claimants' notices that are due (email and webhooks), retrying failed ones."""
        counts = notify.send_due(setup())
        typer.echo(", ".join(f"{v} {k}" for k, v in counts.items()))


    @audit_app.command("verify")
    @handles_errors
    def audit_verify(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
        """Check the audit log's hash chain from its first row; exit 1 at the first broken link
        (a row edited, removed or inserted in the database behind the application's back)."""
        result = audit.verify_chain(setup())
        broken = result.broken
        if as_json:
            typer.echo(json.dumps({
                "ok": broken is None, "rows_checked": result.rows, "head": result.head.hex(),
                "broken": None if broken is None else {"row_id": broken.row_id,
                                                       "reason": broken.reason}}))
        elif broken is None:
            typer.echo(f"audit log intact: {result.rows} row(s), head {result.head.hex()}")
        else:
            typer.secho(f"audit log broken at row {broken.row_id}: {broken.reason} "
                        f"(the {result.rows - 1} row(s) before it are intact)",
                        fg=typer.colors.RED, err=True)
        if broken is not None:
            raise typer.Exit(1)

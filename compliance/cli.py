"""The compliance commands of `clipgate`: check, release and verify a clip, and releases (show,
revoke, index-frames). clipgate.cli installs them (with its error handling and settings), so this
module never imports the kernel's CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from clipgate.files import copy_atomic
from compliance import review_cli
from compliance.gate import check_clip
from compliance.provenance import verify_clip
from compliance.release import (
    backfill_release_frames,
    generator_identity,
    get_release,
    public_release,
    release_clip,
    revoke_release,
)


def _json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


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


def install(app: typer.Typer, *, handles_errors: Callable, setup: Callable[..., Any]) -> None:
    """Add `check`, `release`, `verify`, `releases ...` and `reviews ...` to app."""
    releases_app = typer.Typer(help="Released (signed) clips.", no_args_is_help=True)
    app.add_typer(releases_app, name="releases")
    review_cli.install(app, handles_errors=handles_errors, setup=setup)

    @app.command()
    @handles_errors
    def check(
        path: Path,
        as_json: Annotated[bool, typer.Option("--json", help="Print the full evidence as JSON.")] = False,
    ) -> None:
        """Gate a clip: print the verdict with its evidence."""
        settings = setup()
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
        settings = setup()
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
                   "review": outcome.review, "check": check})
        elif outcome.released:
            typer.echo(signed)
        else:
            _print_check(check)
            if outcome.review:
                typer.secho(f"held for review as {outcome.review['review_id']} "
                            "(`clipgate reviews decide`)", fg=typer.colors.YELLOW, err=True)
            typer.secho("not released", fg=typer.colors.RED, err=True)
        if not outcome.released:
            raise typer.Exit(1)


    @app.command()
    @handles_errors
    def verify(path: Path, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
        """Report a file's C2PA manifest, its validation state and its release record. A file
        without a valid manifest is traced to its release by its watermark, then its frames.

        Exit code 0 only when the file is Trusted, is byte for byte the released file, and its
        release is active; 1 otherwise (a recovered copy too: its bytes are not signed); 2 for
        bad input."""
        settings = setup()
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
        stamp = report["timestamp"]
        if stamp:
            trust = ("trusted" if stamp["trusted"] else "valid, TSA not trusted") \
                if stamp["validated"] else "DOES NOT VALIDATE"
            typer.echo(f"  timestamp (RFC 3161): {stamp['time']} ({trust})")
        for err in report["validation_errors"]:
            typer.echo(f"  validation: {err.get('code')} {err.get('explanation', '')}")
        rel = report["release"]
        recovery = report["recovery"]
        if recovery:
            typer.secho(f"  recovered by {recovery['by']} (confidence {recovery['confidence']:.2f})"
                        + (f": {recovery['frames_matched']} of {recovery['frames']} frames match"
                           if recovery["frames"] else ""), fg=typer.colors.YELLOW)
        if rel:
            typer.echo(f"  release {rel['release_id']}: {rel['status'].upper()}"
                       + (f" ({rel['revoked_reason']})" if rel["revoked_reason"] else ""))
            if not report["file_matches_release"] and not recovery:
                typer.secho("  this file is NOT the released file: its content differs",
                            fg=typer.colors.RED)
        else:
            typer.echo("  no clipgate release record")
        typer.secho(f"  {report['verdict']}", bold=True)
        raise typer.Exit(0 if report["verified"] else 1)

    @releases_app.command("show")
    @handles_errors
    def releases_show(release_id: str) -> None:
        """Show a release record."""
        settings = setup()
        _json(public_release(get_release(release_id, settings=settings)))


    @releases_app.command("revoke")
    @handles_errors
    def releases_revoke(
        release_id: str,
        reason: Annotated[str, typer.Option(help="Why: shown by verify and the API.")],
    ) -> None:
        """Revoke a release: verify reports it revoked and the API stops serving its file."""
        settings = setup()
        rel = public_release(revoke_release(release_id, reason=reason, settings=settings))
        typer.echo(f"revoked {rel['release_id']} at {rel['revoked_at']}: {rel['revoked_reason']}")


    @releases_app.command("index-frames")
    @handles_errors
    def releases_index_frames() -> None:
        """Index the frames of releases made before the released-clips index existed, so copies
        with their manifest stripped can be traced to them (claims)."""
        typer.echo(f"indexed {backfill_release_frames(setup())} release(s)")

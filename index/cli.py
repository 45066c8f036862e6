"""The index's commands of `clipgate`: protected works (add, list, remove) and the FAISS index
(rebuild). clipgate.cli installs them (with its error handling and settings), so this module never
imports the kernel's CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from clipgate import pages
from index import registry, tasks


def _json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def _work_line(w: dict[str, Any]) -> str:
    frames = w.get("frames", "?")
    return (
        f"{w['id']}  {w['status']:<8} {w['policy']:<6} {w['kind']:<5} {frames:>4} frames  "
        f"{w['title']} ({w['owner']})"
    )


def install(app: typer.Typer, *, handles_errors: Callable, setup: Callable[..., Any]) -> None:
    """Add `works ...` and `index ...` to app."""
    works_app = typer.Typer(help="Protected works: add, list, remove.", no_args_is_help=True)
    index_app = typer.Typer(help="The FAISS index of protected works.", no_args_is_help=True)
    app.add_typer(works_app, name="works")
    app.add_typer(index_app, name="index")

    @works_app.command("add")
    @handles_errors
    def works_add(
        paths: Annotated[list[Path], typer.Argument(help="Images (JPEG, PNG, WebP) or videos.")],
        owner: Annotated[str, typer.Option(help="Who holds the rights.")],
        title: Annotated[str, typer.Option(help="The work's title.")],
        policy: Annotated[str, typer.Option(help="block, review, track or allow")] = "block",
        alias: Annotated[list[str] | None, typer.Option(
            help="Another name of the work, for prompt screening (repeatable).")] = None,
        description: Annotated[str | None, typer.Option(
            help="What the work shows, for prompt screening.")] = None,
    ) -> None:
        """Register protected works."""
        settings = setup()
        aliases = alias or []
        registry.validate_meta(owner=owner, title=title, policy=policy, aliases=aliases,
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
        limit: Annotated[int, typer.Option(help="At most this many.")] = pages.DEFAULT_LIMIT,
        cursor: Annotated[str | None, typer.Option(
            help="The next page: the cursor the page before printed.")] = None,
    ) -> None:
        """List protected works, oldest first, a page at a time."""
        settings = setup()
        page = registry.works_page(include_removed=all_, cursor=cursor, limit=limit,
                                   settings=settings)
        if as_json:
            _json(page.map(lambda w: {k: v for k, v in w.items() if k != "media_path"})
                  .to_dict())
            return
        for w in page.items:
            typer.echo(_work_line(w))
        typer.echo(pages.footer(page, "works"))


    @works_app.command("remove")
    @handles_errors
    def works_remove(work_id: str) -> None:
        """Remove a work: it never matches again."""
        settings = setup()
        typer.echo(_work_line(registry.remove_work(work_id, settings=settings)))


    @index_app.command("rebuild")
    @handles_errors
    def index_rebuild(
        reembed: Annotated[bool, typer.Option(
            help="Embed every work again from its stored media (after changing the CLIP model).")] = False,
    ) -> None:
        """Rebuild the FAISS index from the database."""
        settings = setup()
        if reembed:
            r = registry.reembed_all(settings)
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

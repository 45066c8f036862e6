"""`clipgate reviews list|show|decide|expire`: the held clips from the shell (an operator's view
of the review queue). compliance.cli installs them."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

import typer

from clipgate import pages
from compliance.held import REVIEW_SORTS, REVIEW_STATES, get_review, list_reviews
from compliance.review import Reviewer, decide_review, expire_reviews

# The shell acts as an operator: the audit log names it so, and the manifest says "admin".
SHELL = Reviewer("system:cli", "admin")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    sign, s = ("-" if seconds < 0 else ""), abs(seconds)
    if s < 3600:
        return f"{sign}{s / 60:.0f} min"
    return f"{sign}{s / 3600:.1f} h" if s < 48 * 3600 else f"{sign}{s / 86400:.1f} d"


def install(app: typer.Typer, *, handles_errors: Callable, setup: Callable[..., Any]) -> None:
    """Add `reviews ...` to app."""
    reviews_app = typer.Typer(help="Clips held for review: list, decide.", no_args_is_help=True)
    app.add_typer(reviews_app, name="reviews")

    @reviews_app.command("list")
    @handles_errors
    def reviews_list(
        state: Annotated[str | None, typer.Option(
            help=f"One of {', '.join(REVIEW_STATES)} (default: all).")] = None,
        sort: Annotated[str, typer.Option(help=f"One of {', '.join(REVIEW_SORTS)}.")] = "age",
        limit: Annotated[int, typer.Option(help="At most this many.")] = pages.DEFAULT_LIMIT,
        cursor: Annotated[str | None, typer.Option(
            help="The next page: the cursor the page before printed.")] = None,
        as_json: Annotated[bool, typer.Option("--json")] = False,
    ) -> None:
        """List held clips, most pressing first, a page at a time."""
        page = list_reviews(state=state, sort=sort, limit=limit, cursor=cursor,
                            settings=setup())
        if as_json:
            typer.echo(json.dumps(page.to_dict(), indent=2, default=str))
            return
        items = page.items
        for r in items:
            works = ", ".join(f"{w['title']} ({w['policy']})" for w in r["held_by"]["works"])
            typer.echo(f"{r['review_id']}  {r['state']:<8} rev {r['revision']}  "
                       f"waiting {_age(r['age_s'])}, left {_age(r['sla_left_s'])}  "
                       f"{r['source']}  {works}")
        typer.echo(pages.footer(page, "held clips") if items else "no held clips")

    @reviews_app.command("show")
    @handles_errors
    def reviews_show(review_id: str) -> None:
        """Show a held clip with the check that held it."""
        typer.echo(json.dumps(get_review(review_id, settings=setup()), indent=2, default=str))

    @reviews_app.command("decide")
    @handles_errors
    def reviews_decide(
        review_id: str,
        decision: Annotated[str, typer.Argument(help="release (sign it) or block")],
        reason: Annotated[str, typer.Option(help="Why, in words (kept in the audit log).")],
        revision: Annotated[int | None, typer.Option(
            help="The revision you looked at (`reviews show`); refused if it changed.")] = None,
        block_works: Annotated[bool, typer.Option(
            help="With block: also set the works that held it to policy block.")] = False,
    ) -> None:
        """Release (sign) or block a held clip. Exit 2 when it was already decided or changed
        since the revision given."""
        item = decide_review(review_id, outcome=decision, reason=reason, reviewer=SHELL,
                             revision=revision, block_works=block_works, settings=setup())
        typer.echo(f"{item['review_id']}: {item['state']}"
                   + (f" as release {item['release_id']}" if item["release_id"] else ""))

    @reviews_app.command("expire")
    @handles_errors
    def reviews_expire() -> None:
        """Block every held clip pending longer than CLIPGATE_REVIEW_TIMEOUT_S (the periodic
        task does this too)."""
        typer.echo(f"blocked {len(expire_reviews(setup()))} overdue held clip(s)")

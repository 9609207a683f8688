"""`cybersentinel feeds`: refresh the threat-intelligence feed snapshot."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cybersentinel.intel.feeds import DEFAULT_FEEDS_DIR, FEEDS, MIRROR_ENV, FeedError, refresh_feeds

feeds_app = typer.Typer(help="Threat-intelligence feed snapshots.", no_args_is_help=True)


@feeds_app.command("refresh")
def feeds_refresh(
    out: Annotated[Path, typer.Option("--out", "-o", help="Snapshot folder (with feeds.json).")] = DEFAULT_FEEDS_DIR,
    feed: Annotated[list[str] | None, typer.Option("--feed", help="Feed to refresh (repeatable); all by default.")
                    ] = None,
    mirror: Annotated[Path | None, typer.Option("--mirror", envvar=MIRROR_ENV,
                                                help="Copy from this offline mirror folder instead of downloading.")
                      ] = None,
    retries: Annotated[int, typer.Option(min=0, help="Retries per download (exponential backoff).")] = 3,
    timeout: Annotated[float, typer.Option(min=1.0, help="Seconds per HTTP request.")] = 60.0,
) -> None:
    """Download (conditional GET) or copy the feeds, validate them, and record them in feeds.json."""
    from rich.console import Console
    from rich.markup import escape

    from cybersentinel.core.files import exit_on_sigterm

    # feed lines, feed names and paths are data: escaped, so no `[...]` or `:emoji:` in them is markup
    console = Console(stderr=True, emoji=False, soft_wrap=True)  # soft wrap: one message, one line
    try:
        # SIGTERM (kill, timeout, a scheduler's stop) unwinds as Ctrl-C does: the temporary download goes, the
        # previous snapshot and its feeds.json stay
        with exit_on_sigterm():
            manifest, errors = refresh_feeds(out, feed or (), mirror, retries=retries, timeout=timeout)
    except FeedError as err:
        console.print(f"[red]error:[/red] {escape(str(err))}")
        raise typer.Exit(2) from None
    for name in feed or list(FEEDS):
        if name in errors:
            console.print(f"[red]{escape(name)}: failed[/red] {escape(errors[name])}")
        else:
            entry = manifest["feeds"][name]
            state = "not modified" if entry.get("not_modified") else "updated"
            console.print(f"{escape(name)}: {state}, {entry['entries']:,} entries, sha256 {entry['sha256'][:12]}")
    if errors:
        raise typer.Exit(2)  # an error, like every other one (1 is `drift`'s "drift found")

"""`cybersentinel intel`: look up IPs, domains and URLs in the feeds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cybersentinel.intel.feeds import DEFAULT_FEEDS_DIR, FeedError, IntelIndex

intel_app = typer.Typer(help="Look up IPs, domains and URLs in the feeds.", no_args_is_help=True)


@intel_app.command("lookup")
def intel_lookup(
    values: Annotated[list[str], typer.Argument(help="IP addresses, domains or URLs.")],
    feeds_dir: Annotated[Path, typer.Option("--feeds-dir", envvar="CYBERSENTINEL_FEEDS_DIR")] = DEFAULT_FEEDS_DIR,
    domain_list: Annotated[list[Path] | None, typer.Option("--domain-list",
                                                           help="Extra domain block list file (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON lines instead of a table.")] = False,
) -> None:
    """Show which feeds list each value, its address status and its Tranco rank."""
    import json

    from rich.console import Console
    from rich.table import Table

    try:
        index = IntelIndex.from_dir(feeds_dir, domain_list or ())
    except (FeedError, OSError) as err:
        Console(stderr=True).print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from None
    results = [index.lookup_url(value) for value in values]
    if as_json:
        for result in results:
            typer.echo(json.dumps(result, sort_keys=True))
        return
    table = Table("value", "kind", "status", "feeds", "tranco rank")
    for result in results:
        listed = bool(result["feeds"])
        status = result["ip_status"] or ("listed" if listed else "unlisted" if result["kind"] == "domain" else "-")
        if result["ip_category"] not in (None, status):
            status += f" ({result['ip_category']})"
        rank = result["tranco_rank"]
        table.add_row(result["value"], result["kind"], f"[red]{status}[/red]" if listed else status,
                      ", ".join(result["feeds"]) or "-", f"{rank:,}" if rank else "-")
    Console().print(table)

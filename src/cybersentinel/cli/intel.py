"""`cybersentinel intel`: look up IPs, domains and URLs in the feeds."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cybersentinel.cli.options import printable
from cybersentinel.intel.feeds import DEFAULT_FEEDS_DIR, FeedError, IntelIndex

if TYPE_CHECKING:
    from rich.text import Text

intel_app = typer.Typer(help="Look up IPs, domains and URLs in the feeds.", no_args_is_help=True)


def _shown(text: str, style: str = "") -> Text:
    """``text`` for a terminal: non-printable characters escaped (``\\x1b``: an escape sequence in a value must
    not drive the terminal), and a Text, so Rich markup in a value (``[red]``) is shown, not obeyed."""
    from rich.text import Text

    return Text(printable(text), style)


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
    from rich.table import Column, Table

    try:
        index = IntelIndex.from_dir(feeds_dir, domain_list or ())
    except (FeedError, OSError) as err:
        Console(stderr=True).print(_shown("error: ", "red") + _shown(str(err)))
        raise typer.Exit(2) from None
    results = [index.lookup_url(value) for value in values]
    if as_json:
        for result in results:
            typer.echo(json.dumps(result, sort_keys=True))
        return
    # "looked up": the canonical host the feeds were asked about (1.10.16.5 for 1.10.4101); values and hosts are
    # folded, never cut short with an ellipsis, so all of what was asked and answered stays visible
    table = Table(Column("value", overflow="fold"), Column("looked up", overflow="fold"), "kind", "status", "feeds",
                  "tranco rank")
    for result in results:
        listed = bool(result["feeds"])
        status = result["error"] or result["ip_status"] or (
            "listed" if listed else "unlisted" if result["kind"] == "domain" else "-")
        if result["ip_category"] not in (None, status):
            status += f" ({result['ip_category']})"
        rank = result["tranco_rank"]
        table.add_row(_shown(result["value"]), _shown(result["host"] or "-"), result["kind"],
                      _shown(status, "red" if listed or result["error"] else ""),
                      _shown(", ".join(result["feeds"]) or "-"), f"{rank:,}" if rank else "-")
    Console().print(table)

"""`cybersentinel blocklist`: block rules from verdicts, feeds and domain lists."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from cybersentinel.cli.options import (
    AllowFiles,
    AllowNames,
    AllowTop,
    BlockFiles,
    FeedbackDb,
    UseFeedback,
    pinned_list,
    with_feedback,
)
from cybersentinel.ops.blocklist import (
    DEFAULT_VERDICTS,
    FORMATS,
    Entry,
    Guard,
    InputError,
    Rejected,
    build,
    entries_from_block_list,
    entries_from_feeds,
    entries_from_scored,
    export,
    read_scored,
    rejected_csv,
    rule_counts,
)

blocklist_app = typer.Typer(help="Turn verdicts and feed entries into block rules.", no_args_is_help=True)


@blocklist_app.command("export")
def export_command(
    inputs: Annotated[list[Path] | None, typer.Argument(help="Scored files (CSV, Parquet, JSON lines) with url and "
                                                              "verdict columns.", exists=True, dir_okay=False)] = None,
    out_dir: Annotated[Path, typer.Option("--out-dir", "-o", help="Folder for the rule files.")] = Path("blocklist"),
    formats: Annotated[list[str] | None, typer.Option("--format", "-f", help=f"Output format (repeatable): "
                                                      f"{', '.join(FORMATS)}. All by default. rpz and stix read "
                                                      "the file they replace in --out-dir (the zone's serial, the "
                                                      "indicators' ids and times): export to the same folder.")
                       ] = None,
    verdicts: Annotated[list[str] | None, typer.Option("--verdict", help="Verdicts to block (repeatable); "
                                                       "default: malicious.")] = None,
    feeds_dir: Annotated[Path | None, typer.Option("--feeds-dir", help="Also block every entry of the feeds in this"
                                                   " folder (IP feeds; private and bogon ranges excluded).")] = None,
    domain_list: Annotated[list[Path] | None, typer.Option("--domain-list", help="Also block the names of this "
                                                           "domain block list file (repeatable).")] = None,
    min_score: Annotated[float | None, typer.Option(min=0.0, max=1.0, help="Block scored rows only from this "
                                                    "score up.")] = None,
    allow_names: AllowNames = None,
    allow_files: AllowFiles = None,
    allow_top: AllowTop = 10_000,
    tranco: Annotated[Path | None, typer.Option(dir_okay=False, help="Tranco list (default: the one in "
                                                "--feeds-dir, else data/feeds/tranco_top100k.csv).")] = None,
    block_files: BlockFiles = None,
    feedback_db: FeedbackDb = None,
    feedback: UseFeedback = True,
    widest_v4: Annotated[int, typer.Option(min=0, max=32, help="Widest IPv4 range a rule may cover.")] = 12,
    widest_v6: Annotated[int, typer.Option(min=0, max=128, help="Widest IPv6 range a rule may cover.")] = 24,
    model_dir: Annotated[Path, typer.Option(file_okay=False, help="Model folder: no rule covers the public DNS "
                                            "resolvers pinned with its model (skipped if it holds none).")
                         ] = Path("models"),
) -> None:
    """Write block rules; rows that cannot be blocked go to rejected.csv with a reason."""
    import json

    from rich.console import Console

    from cybersentinel.core.files import ModelIntegrityError
    from cybersentinel.intel.feeds import FeedError, IntelIndex, parse_ranked_domains, read_feed_file
    from cybersentinel.scoring.policy import read_site_list

    console = Console(stderr=True)
    chosen = formats or list(FORMATS)
    unknown = sorted(set(chosen) - set(FORMATS))
    if unknown:
        raise typer.BadParameter(f"unknown format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS)}",
                                 param_hint="--format")
    if not inputs and feeds_dir is None and not domain_list:
        raise typer.BadParameter("give scored files, --feeds-dir or --domain-list")
    entries: list[Entry] = []
    rejected: list[Rejected] = []
    report: dict[str, Any] = {"inputs": {}}
    try:
        allow = read_site_list(allow_files or [], allow_names or [], "allowlist")
        tranco = tranco or next((p / "tranco_top100k.csv" for p in (feeds_dir, Path("data/feeds"))
                                 if p is not None and (p / "tranco_top100k.csv").is_file()), None)
        ranked = read_feed_file(tranco, parse_ranked_domains).entries if tranco and allow_top else []
        popularity = dict(reversed(ranked))  # a name listed twice keeps its better rank
        if allow_top and not popularity:
            popularity = pinned_list(model_dir, console, "popularity")
            which = "are those pinned with the model" if popularity else "are protected only by the allowlist"
            console.print(f"[yellow]warning:[/yellow] no Tranco list (give --tranco or --feeds-dir): popular sites "
                          f"{which}")
        allow, block = with_feedback(allow, read_site_list(block_files or [], [], "block list"), feedback, feedback_db)
        guard = Guard(allow, popularity, allow_top, widest_v4, widest_v6, pinned_list(model_dir, console, "resolvers"))
        found, bad = entries_from_block_list(block.entries, guard)
        entries += found
        rejected += bad
        for path in inputs or ():
            frame = read_scored(path)
            found, bad, not_selected = entries_from_scored(frame, path.name, tuple(verdicts or DEFAULT_VERDICTS),
                                                           guard, min_score)
            entries += found
            rejected += bad
            report["inputs"][str(path)] = {"rows": len(frame), "blockable": len(found), "rejected": len(bad),
                                           "not_selected": not_selected}
        if feeds_dir is not None or domain_list:
            index = IntelIndex.from_dir(feeds_dir, domain_list or ()) if feeds_dir else IntelIndex.build(
                {}, {p.stem: _read_domain_list(p) for p in domain_list or ()})
            found, bad = entries_from_feeds(index, guard)
            entries += found
            rejected += bad
            report["feeds"] = {"entries": len(found), "rejected": len(bad)}
    except (InputError, FeedError, OSError, ValueError, ModelIntegrityError) as err:
        console.print(f"[red]error:[/red] {err}")
        raise typer.Exit(2) from None
    bl = build(entries)
    report.update({"domains": len(bl.domains), "networks": len(bl.networks), "ipv4_collapsed": len(bl.ipv4),
                   "ipv6_collapsed": len(bl.ipv6), "duplicates": len(entries) - len(bl.entries),
                   "rejected": len(rejected)})
    extra = {"rejected.csv": rejected_csv(rejected), "report.json": json.dumps(report, indent=2, sort_keys=True) + "\n"}
    written = export(bl, chosen, out_dir, extra)  # every file or none (an OSError: the command's one-line error)
    for path, counts in report["inputs"].items():
        console.print(f"{path}: {counts['rows']:,} rows = {counts['blockable']:,} blockable + "
                      f"{counts['not_selected']:,} not selected by verdict + {counts['rejected']:,} rejected")
    console.print(f"{rule_counts(bl)} ({report['duplicates']:,} duplicates merged, {len(rejected):,} rejected: "
                  f"see {out_dir / 'rejected.csv'})")
    for name, path in written.items():
        console.print(f"  {name:9s} {path}")


def _read_domain_list(path: Path) -> list[str]:
    from cybersentinel.intel.feeds import parse_domain_list, read_feed_file

    return read_feed_file(path, parse_domain_list).entries

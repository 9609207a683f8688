"""`cybersentinel report`: the pull-request metrics report, built offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cybersentinel.mlops.report import DEFAULT_OUT, ReportError, build_report


def report_command(
    base: Annotated[str, typer.Option(help="git revision to compare with (the PR's base branch)")] = "main",
    target: Annotated[str | None, typer.Option(help="revision to report on (default: the workspace)")] = None,
    out: Annotated[Path, typer.Option(file_okay=False, help="folder for report.md and the images")] = DEFAULT_OUT,
    fmt: Annotated[str, typer.Option("--format", help="image format: png or svg")] = "png",
    repo: Annotated[Path, typer.Option(exists=True, file_okay=False, help="DVC repository")] = Path("."),
) -> None:
    """Metrics and params diff against BASE plus plots of both revisions, as markdown and images (offline)."""
    if fmt not in {"png", "svg"}:
        raise typer.BadParameter("png or svg", param_hint="--format")
    try:
        report = build_report(repo.resolve(), base, out if out.is_absolute() else repo / out, target, fmt)
    except ReportError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc  # 2 as every usage error; 1 is `drift`'s "drift found"
    typer.echo(str(report))

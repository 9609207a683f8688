"""`cybersentinel drift`: has the scored traffic drifted from what the model was trained on? Exit 0: no; 1: a
threshold was crossed (the report says which); 2: bad input (usage error)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cybersentinel.model.drift import Thresholds

DEFAULTS = Thresholds()


def drift(
    current: Annotated[Path, typer.Option(exists=True, help="Scored traffic: a CSV or Parquet file with a `url` column "
                                          "(`cybersentinel predict` output), or a decision log folder.")],
    model_dir: Annotated[Path, typer.Option(help="Model folder: its reference profile is the baseline.")
                         ] = Path("models"),
    last: Annotated[str | None, typer.Option(help="Decision log: the last span of time, e.g. 24h, 7d.")] = None,
    since: Annotated[str | None, typer.Option(help="Decision log: from this time (ISO 8601, UTC by default).")] = None,
    until: Annotated[str | None, typer.Option(help="Decision log: up to this time (exclusive).")] = None,
    out: Annotated[Path, typer.Option(help="Folder for drift.html and drift.json.")] = Path("reports/drift"),
    feature_psi: Annotated[float, typer.Option(min=0.0, help="A feature has drifted above this PSI.")
                           ] = DEFAULTS.feature_psi,
    drifted_share: Annotated[float, typer.Option(min=0.0, max=1.0, help="Alarm when more than this share of the "
                                                 "features drifted.")] = DEFAULTS.drifted_share,
    score_psi: Annotated[float, typer.Option(min=0.0, help="Alarm above this PSI of the model score.")
                         ] = DEFAULTS.score_psi,
    flagged_delta: Annotated[float, typer.Option(min=0.0, max=1.0, help="Alarm when the share flagged moves by more "
                                                 "than this (absolute).")] = DEFAULTS.flagged_delta,
    no_score_share: Annotated[float, typer.Option(min=0.0, max=1.0, help="Alarm when more than this share of inputs "
                                                  "has no model score.")] = DEFAULTS.no_score_share,
) -> None:
    """Compare scored traffic with the model's reference profile; write an HTML report and JSON figures; exit 1 on
    drift, so a scheduler can act."""
    from rich.console import Console

    from cybersentinel.core.files import ModelIntegrityError, load_manifest
    from cybersentinel.ops.decisions import parse_window
    from cybersentinel.ops.drift import measure, read_log_window, read_scored_file, summary, write_outputs

    console = Console(stderr=True)
    thresholds = Thresholds(feature_psi, drifted_share, score_psi, flagged_delta, no_score_share)
    try:
        model_sha256 = load_manifest(model_dir)["sha256"]
    except (OSError, ValueError, KeyError) as err:
        raise typer.BadParameter(f"cannot read the model's manifest: {err}", param_hint="--model-dir") from err
    try:  # unreadable traffic (a corrupt Parquet file is an ArrowInvalid, a ValueError) is a usage error too
        if current.is_dir():
            start, end = parse_window(last, since, until)
            traffic = read_log_window(current, model_sha256, start, end)
        else:
            if last or since or until:
                raise ValueError("--last/--since/--until select a window of a decision log folder")
            traffic = read_scored_file(current)
    except (OSError, ValueError) as err:
        raise typer.BadParameter(str(err), param_hint="--current") from err
    try:
        figures = measure(model_dir, traffic, thresholds)
    except (FileNotFoundError, ModelIntegrityError, KeyError) as err:
        raise typer.BadParameter(f"cannot load the model or its reference: {err}", param_hint="--model-dir") from err
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--current") from err
    write_outputs(figures, out / "drift.json", out / "drift.html")
    console.print(summary(figures))
    console.print(f"report: {out / 'drift.html'}; figures: {out / 'drift.json'}")
    raise typer.Exit(1 if figures["drift"] else 0)

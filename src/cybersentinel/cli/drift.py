"""`cybersentinel drift`: has the scored traffic drifted from what the model was trained on? Exit 0: no; 1: a
threshold was crossed (the report says which); 2: bad input (usage error); 3: too few rows to judge (fewer than
--min-rows; no report written)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from cybersentinel.model.drift import Thresholds

DEFAULTS = Thresholds()


MIN_ROWS = 200  # the default --min-rows: ~20 rows per reference decile, below which PSI is mostly sampling noise


TOO_FEW_ROWS = 3  # the exit status for "too few rows to judge": not 1 (drift found), not 2 (bad input)


MAX_LAST = timedelta(days=36_500)  # a century: longer than any log keeps, and far inside datetime's range


def checked_last(value: str | None) -> str | None:
    """``--last``: a span the decision log can hold, checked before anything is read (a huge one overflows)."""
    from cybersentinel.ops.decisions import parse_window

    if value is None:
        return None
    now = datetime.now(UTC)
    try:
        start, _ = parse_window(value, None, None, now)
    except ValueError as err:
        raise typer.BadParameter(str(err)) from err
    except OverflowError:
        start = None
    if start is None or now - start > MAX_LAST:
        raise typer.BadParameter(f"{value!r} is longer than the limit, {MAX_LAST.days}d")
    if start >= now:
        raise typer.BadParameter(f"{value!r}: the span must be longer than 0")
    return value


def checked_window(last: str | None, since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    """The decision log window; --since must come before --until (else it is empty, not a question of data)."""
    from cybersentinel.ops.decisions import parse_window

    try:
        start, end = parse_window(last, since, until)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--last/--since/--until") from err
    except OverflowError as err:  # --until near year 1 minus --last
        raise typer.BadParameter(f"the window starts before year 1 ({err})", param_hint="--last") from err
    if start is not None and end is not None and start >= end:
        raise typer.BadParameter(f"{start.isoformat()} is not before --until {end.isoformat()}",
                                 param_hint="--since")
    return start, end


def drift(
    current: Annotated[Path, typer.Option(exists=True, help="Scored traffic: a CSV or Parquet file with a `url` column "
                                          "(`cybersentinel predict` output), or a decision log folder.")],
    model_dir: Annotated[Path, typer.Option(help="Model folder: its reference profile is the baseline.")
                         ] = Path("models"),
    last: Annotated[str | None, typer.Option(callback=checked_last, help="Decision log: the last span of time, e.g. "
                                             f"24h, 7d (at most {MAX_LAST.days}d).")] = None,
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
    min_rows: Annotated[int, typer.Option(min=1, help="Fewer rows than this (of this model) are too few to judge: "
                                          f"no report, exit {TOO_FEW_ROWS} (not 1, drift).")] = MIN_ROWS,
) -> None:
    """Compare scored traffic with the model's reference profile; write an HTML report and JSON figures; exit 1 on
    drift, so a scheduler can act; 2 on bad input; 3 when there are too few rows to judge (--min-rows)."""
    from rich.console import Console
    from rich.markup import escape

    from cybersentinel.core.files import ModelIntegrityError, load_manifest
    from cybersentinel.ops.drift import (
        measure,
        no_rows_message,
        read_log_window,
        read_scored_file,
        summary,
        too_few_rows,
        write_outputs,
    )

    console = Console(stderr=True)
    thresholds = Thresholds(feature_psi, drifted_share, score_psi, flagged_delta, no_score_share)
    try:
        model_sha256 = load_manifest(model_dir)["sha256"]
    except (OSError, ValueError, KeyError) as err:
        raise typer.BadParameter(f"cannot read the model's manifest: {err}", param_hint="--model-dir") from err
    window = checked_window(last, since, until) if current.is_dir() else None
    try:  # unreadable traffic (a corrupt Parquet file is an ArrowInvalid, a ValueError) is a usage error too
        if window is not None:
            start, end = window
            traffic = read_log_window(current, model_sha256, start, end)
        else:
            if last or since or until:
                raise ValueError("--last/--since/--until select a window of a decision log folder")
            traffic = read_scored_file(current)
    except (OSError, ValueError) as err:
        raise typer.BadParameter(str(err), param_hint="--current") from err
    if not traffic.urls:
        raise typer.BadParameter(no_rows_message(traffic), param_hint="--current")
    if too_few := too_few_rows(traffic, min_rows):
        console.print(escape(too_few), soft_wrap=True)  # one line, however long
        raise typer.Exit(TOO_FEW_ROWS)
    try:
        figures = measure(model_dir, traffic, thresholds)
    except (FileNotFoundError, ModelIntegrityError, KeyError) as err:
        raise typer.BadParameter(f"cannot load the model or its reference: {err}", param_hint="--model-dir") from err
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--current") from err
    write_outputs(figures, out / "drift.json", out / "drift.html")
    console.print(escape(summary(figures)))  # paths and data are text, not Rich markup
    console.print(f"report: {escape(str(out / 'drift.html'))}; figures: {escape(str(out / 'drift.json'))}")
    raise typer.Exit(1 if figures["drift"] else 0)

"""`cybersentinel assess`: the detector's figures on a team's own labelled URLs, scored by `predict`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

MIN_RESAMPLES = 20  # fewer give a 95% interval from one or two draws at each end


def assess(
    scored: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A file `cybersentinel predict` wrote "
                                           "(CSV, Parquet or JSON Lines) from labelled input: the label column is "
                                           "kept beside the results.")],
    label_column: Annotated[str, typer.Option("--label-column", "-l", help="The label: 1, true, yes, phishing, "
                                              "malicious, malware or bad; 0, false, no, legitimate, benign or good "
                                              "(any case).")] = "label",
    by: Annotated[str | None, typer.Option(help="Also give the figures for each value of this column (a "
                                           "collection, a source, a month).")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the figures and the worst rows as JSON here (their "
                                             "URLs' credentials masked: a report for people to read).")] = None,
    top: Annotated[int, typer.Option(min=0, help="Legitimate URLs scored highest and phishing URLs scored lowest "
                                     "to list (in --out).")] = 20,
    resamples: Annotated[int, typer.Option(min=0, help=f"Resamples of the registered domains for the 95% intervals "
                                           f"(0: none; else at least {MIN_RESAMPLES}).")] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the resampling.")] = 0,
) -> None:
    """The detector on your own labelled URLs: ROC-AUC, TPR at 1% FPR, recall and false positives at the
    served threshold, as stage `generalise` reports them for a held-out collection. Score the file first
    (`cybersentinel predict -i labelled.csv -o scored.csv`): the figures are those of the model and feeds that
    scored it. Exit 2 on bad input (an unknown label, a missing column)."""
    from rich.console import Console
    from rich.markup import escape

    from cybersentinel.core.files import write_json
    from cybersentinel.ops.assessment import assess as assessment
    from cybersentinel.ops.assessment import read_labelled, summary_lines
    from cybersentinel.ops.blocklist import InputError

    if 0 < resamples < MIN_RESAMPLES:
        raise typer.BadParameter(f"{resamples} resamples make no interval: give 0 or at least {MIN_RESAMPLES}",
                                 param_hint="--resamples")
    if out is not None and out.resolve() == scored.resolve():
        raise typer.BadParameter("the report would replace the scored file: name another file", param_hint="--out")
    try:
        rows = read_labelled(scored, label_column, by)
    except InputError as err:
        raise typer.BadParameter(str(err), param_hint="SCORED") from err
    report = assessment(rows, resamples, seed, top)
    console = Console(soft_wrap=True)
    for line in summary_lines(report):
        console.print(escape(line))
    if out is not None:
        write_json(out, {"scored": str(scored), "label_column": label_column, "by": by, **report})
        console.print(f"figures and the {top} worst rows of each class: {escape(str(out))}")

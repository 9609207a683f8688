"""`cybersentinel assess`: the detector's figures on a team's own labelled URLs, scored by `predict`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from cybersentinel.cli.options import ModelSha256

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
    column: Annotated[str, typer.Option("--column", "-c", help="The column `predict` scored (its -c).")] = "url",
    model_dir: Annotated[Path, typer.Option(help="The folder of the model that scored the file (`predict "
                                            "--model-dir`): verified as predict verifies it, checked against "
                                            "the file by scoring up to 200 of its rows again, and named in the "
                                            "report by its hashes.")] = Path("models"),
    model_sha256: ModelSha256 = None,
) -> None:
    """The detector on your own labelled URLs: ROC-AUC, TPR at 1% FPR, recall and false positives at the
    served threshold, as stage `generalise` reports them for a held-out collection. Score the file first
    (`cybersentinel predict -i labelled.csv -o scored.csv`): the figures are those of the model and feeds that
    scored it, and --model-dir the folder of that model, whose hashes the report records. Exit 2 on bad input (an
    unknown label, a missing column) or a model that fails its checks."""
    from rich.console import Console
    from rich.markup import escape

    from cybersentinel.cli.predict import check_model_json
    from cybersentinel.core.files import ModelIntegrityError, write_json
    from cybersentinel.features.lexical import FeatureDefinitionError
    from cybersentinel.ops.assessment import assess as assessment
    from cybersentinel.ops.assessment import read_labelled, scoring_model, summary_lines
    from cybersentinel.ops.blocklist import InputError

    if 0 < resamples < MIN_RESAMPLES:
        raise typer.BadParameter(f"{resamples} resamples make no interval: give 0 or at least {MIN_RESAMPLES}",
                                 param_hint="--resamples")
    if out is not None and out.resolve() == scored.resolve():
        raise typer.BadParameter("the report would replace the scored file: name another file", param_hint="--out")
    try:
        rows = read_labelled(scored, label_column, by, column)
    except InputError as err:
        raise typer.BadParameter(str(err), param_hint="SCORED") from err
    check_model_json(model_dir)
    try:  # the report names the model its figures are of, by hashes verified as predict verifies them
        model = scoring_model(model_dir, rows, model_sha256)
    except (FileNotFoundError, KeyError, FeatureDefinitionError, ModelIntegrityError) as exc:
        raise typer.BadParameter(f"cannot load the model: {exc}", param_hint="--model-dir") from exc
    except InputError as err:
        raise typer.BadParameter(str(err), param_hint="--model-dir") from err
    report = assessment(rows, resamples, seed, top)
    console = Console(soft_wrap=True)
    for line in summary_lines(report):
        console.print(escape(line))
    console.print(escape(f"model {model['model_sha256'][:12]} (model.json {model['manifest_sha256'][:12]}) in "
                         f"{model_dir}"))
    if out is not None:
        write_json(out, {"scored": str(scored), "label_column": label_column, "by": by, **model, **report})
        console.print(f"figures and the {top} worst rows of each class: {escape(str(out))}")

"""Generalise: the honest test. Leave each collection out in turn (train the configured recipe on the others,
score the held-out one) and train on what was known up to a cut-off year to score the phishing that came
after. Writes the headline (reports/generalisation.json, a DVC metric: the worst held-out collection and the
forward-in-time figures), the per-collection table (reports/generalisation_details.json, not a DVC metric) and
its plot data."""

import argparse
import json
from pathlib import Path

import pandas as pd
from joblib import Parallel, delayed

from cybersentinel.core.files import read_params, write_json
from cybersentinel.model.generalisation import fit_recipe, forward_rows, judge, loco_rows


def run_fold(table: pd.DataFrame, training, evaluation, params: dict, best_params: dict) -> dict:
    featurizer, classifier, threshold = fit_recipe(
        table[training], params["dataset"], params["featurizer"], params["model"], best_params,
        params["threshold"]["max_fpr"], params["seed"])
    result = judge(featurizer, classifier, threshold, table[evaluation])
    return {**result, "train_rows": int(training.sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--best-params", type=Path, required=True, help="the hyperparameters train chose")
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--details", type=Path, required=True)
    parser.add_argument("--plot", type=Path, required=True)
    args = parser.parse_args()
    params = read_params()
    config = params["generalise"]
    table = pd.read_parquet(args.prepared)
    best_params = json.loads(args.best_params.read_text())
    collections = sorted(table["source"].unique())
    folds = {name: loco_rows(table, name) for name in collections}
    folds["forward"] = forward_rows(table, config["cutoff_year"])
    results = Parallel(n_jobs=config["n_jobs"])(delayed(run_fold)(table, training, evaluation, params, best_params)
                                                for training, evaluation in folds.values())
    by_name = dict(zip(folds, results, strict=True))
    forward = by_name.pop("forward")
    aucs = [r["roc_auc"] for r in by_name.values()]
    fprs = [r["fpr_at_threshold"] for r in by_name.values() if "fpr_at_threshold" in r]
    headline = ("roc_auc", "tpr_at_1pct_fpr", "recall_at_threshold", "fpr_at_threshold", "rows")
    forward = {"cutoff_year": config["cutoff_year"], **forward}
    write_json(args.metrics, {"loco_min_roc_auc": min(aucs), "loco_max_fpr_at_threshold": max(fprs),
                              "forward": {k: forward[k] for k in ("cutoff_year", *headline) if k in forward}})
    write_json(args.details, {"loco": by_name, "forward": forward})
    write_json(args.plot, [{"collection": name, "roc_auc": r["roc_auc"], "tpr_at_1pct_fpr": r["tpr_at_1pct_fpr"]}
                           for name, r in by_name.items()])
    for name, r in by_name.items():
        shares = [f"{label} {r[key]:.4f}" for label, key in (("recall", "recall_at_threshold"),
                                                              ("FPR", "fpr_at_threshold")) if key in r]
        print(f"{name:30s} ROC-AUC {r['roc_auc']:.4f}  TPR@1%FPR {r['tpr_at_1pct_fpr']:.3f}  {'  '.join(shares)}")
    print(f"forward (train <= {config['cutoff_year']}): ROC-AUC {forward['roc_auc']:.4f}, "
          f"recall at threshold {forward['recall_at_threshold']:.3f}, TPR@1%FPR {forward['tpr_at_1pct_fpr']:.3f}")


if __name__ == "__main__":
    main()

"""How far the served threshold moves with LightGBM's seed alone, read by each of `budget_threshold`'s estimators.

For each seed and each fold of stage `generalise` (the collections left out, forward in time), the recipe is trained
as the stage trains it (`fit_out_of_fold`: featurizer, classifier, out-of-fold calibrated scores), and the budget's
threshold is read from the same out-of-fold scores by every estimator (``order_statistic``, the recipe's, and
``harrell_davis``): paired, so only the estimator differs. The fold's held-out rows are then judged by the served
decision at each threshold (the popular sites, stock files and resolvers pinned as `train` pins them; no feeds), as
`generalise` judges them. Printed per fold: each estimator's threshold (mean and sd over the seeds), served
false-positive rate (mean and range) and served recall (mean); then, per seed, the worst held-out false-positive rate
and the mean recall. Prints figures; asserts nothing. About 100 s a fold and seed, two folds at a time. Reads
data/prepared.parquet, data/intel, data/software.txt, data/resolvers.txt, params.yaml and models/best_params.json
(`dvc repro`).

    python benchmarks/threshold_seeds.py                       # seeds 42, 1 and 2: about 25 min
    python benchmarks/threshold_seeds.py --seeds 42 --folds web_page_phishing,ebbu2017
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from policy_rules import fold_inputs

REPO = Path(__file__).resolve().parents[1]


def fold_figures(table: pd.DataFrame, training: np.ndarray, evaluation: np.ndarray, params: Mapping[str, Any],
                 best_params: Mapping[str, Any], lists: Mapping[str, Any], familiar: list[str],
                 flaggable: np.ndarray, words: list[str], seed: int) -> dict[str, dict[str, float]]:
    """{estimator: {threshold, served_fpr, served_recall}} of one fold trained with ``seed``."""
    from sklearn.pipeline import Pipeline

    from cybersentinel.core.config import feedback_source_names
    from cybersentinel.model.estimators import BUDGET_ESTIMATORS, budget_threshold
    from cybersentinel.model.generalisation import fit_out_of_fold, shares_and_ranking
    from cybersentinel.scoring.detector import Detector

    train, rows = table[training], table[evaluation]
    featurizer, classifier, held_out = fit_out_of_fold(
        train, params["dataset"], params["featurizer"], params["model"], best_params, params["calibration"], seed,
        familiar, set(rows["group"]), params["train"]["root_page_balance"],
        words if params["featurizer"]["name_words"] else ())
    y, sources = train["label"].to_numpy(), train["source"].to_numpy()
    budgeted = ~np.isin(sources, list(feedback_source_names(params["dataset"])))
    model = Pipeline([("features", featurizer), ("classifier", classifier)])
    out = {}
    for estimator in BUDGET_ESTIMATORS:
        threshold = budget_threshold(y[budgeted], held_out[budgeted], sources[budgeted],
                                     params["threshold"]["max_fpr"], flaggable[training][budgeted], estimator)
        manifest = {"kind": "url", "inputs": ["url"], "policy": {**params["policy"], "threshold": threshold},
                    "software": {"name": params["software"]["wordpress"]["label"]}}
        served = Detector(model, manifest, None, **lists).score_values(rows["url"], reasons=False)
        malicious = served["verdict"].to_numpy(zero_copy_only=False) == "malicious"
        scores = served["score"].to_numpy(zero_copy_only=False).astype(float)
        figures = shares_and_ranking(rows["label"].to_numpy(), scores, malicious, rows["group"].to_numpy(), 0, seed,
                                     prefix="served_")
        out[estimator] = {"threshold": threshold, **{k: figures[k] for k in ("served_fpr", "served_recall")
                                                     if k in figures}}
    return out


def summary(results: dict[int, dict[str, dict[str, dict[str, float]]]]) -> list[str]:
    """Printed lines: per fold, each estimator's threshold, served false-positive rate and recall over the seeds;
    per seed and estimator, the worst held-out false-positive rate and the mean recall."""
    seeds = list(results)
    folds = list(results[seeds[0]])
    estimators = list(results[seeds[0]][folds[0]])
    lines = []
    for fold in folds:
        parts = []
        for estimator in estimators:
            runs = [results[seed][fold][estimator] for seed in seeds]
            thresholds = [run["threshold"] for run in runs]
            part = f"{estimator} threshold {np.mean(thresholds):.5f} (sd {np.std(thresholds):.5f})"
            if "served_fpr" in runs[0]:
                fprs = [run["served_fpr"] for run in runs]
                part += f" FPR {np.mean(fprs):.2%} [{min(fprs):.2%}, {max(fprs):.2%}]"
            if "served_recall" in runs[0]:
                part += f" recall {np.mean([run['served_recall'] for run in runs]):.3f}"
            parts.append(part)
        lines.append(f"{fold:28s} " + " | ".join(parts))
    for estimator in estimators:
        worst = [max(results[seed][fold][estimator].get("served_fpr", 0.0) for fold in folds if fold != "forward")
                 for seed in seeds]
        recall = [np.mean([results[seed][fold][estimator]["served_recall"] for fold in folds
                           if "served_recall" in results[seed][fold][estimator]]) for seed in seeds]
        lines.append(f"{estimator}: worst held-out FPR per seed {', '.join(f'{w:.2%}' for w in worst)}; "
                     f"mean recall per seed {', '.join(f'{r:.3f}' for r in recall)}")
    return lines


def main() -> None:
    from joblib import Parallel, delayed

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", default="42,1,2", help="comma-separated LightGBM seeds")
    parser.add_argument("--folds", default="", help="comma-separated fold names (default: every fold)")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    given = fold_inputs(args.folds)
    folds = given["folds"]
    seeds = [int(seed) for seed in args.seeds.split(",")]
    jobs = [(seed, name) for seed in seeds for name in folds]
    figures = Parallel(n_jobs=args.jobs)(
        delayed(fold_figures)(given["table"], *folds[name], given["params"], given["best_params"], given["lists"],
                              given["familiar"], given["flaggable"], given["words"], seed) for seed, name in jobs)
    results: dict[int, dict[str, Any]] = {seed: {} for seed in seeds}
    for (seed, name), result in zip(jobs, figures, strict=True):
        results[seed][name] = result
    print("\n".join(summary(results)))


if __name__ == "__main__":
    main()

"""Generalise: the honest test. Leave each collection out in turn (train the configured recipe on the others,
score the held-out one) and train on what was known up to a cut-off year to score the phishing that came
after. Each fold is judged twice: the model alone at its threshold, and the served decision (the same model
through the decision policy with the popular sites and stock-software files pinned as `train` pins them, no
feeds), which is what users get. Writes the headline (reports/generalisation.json, a DVC metric: the worst
held-out collection and the forward-in-time figures), the per-collection table
(reports/generalisation_details.json, not a DVC metric) and its plot data."""

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.pipeline import Pipeline

from cybersentinel.core.config import feedback_source_names
from cybersentinel.core.files import read_params, write_json
from cybersentinel.intel.popular import read_popular_sites
from cybersentinel.model.generalisation import (
    fit_recipe,
    forward_rows,
    held_out_collections,
    judge,
    loco_rows,
    shares_and_ranking,
)
from cybersentinel.scoring.detector import Detector, policy_lists, rules_only
from cybersentinel.scoring.policy import Policy


def served_judgement(featurizer, classifier, threshold: float, rows: pd.DataFrame, policy: dict,
                     lists: dict[str, Any], software: str, resamples: int = 0, seed: int = 0) -> dict:
    """The served decision's ROC-AUC and TPR at 1% FPR (of its scores) and the share of each class it calls
    `malicious` (recall of phishing, false-positive rate of legitimate rows), the fold's model behind the policy."""
    manifest = {"kind": "url", "inputs": ["url"], "policy": {**policy, "threshold": threshold},
                "software": {"name": software}}
    detector = Detector(Pipeline([("features", featurizer), ("classifier", classifier)]), manifest, None, **lists)
    served = detector.score_values(rows["url"], reasons=False)
    malicious = served["verdict"].to_numpy(zero_copy_only=False) == "malicious"
    scores = served["score"].to_numpy(zero_copy_only=False).astype(float)
    # what the decision cannot score (no host) is counted and left out of the ranking, as evaluate does
    return {"served_unscorable_rows": int(np.isnan(scores).sum()),
            **shares_and_ranking(rows["label"].to_numpy(), scores, malicious, rows["group"].to_numpy(), resamples,
                                 seed, prefix="served_")}


def interval(figures: dict, key: str) -> str:
    """A figure's 95% interval as printed, or nothing when none was computed (``generalise.resamples: 0``)."""
    low_high = figures.get(f"{key}_ci")
    return f"[{low_high[0]:.4f}, {low_high[1]:.4f}]" if low_high else ""


def run_fold(table: pd.DataFrame, training, evaluation, params: dict, best_params: dict,
             lists: dict[str, Any], familiar: list[str], flaggable: np.ndarray) -> dict:
    policy = params["policy"]
    rows = table[evaluation]
    featurizer, classifier, threshold = fit_recipe(
        table[training], params["dataset"], params["featurizer"], params["model"], best_params, params["calibration"],
        params["threshold"]["max_fpr"], params["seed"], feedback_source_names(params["dataset"]),
        popular_sites=familiar, judged_sites=set(rows["group"]), flaggable=flaggable[training],
        threshold_estimator=params["threshold"]["estimator"])
    intervals = {"resamples": params["generalise"]["resamples"], "seed": params["seed"]}
    result = judge(featurizer, classifier, threshold, rows, **intervals)
    served = served_judgement(featurizer, classifier, threshold, rows, policy, lists,
                              params["software"]["wordpress"]["label"], **intervals)
    return {**result, **served, "train_rows": int(training.sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--best-params", type=Path, required=True, help="the hyperparameters train chose")
    parser.add_argument("--intel", type=Path, required=True, help="pinned feed snapshot: its popularity list")
    parser.add_argument("--software", type=Path, required=True, help="stock files of known web software")
    parser.add_argument("--resolvers", type=Path, required=True, help="public DNS resolvers' addresses")
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--details", type=Path, required=True)
    parser.add_argument("--plot", type=Path, required=True)
    args = parser.parse_args()
    params = read_params()
    config = params["generalise"]
    table = pd.read_parquet(args.prepared)
    best_params = json.loads(args.best_params.read_text())
    collections = held_out_collections(table, feedback_source_names(params["dataset"]))
    folds = {name: loco_rows(table, name) for name in collections}
    folds["forward"] = forward_rows(table, config["cutoff_year"])
    policy = Policy(threshold=1.0, **params["policy"])  # validated as `train` validates it
    lists = policy_lists(args.intel / "tranco_top100k.csv", policy.popular_list_size, args.software, args.resolvers,
                         params["software"]["resolvers"]["label"])
    software = params["software"]["wordpress"]["label"]
    flaggable = rules_only(policy, software, lists).flaggable_on_score(table["url"])
    # the featurizer's list, as stage featurize reads it; each fold leaves its evaluated sites out of it
    familiar = list(read_popular_sites(args.intel / "tranco_top100k.csv", params["featurizer"]["familiar_sites"])) \
        if params["featurizer"]["familiar_sites"] else []
    results = Parallel(n_jobs=config["n_jobs"])(
        delayed(run_fold)(table, training, evaluation, params, best_params, lists, familiar, flaggable)
        for training, evaluation in folds.values())
    by_name = dict(zip(folds, results, strict=True))
    forward = by_name.pop("forward")
    aucs = [r["roc_auc"] for r in by_name.values()]
    fprs = [r["fpr_at_threshold"] for r in by_name.values() if "fpr_at_threshold" in r]
    served_fprs = [r["served_fpr"] for r in by_name.values() if "served_fpr" in r]
    headline = ("roc_auc", "tpr_at_1pct_fpr", "recall_at_threshold", "fpr_at_threshold", "served_roc_auc",
                "served_tpr_at_1pct_fpr", "served_recall", "served_fpr", "rows")
    forward = {"cutoff_year": config["cutoff_year"], **forward}
    write_json(args.metrics, {"loco_min_roc_auc": min(aucs),
                              "loco_min_served_roc_auc": min(r["served_roc_auc"] for r in by_name.values()),
                              "loco_max_fpr_at_threshold": max(fprs),
                              "loco_max_served_fpr": max(served_fprs),
                              "forward": {k: forward[k] for k in ("cutoff_year", *headline) if k in forward}})
    write_json(args.details, {"loco": by_name, "forward": forward})
    write_json(args.plot, [{"collection": name, "roc_auc": r["roc_auc"], "tpr_at_1pct_fpr": r["tpr_at_1pct_fpr"]}
                           for name, r in by_name.items()])
    for name, r in by_name.items():
        shares = [f"{label} {r[key]:.4f}" for label, key in (
            ("recall", "recall_at_threshold"), ("FPR", "fpr_at_threshold"),
            ("served recall", "served_recall"), ("served FPR", "served_fpr")) if key in r]
        print(f"{name:30s} ROC-AUC {r['roc_auc']:.4f} {interval(r, 'roc_auc')} (served {r['served_roc_auc']:.4f} "
              f"{interval(r, 'served_roc_auc')})  "
              f"TPR@1%FPR {r['tpr_at_1pct_fpr']:.3f} (served {r['served_tpr_at_1pct_fpr']:.3f})  {'  '.join(shares)}")
    print(f"forward (train <= {config['cutoff_year']}): ROC-AUC {forward['roc_auc']:.4f}, "
          f"recall at threshold {forward['recall_at_threshold']:.3f}, TPR@1%FPR {forward['tpr_at_1pct_fpr']:.3f}, "
          f"served recall {forward['served_recall']:.3f}, served FPR {forward['served_fpr']:.4f}")


if __name__ == "__main__":
    main()

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
from cybersentinel.features.words import read_words
from cybersentinel.intel.popular import read_popular_sites
from cybersentinel.model.generalisation import fit_fold, judge, plan_folds, shares_and_ranking
from cybersentinel.scoring.detector import Detector, policy_lists, rules_only
from cybersentinel.scoring.policy import Policy


def served_judgement(featurizer, classifier, threshold: float, rows: pd.DataFrame, policy: dict,
                     lists: dict[str, Any], software: str, resamples: int = 0, seed: int = 0) -> dict:
    """The served decision's ROC-AUC and TPR at 1% FPR (of its scores) and the share of each class it calls
    `malicious` (recall of phishing, false-positive rate of legitimate rows) and at least `suspicious`
    (``served_warned_*``), the fold's model behind the policy."""
    manifest = {"kind": "url", "inputs": ["url"], "policy": {**policy, "threshold": threshold},
                "software": {"name": software}}
    detector = Detector(Pipeline([("features", featurizer), ("classifier", classifier)]), manifest, None, **lists)
    served = detector.score_values(rows["url"], reasons=False)
    verdicts = served["verdict"].to_numpy(zero_copy_only=False)
    scores = served["score"].to_numpy(zero_copy_only=False).astype(float)
    # what the decision cannot score (no host) is counted and left out of the ranking, as evaluate does
    return {"served_unscorable_rows": int(np.isnan(scores).sum()),
            **shares_and_ranking(rows["label"].to_numpy(), scores, verdicts == "malicious", rows["group"].to_numpy(),
                                 resamples, seed, prefix="served_",
                                 warned=np.isin(verdicts, ("suspicious", "malicious")))}


def interval(figures: dict, key: str) -> str:
    """A figure's 95% interval as printed, or nothing when none was computed (``generalise.resamples: 0``)."""
    low_high = figures.get(f"{key}_ci")
    return f"[{low_high[0]:.4f}, {low_high[1]:.4f}]" if low_high else ""


def run_fold(table: pd.DataFrame, training, evaluation, params: dict, best_params: dict,
             lists: dict[str, Any], familiar: list[str], flaggable: np.ndarray, words: list[str]) -> dict:
    policy = params["policy"]
    rows = table[evaluation]
    featurizer, classifier, threshold = fit_fold(table[training], params, best_params, familiar, set(rows["group"]),
                                                 flaggable[training], words)
    intervals = {"resamples": params["generalise"]["resamples"], "seed": params["seed"]}
    result = judge(featurizer, classifier, threshold, rows, **intervals)
    served = served_judgement(featurizer, classifier, threshold, rows, policy, lists,
                              params["software"]["wordpress"]["label"], **intervals)
    return {**result, **served, "train_rows": int(training.sum())}


def run_folds(table: pd.DataFrame, folds: dict[str, tuple[np.ndarray, np.ndarray]], params: dict,
              best_params: dict, policy: Policy, args: argparse.Namespace) -> list[dict]:
    """Each fold's figures, in ``folds``' order (two at a time with ``generalise.n_jobs: 2``)."""
    lists = policy_lists(args.intel / "tranco_top100k.csv", policy.popular_list_size, args.software, args.resolvers,
                         params["software"]["resolvers"]["label"])
    software = params["software"]["wordpress"]["label"]
    flaggable = rules_only(policy, software, lists).flaggable_on_score(table["url"])
    # the featurizer's list, as stage featurize reads it; each fold leaves its evaluated sites out of it
    familiar = list(read_popular_sites(args.intel / "tranco_top100k.csv", params["featurizer"]["familiar_sites"])) \
        if params["featurizer"]["familiar_sites"] else []
    words = read_words(args.words) if params["featurizer"]["name_words"] else []
    return Parallel(n_jobs=params["generalise"]["n_jobs"])(
        delayed(run_fold)(table, training, evaluation, params, best_params, lists, familiar, flaggable, words)
        for training, evaluation in folds.values())


HEADLINE = ("roc_auc", "tpr_at_1pct_fpr", "recall_at_threshold", "fpr_at_threshold", "served_roc_auc",
            "served_tpr_at_1pct_fpr", "served_recall", "served_fpr", "served_warned_recall", "served_warned_fpr",
            "rows")


def reports(by_name: dict[str, dict], forward: dict | None, skipped: dict[str, str], cutoff_year: int,
            ) -> tuple[dict, dict, list[dict]]:
    """(headline metrics, details, plot rows) of the folds run; what did not apply is said, with its reason, under
    ``not_applicable`` in the headline and the details (every declared output is written either way)."""
    metrics: dict[str, Any] = {}
    if by_name:
        metrics = {"loco_min_roc_auc": min(r["roc_auc"] for r in by_name.values()),
                   "loco_min_served_roc_auc": min(r["served_roc_auc"] for r in by_name.values()),
                   "loco_max_fpr_at_threshold": max(r["fpr_at_threshold"] for r in by_name.values()),
                   "loco_max_served_fpr": max(r["served_fpr"] for r in by_name.values()),
                   # what acting on the `suspicious` band too costs, at worst
                   "loco_max_served_warned_fpr": max(r["served_warned_fpr"] for r in by_name.values())}
    details: dict[str, Any] = {"loco": by_name}
    if forward is not None:
        details["forward"] = {"cutoff_year": cutoff_year, **forward}
        metrics["forward"] = {k: details["forward"][k] for k in ("cutoff_year", *HEADLINE) if k in details["forward"]}
    if skipped:
        metrics["not_applicable"] = details["not_applicable"] = skipped
    plot = [{"collection": name, "roc_auc": r["roc_auc"], "tpr_at_1pct_fpr": r["tpr_at_1pct_fpr"]}
            for name, r in by_name.items()]
    return metrics, details, plot


def print_reports(by_name: dict[str, dict], forward: dict | None, skipped: dict[str, str], cutoff_year: int) -> None:
    for name, r in by_name.items():
        shares = [f"{label} {r[key]:.4f}" for label, key in (
            ("recall", "recall_at_threshold"), ("FPR", "fpr_at_threshold"),
            ("served recall", "served_recall"), ("served FPR", "served_fpr"),
            ("at least suspicious: recall", "served_warned_recall"), ("FPR", "served_warned_fpr")) if key in r]
        print(f"{name:30s} ROC-AUC {r['roc_auc']:.4f} {interval(r, 'roc_auc')} (served {r['served_roc_auc']:.4f} "
              f"{interval(r, 'served_roc_auc')})  "
              f"TPR@1%FPR {r['tpr_at_1pct_fpr']:.3f} (served {r['served_tpr_at_1pct_fpr']:.3f})  {'  '.join(shares)}")
    if forward is not None:
        print(f"forward (train <= {cutoff_year}): ROC-AUC {forward['roc_auc']:.4f}, "
              f"recall at threshold {forward['recall_at_threshold']:.3f}, TPR@1%FPR {forward['tpr_at_1pct_fpr']:.3f}, "
              f"served recall {forward['served_recall']:.3f}, served FPR {forward['served_fpr']:.4f}, "
              f"at least suspicious: recall {forward['served_warned_recall']:.3f}, "
              f"FPR {forward['served_warned_fpr']:.4f}")
    for name, why in skipped.items():
        print(f"{name}: not applicable ({why})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prepared", type=Path, required=True)
    parser.add_argument("--best-params", type=Path, required=True, help="the hyperparameters train chose")
    parser.add_argument("--intel", type=Path, required=True, help="pinned feed snapshot: its popularity list")
    parser.add_argument("--software", type=Path, required=True, help="stock files of known web software")
    parser.add_argument("--resolvers", type=Path, required=True, help="public DNS resolvers' addresses")
    parser.add_argument("--words", type=Path, required=True, help="the word list the host names' words are read with")
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--details", type=Path, required=True)
    parser.add_argument("--plot", type=Path, required=True)
    args = parser.parse_args()
    params = read_params()
    config = params["generalise"]
    table = pd.read_parquet(args.prepared)
    best_params = json.loads(args.best_params.read_text())
    folds, skipped = plan_folds(table, feedback_source_names(params["dataset"]), config["cutoff_year"],
                                params["dataset"]["kind"])
    policy = Policy(threshold=1.0, **params["policy"])  # validated as `train` validates it
    results = run_folds(table, folds, params, best_params, policy, args) if folds else []
    by_name = dict(zip(folds, results, strict=True))
    forward = by_name.pop("forward", None)
    metrics, details, plot = reports(by_name, forward, skipped, config["cutoff_year"])
    write_json(args.metrics, metrics)
    write_json(args.details, details)
    write_json(args.plot, plot)
    print_reports(by_name, details.get("forward"), skipped, config["cutoff_year"])


if __name__ == "__main__":
    main()

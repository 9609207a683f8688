"""How far the false-positive budget's threshold moves with which sites happen to be in the training data, and
whether a smoother estimate of it would move less.

`train` sets the `malicious` threshold at the lowest score where at most `threshold.max_fpr` of every collection's
legitimate rows score at or above it, on each row's out-of-fold calibrated score: the (allowed+1)-th highest
legitimate score of the collection that needs the highest cut-off. This recomputes those out-of-fold scores as
`train` does (the searched settings from models/best_params.json, no search; about 15 s), puts the rows the
served decision cannot flag on their score (`Detector.flaggable_on_score`: a popular site's page, a stock file, a
page asset) below every cut-off, as `train` counts them, then many times over
puts each registered domain in one half or the other by a coin toss, sets the threshold on one half with each
estimator and reads what it gives on the other half's rows: the false-positive rate of the worst collection and
the recall of phishing. The estimators:

- ``order statistic``: `budget_threshold`'s ``order_statistic``, the recipe's rule (``threshold.estimator``);
- ``harrell-davis``: its ``harrell_davis``, each collection's (1 - max_fpr) quantile by the Harrell-Davis
  estimator (scipy's `hdquantiles`), a weighted mean of every order statistic instead of one (measured over three
  seeds of the held-out folds in session 31 and not adopted: docs/experiments.md);
- ``by site``: the budget counted in sites rather than rows (each row weighs 1/its site's rows in its collection),
  so a site with several high-scoring pages spends the budget once.

Prints figures; asserts nothing. Reads data/features (its featurizer and training table), params.yaml and
models/ (best_params.json, the policy and its pinned lists; `dvc repro`).

    python benchmarks/threshold_stability.py
    python benchmarks/threshold_stability.py --halves 200 --max-fpr 0.005
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
Rule = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float], float]


def order_statistic(y: np.ndarray, scores: np.ndarray, sources: np.ndarray, groups: np.ndarray,
                    max_fpr: float) -> float:
    from cybersentinel.model.estimators import budget_threshold

    return budget_threshold(y, scores, sources, max_fpr, estimator="order_statistic")


def harrell_davis(y: np.ndarray, scores: np.ndarray, sources: np.ndarray, groups: np.ndarray,
                  max_fpr: float) -> float:
    from cybersentinel.model.estimators import budget_threshold

    return budget_threshold(y, scores, sources, max_fpr, estimator="harrell_davis")


def by_site(y: np.ndarray, scores: np.ndarray, sources: np.ndarray, groups: np.ndarray, max_fpr: float) -> float:
    cut = 0.0
    for source in np.unique(sources[y == 0]):
        legit = (y == 0) & (sources == source)
        _, site, rows = np.unique(groups[legit], return_inverse=True, return_counts=True)
        weight = 1.0 / rows[site]
        order = np.argsort(-scores[legit], kind="stable")
        # the highest-scoring rows whose sites' weight fits the budget may be flagged; the next one may not
        fits = int(np.searchsorted(np.cumsum(weight[order]) / weight.sum(), max_fpr, side="right"))
        if fits < len(order):
            cut = max(cut, float(np.nextafter(scores[legit][order][fits], np.inf)))
    return min(cut, 1.0)


RULES: dict[str, Rule] = {"order statistic": order_statistic, "harrell-davis": harrell_davis, "by site": by_site}


def split_halves(y: np.ndarray, scores: np.ndarray, sources: np.ndarray, groups: np.ndarray, max_fpr: float,
                 halves: int, seed: int, rules: dict[str, Rule] = RULES) -> pd.DataFrame:
    """One row per (half, rule): the threshold set on a random half of the sites, and on the other half's rows
    the false-positive rate of each collection (``fpr:<source>``), the worst of them and the recall."""
    rng = np.random.default_rng(seed)
    site = pd.factorize(groups)[0]
    legit_sources = np.unique(sources[y == 0])
    rows = []
    for half in range(halves):
        fit = (rng.random(site.max() + 1) < 0.5)[site]
        other = ~fit
        for name, rule in rules.items():
            cut = rule(y[fit], scores[fit], sources[fit], groups[fit], max_fpr)
            fprs = {f"fpr:{s}": float(np.mean(scores[other & (y == 0) & (sources == s)] >= cut))
                    for s in legit_sources}
            rows.append({"half": half, "rule": name, "threshold": cut, "worst_fpr": max(fprs.values()),
                         "recall": float(np.mean(scores[other & (y == 1)] >= cut)), **fprs})
    return pd.DataFrame(rows)


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per rule: the threshold's mean, standard deviation and range over the halves, and what it gave on the
    other half (the worst collection's false-positive rate, mean and 95th percentile; the recall, mean and sd)."""
    by_rule = table.groupby("rule", sort=False)
    return pd.DataFrame({
        "threshold_mean": by_rule["threshold"].mean(), "threshold_sd": by_rule["threshold"].std(),
        "threshold_min": by_rule["threshold"].min(), "threshold_max": by_rule["threshold"].max(),
        "worst_fpr_mean": by_rule["worst_fpr"].mean(), "worst_fpr_p95": by_rule["worst_fpr"].quantile(0.95),
        "recall_mean": by_rule["recall"].mean(), "recall_sd": by_rule["recall"].std()})


def held_out_scores(features: Path, params_path: Path, best_params_path: Path) -> pd.DataFrame:
    """Every collection row's out-of-fold calibrated score, as `train` computes it before choosing the threshold
    (analyst feedback trains, repeated by its weight, but sets no budget, so it is left out of the result)."""
    from cybersentinel.core.config import feedback_source_names
    from cybersentinel.core.files import read_params
    from cybersentinel.model.estimators import build_estimator, calibrate_grouped, repeat_rows, training_weights

    params = read_params(params_path)
    names = json.loads((features / "featurizer.json").read_text())["features"]
    train = pd.read_parquet(features / "train.parquet")
    feedback_sources = list(feedback_source_names(params["dataset"]))
    train = repeat_rows(train, train["source"].isin(feedback_sources).to_numpy(), int(params["feedback"]["weight"]))
    estimator = build_estimator(params["model"], params["seed"]).set_params(
        **json.loads(best_params_path.read_text()))
    calibration = params["calibration"]
    x, y = train[names].to_numpy(), train["label"].to_numpy()
    _, held_out = calibrate_grouped(estimator, x, y, train["group"].to_numpy(), folds=calibration["folds"],
                                    method=calibration["method"], ensemble=calibration["ensemble"],
                                    n_jobs=params["search"]["n_jobs"], seed=params["seed"],
                                    sample_weight=training_weights(x, y, names, params["train"]["root_page_balance"]))
    scored = train[["url", "label", "source", "group"]].assign(score=held_out)
    return scored[~scored["source"].isin(feedback_sources)].reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", type=Path, default=REPO / "data" / "features")
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml")
    parser.add_argument("--best-params", type=Path, default=REPO / "models" / "best_params.json")
    parser.add_argument("--max-fpr", type=float, help="the budget (default: params.yaml's threshold.max_fpr)")
    parser.add_argument("--halves", type=int, default=100, help="random halves of the sites")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--top", type=int, default=8, help="highest-scoring legitimate rows shown per collection")
    args = parser.parse_args()
    from cybersentinel.core.files import read_params

    max_fpr = args.max_fpr if args.max_fpr is not None else read_params(args.params)["threshold"]["max_fpr"]
    from cybersentinel.scoring.detector import Detector

    scored = held_out_scores(args.features, args.params, args.best_params)
    flaggable = Detector.from_dir(args.best_params.parent).flaggable_on_score(scored["url"])
    # as `train`'s budget counts them: below every cut-off (0, as `budget_threshold` puts them for Harrell-Davis)
    scored["score"] = scored["score"].where(flaggable, 0.0)
    y, scores = scored["label"].to_numpy(), scored["score"].to_numpy()
    sources, groups = scored["source"].to_numpy(), scored["group"].to_numpy()
    print(f"{len(scored):,} collection rows scored out of fold; budget {max_fpr:.2%} of every collection's "
          f"legitimate rows")
    for name, rule in RULES.items():
        print(f"  {name}: threshold on every row {rule(y, scores, sources, groups, max_fpr):.5f}")
    legit = scored[scored["label"] == 0]
    for source, rows in legit.groupby("source"):
        top = rows.nlargest(args.top, "score")
        print(f"\n{source}: {len(rows):,} legitimate rows, {rows['group'].nunique():,} sites; highest:")
        for score, url in zip(top["score"], top["url"], strict=True):
            print(f"  {score:.4f}  {url[:110]}")
    table = split_halves(y, scores, sources, groups, max_fpr, args.halves, args.seed)
    print(f"\nthreshold set on a random half of the sites, judged on the other half ({args.halves} halves):")
    print(summary(table).to_string(float_format=lambda v: f"{v:.5f}"))
    worst = table.filter(like="fpr:").idxmax(axis=1).str.removeprefix("fpr:")
    print("\ncollection with the highest false-positive rate on the other half, by rule:")
    print(pd.crosstab(table["rule"], worst).to_string())


if __name__ == "__main__":
    main()

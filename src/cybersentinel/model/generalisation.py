"""How the detector does on traffic unlike its training data: leave one collection out, and forward in time.

Both train the configured recipe as `train` does (the featurizer, the model with the hyperparameters `train`
chose, no search, calibrated on grouped folds) on some collections or years and score others. The decision
threshold of each such model follows the served rule: the lowest cut-off that keeps every training
collection's legitimate rows, each scored out of fold, within the false-positive budget, so the share
flagged at it is what the served policy would flag on traffic it has never seen.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from cybersentinel.core.config import feedback_source_names
from cybersentinel.features.featurizer import build_featurizer
from cybersentinel.model.estimators import budget_threshold, build_estimator, calibrate_grouped, training_weights
from cybersentinel.model.metrics import grouped_interval, tpr_at_fpr, weighted_roc_auc, weighted_share


def held_out_collections(table: pd.DataFrame, not_held: Collection[str] = ()) -> list[str]:
    """The collections leave-one-collection-out holds out in turn: every source with rows to score (not one of
    training-only rows, such as `country_homepages`), less the ``not_held`` ones (analyst feedback: it trains)."""
    return sorted(set(table.loc[~table["synthetic"].to_numpy(), "source"]) - set(not_held))


def loco_rows(table: pd.DataFrame, held_out: str) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, evaluation rows) for holding one collection out. Evaluation: every row of the held-out
    collection plus, for a collection of one class, the other collections' test-split rows of the other class
    (so ROC-AUC is defined). Training: the other collections' training-split rows, minus every registered
    domain that appears among the evaluation rows."""
    own = (table["source"] == held_out).to_numpy()
    classes = set(table.loc[own, "label"])
    other_class = ~own & (table["split"] == "test").to_numpy() & ~table["label"].isin(classes).to_numpy() \
        if len(classes) == 1 else np.zeros(len(table), dtype=bool)
    evaluation = (own | other_class) & ~table["synthetic"].to_numpy()
    seen = set(table.loc[evaluation, "group"])
    training = ~own & (table["split"] == "train").to_numpy() & ~table["group"].isin(seen).to_numpy()
    return training, evaluation


def forward_rows(table: pd.DataFrame, cutoff_year: int) -> tuple[np.ndarray, np.ndarray]:
    """(training rows, evaluation rows) for a model that knew only what was seen up to ``cutoff_year``: it trains
    on the training split of those years and is scored on the phishing seen after, against the legitimate
    test-split rows, with the evaluated registered domains kept out of training."""
    year = table["year"].to_numpy()
    evaluation = (((table["label"] == 1).to_numpy() & (year > cutoff_year)) |
                  ((table["label"] == 0).to_numpy() & (table["split"] == "test").to_numpy())) & \
        ~table["synthetic"].to_numpy()
    seen = set(table.loc[evaluation, "group"])
    training = (year <= cutoff_year) & (table["split"] == "train").to_numpy() & \
        ~table["group"].isin(seen).to_numpy() & ~evaluation
    return training, evaluation


def class_gap(table: pd.DataFrame, training: np.ndarray, evaluation: np.ndarray) -> str | None:
    """Why a fold cannot be trained and ranked (its training rows or its evaluated rows lack a class), or None."""
    for rows, what in ((training, "training rows"), (evaluation, "evaluated rows")):
        classes = sorted(int(c) for c in set(table.loc[rows, "label"]))
        if not classes:
            return f"it has no {what}"
        if classes != [0, 1]:
            held = ("legitimate", "phishing")[classes[0]]
            return f"its {what} hold {held} only: a model needs both classes to train and to be ranked"
    return None


def loco_gap(collections: Sequence[str], kind: str) -> str | None:
    """Why the leave-one-collection-out table does not apply to a dataset as a whole, or None."""
    if len(collections) < 2:
        named = ", ".join(collections) or "none"
        return (f"leave-one-collection-out needs at least two collections; this dataset has {len(collections)} "
                f"({named}): leaving the only one out leaves nothing to train on")
    if kind != "url":
        return f"the folds train the URL recipe and judge the served URL decision; this dataset is {kind}, no URLs"
    return None


def forward_gap(table: pd.DataFrame, kind: str) -> str | None:
    """Why the forward-in-time fold does not apply to a dataset as a whole (no dated rows, no URLs), or None."""
    if not table.loc[~table["synthetic"].to_numpy(), "year"].notna().any():
        return "no row carries a year (no date and no collection year): nothing is before or after the cut-off"
    if kind != "url":
        return f"the fold trains the URL recipe and judges the served URL decision; this dataset is {kind}, no URLs"
    return None


def plan_folds(table: pd.DataFrame, not_held: Collection[str], cutoff_year: int, kind: str,
               ) -> tuple[dict[str, tuple[np.ndarray, np.ndarray]], dict[str, str]]:
    """The folds `generalise` trains ((training rows, evaluation rows) by name: each held-out collection, then
    ``forward``) and why the others do not apply (``loco`` for the whole table, a collection's name, ``forward``)."""
    folds: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    skipped: dict[str, str] = {}
    collections = held_out_collections(table, not_held)
    whole = loco_gap(collections, kind)
    if whole:
        skipped["loco"] = whole
    for name in [] if whole else collections:
        rows = loco_rows(table, name)
        gap = class_gap(table, *rows)
        if gap:
            skipped[name] = gap
        else:
            folds[name] = rows
    gap = forward_gap(table, kind)
    if gap is None:
        rows = forward_rows(table, cutoff_year)
        gap = class_gap(table, *rows)
    if gap:
        skipped["forward"] = f"cut-off {cutoff_year}: {gap}"
    else:
        folds["forward"] = rows
    return folds, skipped


def fit_out_of_fold(train: pd.DataFrame, dataset: Mapping[str, Any], featurizer_cfg: Mapping[str, Any],
                    model_cfg: Mapping[str, Any], best_params: Mapping[str, Any], calibration: Mapping[str, Any],
                    seed: int, popular_sites: Sequence[str] = (), judged_sites: Collection[str] = (),
                    root_page_balance: float = 0.0, words: Sequence[str] = ()) -> tuple[Any, Any, np.ndarray]:
    """(featurizer, calibrated classifier, each row's out-of-fold calibrated score) trained on ``train`` as `train`
    trains the served model: the featurizer (with the ``popular_sites`` less the ``judged_sites``, and the ``words``,
    when given) and
    the classifier on every row (weighted as `training_weights` says), calibrated on folds grouped by registered
    domain."""
    y = train["label"].to_numpy()
    featurizer = build_featurizer(dict(dataset), dict(featurizer_cfg), [])
    x = featurizer.fit_transform(train[["url"]], y, popular_sites=popular_sites, judged_sites=judged_sites,
                                 words=words)
    estimator = build_estimator(model_cfg, seed).set_params(**best_params)
    weights = training_weights(x, y, list(featurizer.get_feature_names_out()), root_page_balance)
    classifier, held_out = calibrate_grouped(estimator, x, y, train["group"].to_numpy(), folds=calibration["folds"],
                                             method=calibration["method"], ensemble=calibration["ensemble"],
                                             n_jobs=1, seed=seed, sample_weight=weights)
    return featurizer, classifier, held_out


def fit_recipe(train: pd.DataFrame, dataset: Mapping[str, Any], featurizer_cfg: Mapping[str, Any],
               model_cfg: Mapping[str, Any], best_params: Mapping[str, Any], calibration: Mapping[str, Any],
               max_fpr: float, seed: int, not_budgeted: Collection[str] = (), popular_sites: Sequence[str] = (),
               judged_sites: Collection[str] = (), flaggable: np.ndarray | None = None,
               threshold_estimator: str = "order_statistic", root_page_balance: float = 0.0,
               words: Sequence[str] = ()) -> tuple[Any, Any, float]:
    """(featurizer, calibrated classifier, threshold) trained on ``train`` as `train` trains the served model
    (`fit_out_of_fold`), the threshold the budget rule on each row's out-of-fold calibrated score (rows of the
    ``not_budgeted`` sources, analyst feedback, train but set no budget; rows not ``flaggable`` by the served
    decision on their score count as not flagged; ``threshold_estimator`` is `budget_threshold`'s
    ``estimator``)."""
    featurizer, classifier, held_out = fit_out_of_fold(train, dataset, featurizer_cfg, model_cfg, best_params,
                                                       calibration, seed, popular_sites, judged_sites,
                                                       root_page_balance, words)
    y, sources = train["label"].to_numpy(), train["source"].to_numpy()
    budgeted = ~np.isin(sources, list(not_budgeted))
    threshold = budget_threshold(y[budgeted], held_out[budgeted], sources[budgeted], max_fpr,
                                 None if flaggable is None else flaggable[budgeted], threshold_estimator)
    return featurizer, classifier, threshold


def fit_fold(train: pd.DataFrame, params: Mapping[str, Any], best_params: Mapping[str, Any],
             popular_sites: Sequence[str], judged_sites: Collection[str], flaggable: np.ndarray,
             words: Sequence[str] = ()) -> tuple[Any, Any, float]:
    """`fit_recipe` as stage `generalise` fits a fold: the recipe, budget and seed of the pipeline's ``params``
    (params.yaml), the hyperparameters `train` chose (``best_params``), ``flaggable`` given for ``train``'s rows,
    the ``words`` when ``featurizer.name_words`` asks for them."""
    return fit_recipe(train, params["dataset"], params["featurizer"], params["model"], best_params,
                      params["calibration"], params["threshold"]["max_fpr"], params["seed"],
                      feedback_source_names(params["dataset"]), popular_sites=popular_sites,
                      judged_sites=judged_sites, flaggable=flaggable,
                      threshold_estimator=params["threshold"]["estimator"],
                      root_page_balance=params["train"]["root_page_balance"],
                      words=words if params["featurizer"]["name_words"] else ())


def judge(featurizer: Any, classifier: Any, threshold: float, rows: pd.DataFrame, resamples: int = 0,
          seed: int = 0) -> dict[str, Any]:
    """ROC-AUC and TPR at 1% FPR over ``rows`` (when both classes are there), and the share flagged at the
    threshold per class: recall of phishing, false-positive rate of legitimate rows. With ``resamples``, each
    figure but the TPR also gets a 95% interval (``*_ci``) from resampling the rows' registered domains."""
    y = rows["label"].to_numpy()
    scores = classifier.predict_proba(featurizer.transform(rows[["url"]]))[:, 1]
    return {"rows": int(len(rows)), "threshold": round(float(threshold), 6),
            **shares_and_ranking(y, scores, scores >= threshold, rows["group"].to_numpy(), resamples, seed)}


def shares_and_ranking(y: np.ndarray, scores: np.ndarray, flagged: np.ndarray, groups: np.ndarray, resamples: int,
                       seed: int, prefix: str = "", warned: np.ndarray | None = None) -> dict[str, Any]:
    """`judge`'s figures of one set of scores and verdicts (``prefix``: "served_" for the served decision's). A row
    without a score (NaN: the served decision could not score it) is left out of the ranking and counts as not
    flagged. With ``warned`` (rows called at least `suspicious`), each class's share of those too
    (``warned_recall``, ``warned_fpr``): what a user who acts on the `suspicious` band as well catches and pays."""
    from sklearn.metrics import roc_auc_score

    out: dict[str, Any] = {}
    scored = ~np.isnan(scores)
    if len(set(y[scored])) == 2:
        ranked_y, ranked_scores, ranked_groups = y[scored], scores[scored], groups[scored]
        out[f"{prefix}roc_auc"] = round(float(roc_auc_score(ranked_y, ranked_scores)), 5)
        if resamples:
            out[f"{prefix}roc_auc_ci"] = grouped_interval(ranked_groups, weighted_roc_auc(ranked_y, ranked_scores),
                                                          resamples, seed)
        out[f"{prefix}tpr_at_1pct_fpr"] = round(float(tpr_at_fpr(ranked_y, ranked_scores, 0.01)), 5)
    shares = [(flagged, "")] if warned is None else [(flagged, ""), (warned, "warned_")]
    for label, name in ((1, "recall"), (0, "fpr")):
        chosen = y == label
        if not chosen.any():
            continue
        for called, kind in shares:
            key = f"{prefix}{kind}{name if prefix or kind else f'{name}_at_threshold'}"
            out[key] = round(float(called[chosen].mean()), 5)
            if resamples:
                out[f"{key}_ci"] = grouped_interval(groups[chosen], weighted_share(called[chosen]), resamples, seed)
    return out

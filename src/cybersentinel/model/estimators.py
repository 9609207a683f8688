"""Estimators from config, grouped hyperparameter search, calibration, the decision threshold, and
model files that loading cannot turn into code execution (skops with an explicit type allowlist,
checked against a SHA-256 recorded at training time)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import skops.io as sio
from sklearn.base import BaseEstimator, clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import RandomForestClassifier
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import RandomizedSearchCV, cross_val_predict
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from cybersentinel.core.files import ModelIntegrityError, atomic_path, load_manifest, sha256_file
from cybersentinel.data.folds import CompiledStratifiedGroupKFold
from cybersentinel.features.featurizer import ColumnSelector, UrlFeaturizer

# Types outside skops' default trust that a CyberSentinel model may contain. Anything else in a model
# file is refused before a single object is built. Loading a model imports the featurizer's module.
TRUSTED_TYPES = frozenset({
    *(f"{cls.__module__}.{cls.__qualname__}" for cls in (ColumnSelector, UrlFeaturizer)),
    "collections.OrderedDict",
    "lightgbm.basic.Booster",
    "lightgbm.sklearn.LGBMClassifier",
    "sklearn.calibration._CalibratedClassifier",
    "sklearn.calibration._SigmoidCalibration",
    "sklearn.tree._tree.Tree",
    "xgboost.core.Booster",
    "xgboost.sklearn.XGBClassifier",
})


def build_estimator(model: Mapping[str, Any], seed: int) -> BaseEstimator:
    """A fresh, single-threaded estimator (the search parallelises over candidates instead)."""
    name, params = model["name"], dict(model.get("params") or {})
    if name == "logreg":
        return make_pipeline(StandardScaler(), LogisticRegression(random_state=seed, max_iter=2000, **params))
    if name == "random_forest":
        return RandomForestClassifier(random_state=seed, n_jobs=1, **params)
    if name == "xgboost":
        from xgboost import XGBClassifier

        return XGBClassifier(random_state=seed, n_jobs=1, tree_method="hist", **params)
    if name == "lightgbm":
        from lightgbm import LGBMClassifier

        return LGBMClassifier(random_state=seed, n_jobs=1, deterministic=True, verbose=-1, **params)
    raise ValueError(f"unknown model {name!r}: expected logreg, random_forest, xgboost or lightgbm")


def search_space(model: Mapping[str, Any]) -> dict[str, list]:
    """The configured candidate values, addressed to the right step for pipelines."""
    space = {k: list(v) for k, v in (model.get("search") or {}).items()}
    if model["name"] == "logreg":
        return {f"logisticregression__{k}": v for k, v in space.items()}
    return space


def root_page_weights(y: np.ndarray, root: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """Training-row weights that bring each class's share of root pages (URLs without a path) to the share of all
    rows together (``strength`` 1), part of the way (``strength`` between 0 and 1: each weight the full one's
    power) or not at all (0), each class keeping its total weight. The legitimate lists are mostly sites' root
    pages and the phishing lists mostly pages, so unweighted the model learns "no path" as a sign of a legitimate
    site, which real traffic (pages and assets of legitimate sites, phishing on a domain's root) does not bear out.
    A class with no root page, or nothing else, keeps weight 1."""
    if not 0 <= strength <= 1:
        raise ValueError(f"the root pages' balance must be between 0 and 1, not {strength}")
    y, root = np.asarray(y), np.asarray(root, dtype=bool)
    weights = np.ones(len(y))
    pooled = root.mean() if len(y) else 0.0
    for label in np.unique(y):
        rows = y == label
        own = root[rows].mean()
        if 0 < own < 1:
            weights[rows & root] = (pooled / own) ** strength
            weights[rows & ~root] = ((1 - pooled) / (1 - own)) ** strength
            weights[rows] *= rows.sum() / weights[rows].sum()
    return weights


def training_weights(X: np.ndarray, y: np.ndarray, names: list[str], root_page_balance: float) -> np.ndarray | None:
    """The classifier's training-row weights the recipe asks for (`root_page_weights` of that strength when the
    features have a ``path_depth``), or None: every row weighs 1."""
    if not root_page_balance or "path_depth" not in names:
        return None
    return root_page_weights(y, np.asarray(X)[:, names.index("path_depth")] == 0, root_page_balance)


def fit_params(estimator: BaseEstimator, sample_weight: np.ndarray | None) -> dict[str, Any]:
    """The keyword arguments that give ``estimator.fit`` these row weights (a pipeline's last step takes them)."""
    if sample_weight is None:
        return {}
    if isinstance(estimator, Pipeline):
        return {f"{estimator.steps[-1][0]}__sample_weight": sample_weight}
    return {"sample_weight": sample_weight}


def grouped_search(estimator: BaseEstimator, space: dict[str, list], X: np.ndarray, y: np.ndarray,
                   groups: np.ndarray, *, n_iter: int, cv_folds: int, scoring: str, n_jobs: int,
                   seed: int, sample_weight: np.ndarray | None = None) -> RandomizedSearchCV:
    """Randomised search cross-validated on the training split only, folds grouped like the split; each fit
    weighs its rows by ``sample_weight`` (the scoring does not)."""
    n_candidates = int(np.prod([len(v) for v in space.values()])) if space else 1
    search = RandomizedSearchCV(estimator, space, n_iter=min(n_iter, n_candidates), scoring=scoring,
                                cv=CompiledStratifiedGroupKFold(cv_folds, shuffle=True, random_state=seed),
                                n_jobs=n_jobs, random_state=seed, refit=False)
    return search.fit(X, y, groups=groups, **fit_params(estimator, sample_weight))


def calibrate_grouped(estimator: BaseEstimator, X: np.ndarray, y: np.ndarray, groups: np.ndarray, *,
                      folds: int, method: str, ensemble: bool, n_jobs: int, seed: int,
                      sample_weight: np.ndarray | None = None) -> tuple[CalibratedClassifierCV, np.ndarray]:
    """Calibrate on grouped folds, so no group is scored by a model that trained on it.

    ``ensemble=False`` (``CalibratedClassifierCV(cv=..., ensemble=False)``): one classifier fitted on the
    whole training split, its calibration map learned from out-of-fold scores; one model to serve.
    ``ensemble=True``: one classifier per fold, each calibrated on its held-out groups, averaged; folds
    times the cost to serve, but averaging smooths isotonic steps and can add a little ROC-AUC.
    The class does not expose the out-of-fold scores needed to choose the threshold, so the single-model
    case is assembled here. ``sample_weight`` weighs the classifier's training rows; the calibration map is
    learned on the held-out scores unweighted (with ``ensemble=True`` scikit-learn weighs both). Returns the model
    and each training row's held-out calibrated score."""
    splits = list(CompiledStratifiedGroupKFold(folds, shuffle=True, random_state=seed).split(X, y, groups))
    centred = method == "centred_isotonic"
    method = "isotonic" if centred else method
    if ensemble:
        model = CalibratedClassifierCV(estimator, method=method, cv=splits, n_jobs=n_jobs).fit(
            X, y, **fit_params(estimator, sample_weight))
        held_out = np.empty(len(y))
        for fold, (_, test_idx) in zip(model.calibrated_classifiers_, splits, strict=True):
            if centred:
                centre_isotonic(fold.calibrators[0])
            held_out[test_idx] = fold.predict_proba(X[test_idx])[:, 1]
        return model, held_out
    # Private helpers of scikit-learn (pinned); a test checks the result equals CalibratedClassifierCV's own.
    from sklearn.calibration import _fit_calibrator
    from sklearn.utils._array_api import get_namespace

    response = "decision_function" if hasattr(estimator, "decision_function") else "predict_proba"
    weighted = fit_params(estimator, sample_weight)
    held_out_raw = cross_val_predict(estimator, X, y, cv=splits, method=response, n_jobs=n_jobs,
                                     params=weighted or None)
    if held_out_raw.ndim == 2:
        held_out_raw = held_out_raw[:, 1]
    final = clone(estimator).fit(X, y, **weighted)
    classes = np.unique(y)
    fitted = _fit_calibrator(final, held_out_raw.reshape(-1, 1), y, classes, method, get_namespace(X)[0])
    if centred:
        centre_isotonic(fitted.calibrators[0])
    model = CalibratedClassifierCV(estimator, method=method, cv=splits, ensemble=False)
    model.calibrated_classifiers_, model.classes_, model.n_features_in_ = [fitted], classes, X.shape[1]
    return model, np.clip(fitted.calibrators[0].predict(held_out_raw), 0.0, 1.0)


def centre_isotonic(calibrator: IsotonicRegression) -> IsotonicRegression:
    """Make a fitted isotonic map strictly increasing between its steps (centred isotonic regression, Oron and
    Flournoy 2017): each flat step becomes one point at its centre, joined to the next by a straight line; the
    map keeps its lowest and highest values and ends. A step holds hundreds of rows that isotonic regression
    scores alike whatever the model said of them, so a false-positive budget could only cut between steps:
    one retrain moved the threshold by a whole step and the share flagged with it. Changed in place (scikit-learn
    rebuilds the interpolation from these breakpoints when a saved model is loaded, as the compiled scorer
    reads them)."""
    x, y = calibrator.X_thresholds_, calibrator.y_thresholds_
    if len(y) < 2:
        return calibrator
    starts = np.r_[0, np.flatnonzero(np.diff(y)) + 1]
    ends = np.r_[starts[1:], len(y)] - 1
    knots_x = np.r_[x[0], (x[starts] + x[ends]) / 2, x[-1]]
    knots_y = np.r_[y[0], y[starts], y[-1]]
    keep = np.r_[True, np.diff(knots_x) > 0]  # a step of one point is its own centre
    calibrator.X_thresholds_, calibrator.y_thresholds_ = knots_x[keep], knots_y[keep]
    calibrator._build_f(calibrator.X_thresholds_, calibrator.y_thresholds_)  # private, pinned: as __setstate__
    return calibrator


BUDGET_ESTIMATORS = ("order_statistic", "harrell_davis")


def budget_threshold(y: np.ndarray, scores: np.ndarray, sources: np.ndarray, max_fpr: float,
                     flaggable: np.ndarray | None = None, estimator: str = "order_statistic") -> float:
    """The lowest cut-off at which at most ``max_fpr`` of every source's legitimate rows score at or above it:
    a false-positive budget that holds for each collection, not just on average. ``flaggable`` (default: every
    row) marks the rows the served decision can call `malicious` on their score; the others (a popular site, a
    stock file, a page asset: the policy lowers their score whatever it is) count as legitimate rows not flagged,
    so the budget is spent on what the served decision flags.

    ``estimator`` reads each source's (1 - ``max_fpr``) quantile of its legitimate scores: ``order_statistic``,
    just above the score of the row one past the budget; ``harrell_davis``, scipy's Harrell-Davis quantile, a
    weighted mean of every order statistic, so the cut-off does not hang on the one or two rows nearest it (the
    smallest collection's budget is 4 rows), except that tied rows (a calibration's plateau) are never split: a
    cut-off inside a run of ties that would flag past the budget goes just above it. Three seeds of the held-out
    folds found Harrell-Davis steadier but not better at the budget (docs/experiments.md, "Session 31")."""
    if estimator not in BUDGET_ESTIMATORS:
        raise ValueError(f"unknown threshold estimator {estimator!r}: expected one of {BUDGET_ESTIMATORS}")
    if flaggable is not None:  # the Harrell-Davis weights need finite scores: 0 is below every flagged one
        scores = np.where(flaggable, scores, -np.inf if estimator == "order_statistic" else 0.0)
    threshold = 0.0
    for source in np.unique(sources[y == 0]):
        legit = np.sort(scores[(y == 0) & (sources == source)])[::-1]
        allowed = int(np.floor(max_fpr * len(legit)))  # rows this source may have at or above the cut-off
        if allowed >= len(legit):
            continue
        if estimator == "harrell_davis":
            from scipy.stats.mstats import hdquantiles

            cut = float(hdquantiles(legit, prob=[1.0 - max_fpr])[0])
            flagged = legit[legit >= cut]
            if len(flagged) > allowed and np.sum(legit == flagged[-1]) > 1:
                cut = float(np.nextafter(flagged[-1], np.inf))  # ties go together: not a plateau past the budget
            threshold = max(threshold, cut)
        else:  # the cut-off must clear the (allowed+1)-th highest score; ties with it are flagged too: just above
            threshold = max(threshold, float(np.nextafter(legit[allowed], np.inf)))
    return min(threshold, 1.0)


def repeat_rows(frame: Any, mask: np.ndarray, times: int) -> Any:
    """``frame`` with the rows of ``mask`` each present ``times`` times (a weight grouped folds keep together:
    the copies share their row's group). The frame itself, untouched, when no row is selected or ``times`` is 1."""
    if times < 1:
        raise ValueError(f"a row weight must be a whole number >= 1, not {times}")
    if times == 1 or not mask.any():
        return frame
    import pandas as pd

    return pd.concat([frame, *[frame[mask]] * (times - 1)], ignore_index=True)


def choose_threshold(y: np.ndarray, scores: np.ndarray, objective: str, *, max_fpr: float | None = None,
                     sources: np.ndarray | None = None, flaggable: np.ndarray | None = None,
                     estimator: str = "order_statistic") -> float:
    """The score cut-off: ``fp_budget`` (see `budget_threshold`; ``sources`` default to one), or the one that
    maximises ``accuracy`` or ``f1`` on validation rows (ties: the lowest)."""
    if objective == "fp_budget":
        if max_fpr is None:
            raise ValueError("threshold objective fp_budget needs max_fpr")
        return budget_threshold(y, scores, np.zeros(len(y)) if sources is None else np.asarray(sources), max_fpr,
                                flaggable, estimator)
    candidates = np.unique(np.concatenate([scores, [0.5]]))
    order = np.argsort(scores)
    sorted_scores, sorted_y = scores[order], y[order]
    positives = sorted_y.sum()
    # Predicting positive for score >= t: counts of true/false positives for every candidate t.
    idx = np.searchsorted(sorted_scores, candidates, side="left")
    below_pos = np.concatenate([[0], np.cumsum(sorted_y)])[idx]
    tp = positives - below_pos
    fp = (len(y) - idx) - tp
    tn = idx - below_pos
    if objective == "accuracy":
        value = (tp + tn) / len(y)
    elif objective == "f1":
        value = 2 * tp / np.maximum(2 * tp + fp + (positives - tp), 1)
    else:
        raise ValueError(f"threshold objective must be accuracy or f1, not {objective!r}")
    return float(candidates[int(np.argmax(value))])


def _canonical_skops(raw: bytes) -> bytes:
    """Make a skops archive byte-reproducible: skops names arrays and memo entries by ``id()`` and
    stamps zip entries with the current time. Renumber both in traversal order; fix the timestamps."""
    source = zipfile.ZipFile(io.BytesIO(raw))
    schema = json.loads(source.read("schema.json"))
    ids: dict[int, int] = {}
    files: dict[str, str] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "__id__" in node:
                node["__id__"] = ids.setdefault(node["__id__"], len(ids))
            if isinstance(node.get("file"), str) and node["file"] in source.namelist():
                old = node["file"]
                node["file"] = files.setdefault(old, f"{len(files):06d}{Path(old).suffix}")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        entries = {"schema.json": json.dumps(schema, indent=1).encode()}
        entries |= {new: source.read(old) for old, new in files.items()}
        for name in sorted(entries):
            target.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), entries[name])
    return out.getvalue()


def save_model(model: Pipeline, path: str | Path) -> str:
    """Write the model reproducibly and atomically; return its SHA-256 for the manifest."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(_canonical_skops(sio.dumps(model)))
    return sha256_file(path)


def load_model(path: str | Path, sha256: str) -> Pipeline:
    """Load a model only if its bytes hash to ``sha256`` and it holds only trusted types. The file is read once:
    the bytes hashed are the bytes checked for types and loaded (a file swapped between two reads is not)."""
    path = Path(path)
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise ModelIntegrityError(f"{path}: SHA-256 {actual} does not match the recorded {sha256}; refusing to load")
    untrusted = set(sio.get_untrusted_types(data=data)) - TRUSTED_TYPES
    if untrusted:
        raise ModelIntegrityError(f"{path}: contains types outside the allowlist: {sorted(untrusted)}")
    return sio.loads(data, trusted=sorted(TRUSTED_TYPES))


def load_detector(model_dir: str | Path, manifest: dict[str, Any] | None = None) -> tuple[Pipeline, dict[str, Any]]:
    """The model ``dvc repro``/``dvc pull`` put in ``model_dir``, verified against its manifest: ``manifest`` when
    the caller has read and checked it already (the copy checked is the copy used), else ``model.json``."""
    manifest = load_manifest(model_dir) if manifest is None else manifest
    return load_model(Path(model_dir) / manifest["file"], manifest["sha256"]), manifest

"""Classification metrics (phishing = positive class) and the data behind the DVC plots."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)


def tpr_at_fpr(y: np.ndarray, scores: np.ndarray, max_fpr: float = 0.01, sample_weight: np.ndarray | None = None,
               ) -> float:
    """Share of phishing caught while flagging at most ``max_fpr`` of legitimate sites."""
    fpr, tpr, _ = roc_curve(y, scores, sample_weight=sample_weight)
    return float(tpr[fpr <= max_fpr].max(initial=0.0))


def group_weights(groups: np.ndarray) -> np.ndarray:
    """1 / (rows of the row's group): every group (registered domain) weighs the same in total."""
    _, inverse, counts = np.unique(np.asarray(groups, dtype=str), return_inverse=True, return_counts=True)
    return 1.0 / counts[inverse]


def grouped_interval(groups: np.ndarray, statistic: Callable[[np.ndarray], float], resamples: int = 200,
                     seed: int = 0, level: float = 0.95) -> list[float]:
    """A percentile bootstrap interval of ``statistic(row_weights)``, resampling whole groups (registered domains)
    with replacement: a site's URLs rise and fall together, so resampling rows would give too narrow an interval.
    ``statistic`` gets each row's weight (how many times its group was drawn); a draw it cannot measure (one
    class left, for a ranking) returns NaN and is skipped."""
    _, codes = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    n_groups = int(codes.max()) + 1 if len(codes) else 0
    rng = np.random.default_rng(seed)
    draws = [statistic(np.bincount(rng.integers(0, n_groups, n_groups), minlength=n_groups)[codes].astype(float))
             for _ in range(resamples)]
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(np.asarray(draws, dtype=float), [tail, 100 - tail])
    return [round(float(low), 5), round(float(high), 5)]


def weighted_roc_auc(y: np.ndarray, scores: np.ndarray) -> Callable[[np.ndarray], float]:
    """ROC-AUC as a function of row weights (for `grouped_interval`); NaN when a class has no weight."""
    def statistic(weights: np.ndarray) -> float:
        if not (weights[y == 1].sum() > 0 and weights[y == 0].sum() > 0):
            return float("nan")
        return float(roc_auc_score(y, scores, sample_weight=weights))
    return statistic


def weighted_share(flags: np.ndarray) -> Callable[[np.ndarray], float]:
    """The weighted share of ``flags`` set (for `grouped_interval`)."""
    return lambda weights: float(np.dot(weights, flags) / weights.sum()) if weights.sum() > 0 else float("nan")


def classification_metrics(y: np.ndarray, scores: np.ndarray, threshold: float,
                           sample_weight: np.ndarray | None = None) -> dict[str, float]:
    predicted = (scores >= threshold).astype(int)
    both_classes = len(np.unique(y)) == 2
    w = {"sample_weight": sample_weight}
    values = {
        "accuracy": accuracy_score(y, predicted, **w),
        "precision": precision_score(y, predicted, zero_division=0, **w),
        "recall": recall_score(y, predicted, zero_division=0, **w),
        "f1": f1_score(y, predicted, zero_division=0, **w),
        "roc_auc": roc_auc_score(y, scores, **w) if both_classes else float("nan"),
        "pr_auc": average_precision_score(y, scores, **w) if both_classes else float("nan"),
        "tpr_at_1pct_fpr": tpr_at_fpr(y, scores, **w) if both_classes else float("nan"),
        "brier": brier_score_loss(y, scores, **w),
        "rows": len(y),
    }
    # A slice with one class has no ROC-AUC: null in JSON, not NaN (which strict JSON readers reject).
    return {k: int(v) if k == "rows" else (round(float(v), 5) if np.isfinite(v) else None) for k, v in values.items()}


def _thin(points: list[dict], limit: int = 400) -> list[dict]:
    """Keep curves small enough for a plots diff while preserving both ends."""
    if len(points) <= limit:
        return points
    idx = np.unique(np.linspace(0, len(points) - 1, limit).round().astype(int))
    return [points[i] for i in idx]


def roc_points(y: np.ndarray, scores: np.ndarray) -> list[dict]:
    fpr, tpr, _ = roc_curve(y, scores, drop_intermediate=True)
    return _thin([{"fpr": round(float(f), 5), "tpr": round(float(t), 5)} for f, t in zip(fpr, tpr)])


def pr_points(y: np.ndarray, scores: np.ndarray) -> list[dict]:
    precision, recall, _ = precision_recall_curve(y, scores)
    return _thin([{"recall": round(float(r), 5), "precision": round(float(p), 5)}
                  for p, r in zip(precision, recall)])


def calibration_points(y: np.ndarray, scores: np.ndarray, bins: int) -> list[dict]:
    observed, predicted = calibration_curve(y, scores, n_bins=bins, strategy="quantile")
    return [{"predicted": round(float(p), 5), "observed": round(float(o), 5)} for p, o in zip(predicted, observed)]


def confusion_rows(y: np.ndarray, scores: np.ndarray, threshold: float) -> list[dict]:
    """One row per test example, the shape DVC's confusion template expects (small: labels only)."""
    names = np.array(["legitimate", "phishing"])
    predicted = (scores >= threshold).astype(int)
    return [{"actual": a, "predicted": p} for a, p in zip(names[y], names[predicted])]


def confusion_counts(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, int]:
    tn, fp, fn, tp = confusion_matrix(y, (scores >= threshold).astype(int), labels=[0, 1]).ravel()
    return {"true_negative": int(tn), "false_positive": int(fp), "false_negative": int(fn), "true_positive": int(tp)}

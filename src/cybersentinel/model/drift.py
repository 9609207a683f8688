"""Drift of scored traffic against the reference profile stored with the model.

The reference (``reference.parquet`` beside the model, hashed in ``model.json``) is a fixed-size sample of the
training rows' features and of their held-out scores: the out-of-fold calibrated scores train chose the threshold
on, so they are what the model does on data it did not fit. Traffic is compared with it by small pure functions:

- per feature, the population stability index (PSI) over the reference's deciles (ties merged, so a flag has two
  bins) and the Kolmogorov-Smirnov distance (largest gap between the two empirical CDFs);
- the model score's distribution, the same way;
- the share flagged (model score at or above the threshold) and the share of inputs with no model score.

PSI is the usual credit-risk and model-monitoring figure: below 0.1 stable, 0.1-0.25 moderate, above 0.25 a shift.
Unlike a test's p-value it does not shrink to "significant" as the sample grows, so one threshold serves 1,000 and
1,000,000 rows. Why not Evidently: see the README (install size, import and run time were measured).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # the command line imports this module at startup: pandas loads on use
    import pandas as pd

REFERENCE_FILE = "reference.parquet"


REFERENCE_ROWS = 10_000


SCORE = "model_score"


BINS = 10


# The model score is binned on fixed edges, not the reference's deciles: calibrated scores are step functions
# whose steps differ between the out-of-fold models of the reference and the final model, and a decile edge on one
# step value would split identical behaviour into different bins.
SCORE_EDGES = np.array([0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98])


FLOOR = 1e-4  # a bin's share is at least this in PSI, so an empty bin counts as a large, finite change


@dataclass(frozen=True)
class Thresholds:
    """Above any of these, the traffic has drifted (the command exits 1)."""

    feature_psi: float = 0.25  # a feature with PSI above this has drifted
    drifted_share: float = 0.1  # ... and more than this share of the features drifting is an alarm (5 of 43)
    score_psi: float = 0.25  # the model score's PSI
    flagged_delta: float = 0.1  # absolute change of the share flagged
    no_score_share: float = 0.05  # share of inputs the model could not score

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not value >= 0:
                raise ValueError(f"drift threshold {name} must be >= 0, not {value}")


def reference_profile(X: np.ndarray, names: list[str], scores: np.ndarray, rows: int = REFERENCE_ROWS,
                      seed: int = 0) -> pd.DataFrame:
    """At most ``rows`` rows (a seeded sample) of the features and held-out model scores, as float32."""
    import pandas as pd

    if len(X) != len(scores):
        raise ValueError(f"{len(X)} feature rows but {len(scores)} scores")
    picked = np.sort(np.random.default_rng(seed).permutation(len(X))[:rows])
    frame = pd.DataFrame(np.asarray(X, dtype=np.float32)[picked], columns=list(names))
    frame[SCORE] = np.asarray(scores, dtype=np.float32)[picked]
    return frame


def bin_edges(reference: np.ndarray, bins: int = BINS) -> np.ndarray:
    """Inner edges at the reference's quantiles, duplicates merged (a 0/1 flag gets one edge, two bins)."""
    values = reference[np.isfinite(reference)]
    if not len(values):
        return np.empty(0)
    return np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1], method="inverted_cdf"))  # data values


def shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of the finite values in each bin (bins are right-closed: ``(e[i-1], e[i]]``)."""
    values = values[np.isfinite(values)]
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    return counts / max(len(values), 1)


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of two bin-share vectors."""
    e, a = np.maximum(expected, FLOOR), np.maximum(actual, FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def ks_distance(reference: np.ndarray, current: np.ndarray) -> float:
    """Largest distance between the two empirical CDFs (the two-sample Kolmogorov-Smirnov statistic)."""
    ref, cur = np.sort(reference[np.isfinite(reference)]), np.sort(current[np.isfinite(current)])
    if not len(ref) or not len(cur):
        return float("nan")
    points = np.concatenate([ref, cur])
    gaps = np.searchsorted(ref, points, side="right") / len(ref) - np.searchsorted(cur, points, side="right") / len(cur)
    return float(np.max(np.abs(gaps)))


def compare_column(reference: np.ndarray, current: np.ndarray, bins: int = BINS,
                   edges: np.ndarray | None = None) -> dict[str, Any]:
    """PSI and KS distance of one column, with the bins (default: the reference's deciles) and both sides' shares
    (for the report's plots)."""
    edges = bin_edges(reference, bins) if edges is None else np.asarray(edges, dtype=np.float64)
    expected, actual = shares(reference, edges), shares(current, edges)
    return {"psi": round(psi(expected, actual), 6), "ks": round(ks_distance(reference, current), 6),
            "edges": [float(e) for e in edges], "reference_shares": [round(float(v), 6) for v in expected],
            "current_shares": [round(float(v), 6) for v in actual],
            "reference_mean": float(np.mean(reference)) if len(reference) else None,
            "current_mean": float(np.nanmean(current)) if np.isfinite(current).any() else None}


def drift_figures(reference: pd.DataFrame, current_X: np.ndarray, current_scores: np.ndarray, names: list[str],
                  threshold: float, thresholds: Thresholds, bins: int = BINS) -> dict[str, Any]:
    """Everything `cybersentinel drift` reports. ``current_X`` holds the features of the rows the model could score;
    ``current_scores`` one model score per input row (NaN: not scored)."""
    missing = [n for n in [*names, SCORE] if n not in reference.columns]
    if missing:
        raise ValueError(f"the reference profile has no column(s) {missing[:5]}: it belongs to another model")
    if current_X.shape[1] != len(names):
        raise ValueError(f"{current_X.shape[1]} feature columns, the model has {len(names)}")
    rows = len(current_scores)
    scored = current_scores[np.isfinite(current_scores)]
    features = {name: compare_column(reference[name].to_numpy(np.float64), current_X[:, j].astype(np.float64), bins)
                for j, name in enumerate(names)}
    drifted = sorted((n for n, f in features.items() if f["psi"] > thresholds.feature_psi),
                     key=lambda n: -features[n]["psi"])
    ref_scores = reference[SCORE].to_numpy(np.float64)
    score = compare_column(ref_scores, scored, edges=SCORE_EDGES)
    flagged = {"reference": round(float(np.mean(ref_scores >= threshold)), 6),
               "current": round(float(np.mean(scored >= threshold)), 6) if len(scored) else None}
    flagged["delta"] = None if flagged["current"] is None else round(flagged["current"] - flagged["reference"], 6)
    no_score = round(float(1 - len(scored) / rows), 6) if rows else None
    drifted_share = round(len(drifted) / len(names), 6) if names else 0.0
    alarms = []
    if drifted_share > thresholds.drifted_share:
        alarms.append(f"{len(drifted)} of {len(names)} features drifted (PSI > {thresholds.feature_psi}): "
                      f"{drifted_share:.0%} > {thresholds.drifted_share:.0%}")
    if len(scored) and score["psi"] > thresholds.score_psi:
        alarms.append(f"model score PSI {score['psi']:.3f} > {thresholds.score_psi}")
    if flagged["delta"] is not None and abs(flagged["delta"]) > thresholds.flagged_delta:
        alarms.append(f"share flagged {flagged['current']:.1%} vs {flagged['reference']:.1%} in the reference: "
                      f"change {abs(flagged['delta']):.1%} > {thresholds.flagged_delta:.1%}")
    if no_score is not None and no_score > thresholds.no_score_share:
        alarms.append(f"{no_score:.1%} of inputs had no model score > {thresholds.no_score_share:.1%}")
    if not len(scored):
        alarms.append("no input could be scored")
    return {"drift": bool(alarms), "alarms": alarms, "rows": rows, "scored_rows": int(len(scored)),
            "reference_rows": len(reference), "threshold": threshold, "thresholds": asdict(thresholds),
            "drifted_features": drifted, "drifted_share": drifted_share, "score": score, "share_flagged": flagged,
            "share_no_model_score": no_score, "features": features}


def write_reference(model_dir: Path, X: np.ndarray, names: list[str], scores: np.ndarray, seed: int = 0,
                    rows: int = REFERENCE_ROWS) -> dict[str, Any]:
    """Write the reference profile beside the model (atomically) and return its manifest entry (file, SHA-256)."""
    from cybersentinel.core.files import sha256_file, write_parquet

    frame = reference_profile(X, names, scores, rows, seed)
    path = Path(model_dir) / REFERENCE_FILE
    write_parquet(path, frame)
    return {"file": REFERENCE_FILE, "sha256": sha256_file(path), "rows": len(frame),
            "scores": "held-out (out-of-fold) calibrated model scores of the training rows"}


def read_reference(model_dir: Path, manifest: dict[str, Any]) -> pd.DataFrame:
    """The reference profile pinned with the model, checked against the manifest's SHA-256 before it is read."""
    import pandas as pd

    from cybersentinel.core.files import ModelIntegrityError, sha256_file

    pinned = manifest.get("reference")
    if not pinned:
        raise ModelIntegrityError(f"{model_dir}: the model has no reference profile (trained before `drift` existed); "
                                  "retrain it with `dvc repro`")
    path = Path(model_dir) / pinned["file"]
    digest = sha256_file(path)
    if digest != pinned["sha256"]:
        raise ModelIntegrityError(f"{path}: SHA-256 {digest} does not match the manifest's {pinned['sha256']}")
    return pd.read_parquet(path)

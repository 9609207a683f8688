"""The `suspicious` band's width weighed on every fold of stage `generalise`: what a user who acts on the band too
(a warning page, an analyst's queue) catches and pays at each width.

Each fold's recipe is trained once, as the stage trains it (`benchmarks/policy_rules.py`'s `fold_detector`), and its
held-out rows are judged by the served decision (no feeds) once per band (`Detector.with_band`; the threshold stays).
The band is not only a label: the corroborating rules act on a model score in it (policy rule 3), so a width can turn
`malicious` verdicts too, and both shares are printed. Per fold and band: phishing called at least `suspicious`
(`malicious` alone), legitimate rows called at least `suspicious` (`malicious` alone); then per band the worst
legitimate share over the held-out collections and the mean phishing share over the folds with phishing.

    python benchmarks/suspicious_band.py                       # bands 0.05, 0.1, 0.15, 0.25; every fold
    python benchmarks/suspicious_band.py --bands 0.1,0.15 --folds web_page_phishing,forward
"""

from __future__ import annotations

import argparse
import importlib.util
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
# Loaded from its file, not by putting benchmarks/ on sys.path (benchmarks/distributed.py would shadow a package).
_spec = importlib.util.spec_from_file_location("policy_rules", HERE / "policy_rules.py")
policy_rules = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(policy_rules)


def band_shares(y: np.ndarray, verdicts: np.ndarray) -> dict[str, float]:
    """Each class's share called `malicious` and at least `suspicious` (an error's verdict counts as neither)."""
    warned = np.isin(verdicts, ("suspicious", "malicious"))
    malicious = verdicts == "malicious"
    out = {}
    for label, name in ((1, "recall"), (0, "fpr")):
        if (y == label).any():
            out[name] = float(malicious[y == label].mean())
            out[f"warned_{name}"] = float(warned[y == label].mean())
    return out


def fold_bands(table: pd.DataFrame, training: np.ndarray, evaluation: np.ndarray, params: Mapping[str, Any],
               best_params: Mapping[str, Any], lists: Mapping[str, Any], familiar: list[str], flaggable: np.ndarray,
               words: list[str], bands: Sequence[float]) -> dict[float, dict[str, float]]:
    """{band: `band_shares`} of one fold."""
    detector, rows = policy_rules.fold_detector(table, training, evaluation, params, best_params, lists, familiar,
                                                flaggable, words)
    y = rows["label"].to_numpy()
    return {band: band_shares(y, detector.with_band(band).score_values(rows["url"], reasons=False)["verdict"]
                              .to_numpy(zero_copy_only=False)) for band in bands}


def summary(results: Mapping[str, Mapping[float, Mapping[str, float]]], bands: Sequence[float]) -> list[str]:
    """Printed lines: a row per fold (each band's shares), then per band the worst held-out legitimate share
    (forward in time's legitimate rows are other collections' test rows, so it is left out of the worst) and the
    mean phishing share."""
    lines = [f"{'fold':30s}" + "".join(f"  band {band:<4g}: phishing warned (malicious) / legitimate warned "
                                       f"(malicious)" for band in bands)]
    for fold, by_band in results.items():
        cells = []
        for band in bands:
            shares = by_band[band]
            phishing = (f"{shares['warned_recall']:.3f} ({shares['recall']:.3f})" if "recall" in shares
                        else "-")
            legitimate = (f"{shares['warned_fpr']:.2%} ({shares['fpr']:.2%})" if "fpr" in shares else "-")
            cells.append(f"  {phishing:>15s} / {legitimate:>15s}")
        lines.append(f"{fold:30s}" + "".join(cells))
    for band in bands:
        held_out = [by_band[band] for fold, by_band in results.items() if fold != "forward"]
        worst = max((shares["warned_fpr"] for shares in held_out if "warned_fpr" in shares), default=float("nan"))
        worst_malicious = max((shares["fpr"] for shares in held_out if "fpr" in shares), default=float("nan"))
        recall = np.mean([by_band[band]["warned_recall"] for by_band in results.values()
                          if "warned_recall" in by_band[band]])
        recall_malicious = np.mean([by_band[band]["recall"] for by_band in results.values()
                                    if "recall" in by_band[band]])
        lines.append(f"band {band:g}: worst held-out legitimate at least suspicious {worst:.2%} (malicious "
                     f"{worst_malicious:.2%}); mean phishing at least suspicious {recall:.3f} (malicious "
                     f"{recall_malicious:.3f})")
    return lines


def main() -> None:
    from joblib import Parallel, delayed

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bands", default="0.05,0.1,0.15,0.25", help="comma-separated widths below the threshold")
    parser.add_argument("--folds", default="", help="comma-separated fold names (default: every fold)")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    bands = [float(band) for band in args.bands.split(",") if band]
    if not bands or not all(0.0 <= band < 1.0 for band in bands):
        parser.error("--bands: widths in [0, 1), at least one")
    given = policy_rules.fold_inputs(args.folds)
    folds = given["folds"]
    results = Parallel(n_jobs=args.jobs)(
        delayed(fold_bands)(given["table"], *rows, given["params"], given["best_params"], given["lists"],
                            given["familiar"], given["flaggable"], given["words"], bands)
        for rows in folds.values())
    print("\n".join(summary(dict(zip(folds, results, strict=True)), bands)))


if __name__ == "__main__":
    main()

"""Where one leave-one-collection-out fold's time goes (stage `generalise` trains ten of them, two at a time):
scikit-learn's `StratifiedGroupKFold` against `data.folds.CompiledStratifiedGroupKFold` on the fold's training
rows (the same folds, checked here too), then a cProfile of the fold's `fit_recipe`. Prints figures; asserts
nothing but that the two splitters agree. Reads data/prepared.parquet and models/best_params.json (`dvc repro`).

    python benchmarks/generalise_fold.py [--collection https_everywhere_tests_2019] [--top 12]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedGroupKFold

from cybersentinel.core.config import feedback_source_names
from cybersentinel.core.files import read_params
from cybersentinel.data.folds import CompiledStratifiedGroupKFold
from cybersentinel.model.generalisation import fit_recipe, loco_rows

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--collection", default="https_everywhere_tests_2019", help="the held-out collection")
    parser.add_argument("--top", type=int, default=12, help="how many profile lines to print")
    args = parser.parse_args()
    params = read_params(REPO / "params.yaml")
    table = pd.read_parquet(REPO / "data" / "prepared.parquet")
    training, _ = loco_rows(table, args.collection)
    rows = table[training]
    print(f"fold {args.collection}: {len(rows):,} training rows, {rows['group'].nunique():,} registered domains")
    folds = {}
    for splitter in (StratifiedGroupKFold, CompiledStratifiedGroupKFold):
        start = time.perf_counter()
        folds[splitter] = [test for _, test in splitter(params["calibration"]["folds"], shuffle=True,
                                                        random_state=params["seed"]).split(
            np.zeros(len(rows)), rows["label"].to_numpy(), rows["group"].to_numpy())]
        print(f"  {splitter.__name__}: {time.perf_counter() - start:.1f} s")
    same = all(np.array_equal(a, b) for a, b in zip(*folds.values(), strict=True))
    print(f"  the same folds: {'yes' if same else 'NO'}")
    assert same
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.enable()
    fit_recipe(rows, params["dataset"], params["featurizer"], params["model"],
               json.loads((REPO / "models" / "best_params.json").read_text()), params["calibration"],
               params["threshold"]["max_fpr"], params["seed"], feedback_source_names(params["dataset"]),
               threshold_estimator=params["threshold"]["estimator"],
               root_page_balance=params["train"]["root_page_balance"])
    profile.disable()
    print(f"fit_recipe: {time.perf_counter() - start:.1f} s (the featurizer's n-gram scorers, then calibration)")
    pstats.Stats(profile).sort_stats("cumulative").print_stats(args.top)


if __name__ == "__main__":
    main()

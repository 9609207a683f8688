"""benchmarks/threshold_seeds.py: the summary of thresholds and served rates over seeds (a tiny results table)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def load(monkeypatch):
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))  # it reads the folds as benchmarks/policy_rules.py does
    spec = importlib.util.spec_from_file_location("threshold_seeds", REPO / "benchmarks" / "threshold_seeds.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_summary_reads_every_seed_and_leaves_forward_out_of_the_worst_rate(monkeypatch):
    summary = load(monkeypatch).summary
    def run(threshold, fpr=None, recall=None):
        return {"threshold": threshold, **({"served_fpr": fpr} if fpr is not None else {}),
                **({"served_recall": recall} if recall is not None else {})}
    results = {
        42: {"small_sites": {"order_statistic": run(0.98, 0.004, 0.5), "harrell_davis": run(0.97, 0.006, 0.6)},
             "forward": {"order_statistic": run(0.96, 0.02, 0.3), "harrell_davis": run(0.96, 0.02, 0.3)}},
        1: {"small_sites": {"order_statistic": run(0.99, 0.002, 0.4), "harrell_davis": run(0.97, 0.006, 0.6)},
            "forward": {"order_statistic": run(0.96, 0.02, 0.5), "harrell_davis": run(0.96, 0.02, 0.5)}},
    }
    lines = summary(results)
    assert lines[0].startswith("small_sites")
    assert "order_statistic threshold 0.98500 (sd 0.00500) FPR 0.30% [0.20%, 0.40%] recall 0.450" in lines[0]
    assert "harrell_davis threshold 0.97000 (sd 0.00000) FPR 0.60% [0.60%, 0.60%] recall 0.600" in lines[0]
    # forward's 2% is not a held-out collection's rate; its recall counts in the mean
    assert lines[2] == "order_statistic: worst held-out FPR per seed 0.40%, 0.20%; mean recall per seed 0.400, 0.450"
    assert lines[3] == "harrell_davis: worst held-out FPR per seed 0.60%, 0.60%; mean recall per seed 0.450, 0.550"

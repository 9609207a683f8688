"""The documented datasets other than `urls`: a tabular one (no URLs, or URLs the model does not score) and a URL one
of a single collection run train, evaluate and generalise, the URL-only parts said not to apply instead of failing."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]


def stage(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"{name}_stage", REPO / "stages" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def prepared(sources: list[str], labels: list[int], years: list[float | None], urls: bool = True) -> pd.DataFrame:
    """A tiny prepared table: one row per entry, two test rows then two training rows in turn, one registered domain
    each."""
    n = len(sources)
    table = pd.DataFrame({"label": labels, "source": sources, "group": [f"site{i}.com" for i in range(n)],
                          "split": ["train" if i // 2 % 2 else "test" for i in range(n)], "synthetic": [False] * n,
                          "year": pd.array(years, dtype="Float64"), "f1": np.arange(n, dtype=float)})
    if urls:
        table.insert(0, "url", [f"http://site{i}.com/login" for i in range(n)])
    return table


def test_one_collection_has_no_leave_one_collection_out_table_and_says_why():
    from cybersentinel.model.generalisation import plan_folds

    # ebbu2017 alone: both classes, one collection, all of 2017 (nothing after a 2021 cut-off)
    table = prepared(["ebbu2017"] * 8, [0, 1] * 4, [2017] * 8)
    folds, skipped = plan_folds(table, ["feedback"], 2021, "url")
    assert folds == {}
    assert "at least two collections" in skipped["loco"] and "ebbu2017" in skipped["loco"]
    assert "legitimate only" in skipped["forward"] and "2021" in skipped["forward"]


def test_a_tabular_dataset_without_years_or_urls_runs_no_fold():
    from cybersentinel.model.generalisation import plan_folds

    table = prepared(["uci"] * 6, [0, 1] * 3, [None] * 6, urls=False)
    folds, skipped = plan_folds(table, [], 2021, "tabular")
    assert folds == {} and set(skipped) == {"loco", "forward"}
    assert "no row carries a year" in skipped["forward"]
    two = prepared(["a", "a", "b", "b"], [0, 1, 0, 1], [2020, 2023, 2020, 2023], urls=False)
    folds, skipped = plan_folds(two, [], 2021, "tabular")
    assert folds == {} and "tabular" in skipped["loco"] and "tabular" in skipped["forward"]


def test_a_held_out_collection_without_opposite_class_rows_elsewhere_is_skipped_the_others_run():
    from cybersentinel.model.generalisation import plan_folds

    # with a collection of both classes beside them, each one-class collection's fold has both classes
    table = prepared(["legit"] * 4 + ["kits"] * 4 + ["other"] * 4, [0] * 4 + [1] * 4 + [0, 1, 0, 1], [2020] * 12)
    folds, skipped = plan_folds(table, [], 2021, "url")
    assert list(folds) == ["kits", "legit", "other"] and set(skipped) == {"forward"}
    # two one-class collections: holding one out leaves the other class alone, or nothing, to train on
    only_phishing = prepared(["kits", "kits", "legit", "legit"], [1, 1, 0, 0], [2020, 2020, 2023, 2023])
    folds, skipped = plan_folds(only_phishing, [], 2021, "url")
    assert "loco" not in skipped and "legitimate only" in skipped["kits"] and "no training rows" in skipped["legit"]
    assert "kits" not in folds and "legit" not in folds


def test_generalise_writes_its_outputs_saying_what_does_not_apply():
    reports = stage("generalise").reports
    skipped = {"loco": "leave-one-collection-out needs at least two collections", "forward": "no year"}
    metrics, details, plot = reports({}, None, skipped, 2021)
    assert metrics == {"not_applicable": skipped}
    assert details == {"loco": {}, "not_applicable": skipped}
    assert plot == []


def test_generalise_reports_of_run_folds_keep_their_form():
    reports = stage("generalise").reports
    fold = {"roc_auc": 0.9, "served_roc_auc": 0.91, "fpr_at_threshold": 0.01, "served_fpr": 0.002,
            "served_warned_fpr": 0.03, "tpr_at_1pct_fpr": 0.5, "rows": 10}
    metrics, details, plot = reports({"a": fold}, {"roc_auc": 0.8, "rows": 5, "train_rows": 3}, {}, 2021)
    assert metrics == {"loco_min_roc_auc": 0.9, "loco_min_served_roc_auc": 0.91, "loco_max_fpr_at_threshold": 0.01,
                       "loco_max_served_fpr": 0.002, "loco_max_served_warned_fpr": 0.03,
                       "forward": {"cutoff_year": 2021, "roc_auc": 0.8, "rows": 5}}
    assert details == {"loco": {"a": fold}, "forward": {"cutoff_year": 2021, "roc_auc": 0.8, "rows": 5,
                                                        "train_rows": 3}}
    assert plot == [{"collection": "a", "roc_auc": 0.9, "tpr_at_1pct_fpr": 0.5}]


def test_train_counts_every_row_of_a_tabular_dataset_in_the_false_positive_budget():
    from cybersentinel.scoring.policy import Policy

    train = stage("train")
    rows = prepared(["uci"] * 4, [0, 1, 0, 1], [None] * 4, urls=False)  # no url column at all
    flaggable = train.flaggable_rows(rows, "tabular", Policy(threshold=1.0), "WordPress", {})
    assert flaggable.dtype == bool and flaggable.all() and len(flaggable) == 4


def test_prepare_bookkeeping_columns_are_never_tabular_features():
    from cybersentinel.data.prepare import feature_columns

    table = prepared(["uci"] * 4, [0, 1, 0, 1], [2020] * 4, urls=False)
    assert feature_columns(table, {"kind": "tabular", "features": "all"}) == ["f1"]


def test_evaluate_a_tabular_model_with_a_url_column_skips_the_url_only_parts(tmp_path, monkeypatch):
    """web_page_phishing: its rows keep their URL, but its model scores the 87 feature columns."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    from cybersentinel.features.featurizer import ColumnSelector
    from cybersentinel.model.estimators import save_model
    from cybersentinel.scoring.policy import Policy

    rng = np.random.default_rng(0)
    n = 40
    label = np.tile([0, 1], n // 2)
    frame = pd.DataFrame({"url": [f"http://site{i}.com/" for i in range(n)], "label": label, "source": "web_page",
                          "group": [f"site{i}.com" for i in range(n)],
                          "f1": label + rng.normal(0, 0.7, n), "f2": rng.normal(0, 1, n)})
    (tmp_path / "features").mkdir()
    frame.to_parquet(tmp_path / "features" / "test.parquet", index=False)
    model = Pipeline([("features", ColumnSelector(["f1", "f2"])), ("classifier", LogisticRegression())])
    model.fit(frame[["f1", "f2"]], label)
    (tmp_path / "models").mkdir()
    sha = save_model(model, tmp_path / "models" / "model.skops")
    manifest = {"file": "model.skops", "sha256": sha, "kind": "tabular", "dataset": "web_page_phishing",
                "model": "logreg", "inputs": ["f1", "f2"], "features": ["f1", "f2"],
                "policy": Policy(threshold=0.5).as_dict()}
    (tmp_path / "models" / "model.json").write_text(json.dumps(manifest))
    (tmp_path / "params.yaml").write_text("seed: 0\nevaluate: {importance_repeats: 1, calibration_bins: 4}\n"
                                          "mlflow: {experiment: test}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setattr(sys, "argv", ["evaluate", "--features", "features", "--model", "models", "--intel", "intel",
                                      "--metrics", "metrics.json", "--details", "details.json", "--plots", "plots",
                                      "--sanity", "none.txt", "none.txt"])
    stage("evaluate").main()
    details = json.loads((tmp_path / "details.json").read_text())
    assert set(details["not_applicable"]) == {"served", "sanity", "slices", "probes"}
    assert "served" not in details and "sanity_counts" not in details and "probes" not in details
    assert details["test"]["rows"] == n
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert "served" not in metrics and "sanity" not in metrics and "probes" not in metrics
    for name in ("roc.json", "pr.json", "calibration.json", "confusion.json", "importance.json"):
        assert (tmp_path / "plots" / name).exists()


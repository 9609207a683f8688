"""The whole pipeline through `dvc repro` in a temporary copy of the repository, on real data."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from fixtures_pipeline import REPO, pipeline_env

from cybersentinel.mlops.params import compose_params

pytestmark = pytest.mark.slow


def read_json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_repro_writes_honest_metrics_and_plots(sample_repo: Path) -> None:
    metrics = read_json(sample_repo / "reports/metrics.json")
    details = read_json(sample_repo / "reports/details.json")
    assert metrics["test"]["roc_auc"] > 0.9  # a real model on ~4,000 real URLs, not a coin
    for key in ("accuracy", "precision", "recall", "f1", "pr_auc", "tpr_at_1pct_fpr", "brier"):
        assert 0.0 <= details["test"][key] <= 1.0
    # the DVC metric is the headline only (what `dvc exp show` lists), each figure equal to the details'
    assert sum(len(v) if isinstance(v, dict) else 1 for v in metrics.values()) <= 22
    assert all(details["test"][k] == v for k, v in metrics["test"].items())
    # every probe list of the stage's command judged whole, its wrong verdicts summed into the headline
    probes = details["probes"]
    command = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["evaluate"]["cmd"]
    assert set(probes) == {Path(word).stem for word in command.split() if word.startswith("benchmarks/")}
    assert {p["kind"] for p in probes.values()} == {"legitimate", "malicious"}
    assert all(p["malicious"] + p["suspicious"] + p["benign"] + p["errors"] == p["urls"] > 0 for p in probes.values())
    assert metrics["probes"]["legitimate_malicious"] == sum(
        p["malicious"] for p in probes.values() if p["kind"] == "legitimate")
    split = read_json(sample_repo / "reports/split.json")
    assert split["groups_in_both"] == 0
    prepared = read_json(sample_repo / "reports/prepare.json")
    assert prepared["duplicates_removed"] > 0  # the sample keeps some of the collections' repeats and overlap
    validation = read_json(sample_repo / "reports/validation.json")
    assert len(validation["by_source"]) == 9
    generalisation = read_json(sample_repo / "reports/generalisation_details.json")
    assert set(generalisation["loco"]) == set(validation["by_source"])
    assert all(0.5 < fold["roc_auc"] <= 1.0 for fold in generalisation["loco"].values())
    assert all(fold["served_roc_auc_ci"][0] <= fold["served_roc_auc"] <= fold["served_roc_auc_ci"][1]
               for fold in generalisation["loco"].values())
    assert generalisation["forward"]["cutoff_year"] == 2021 and generalisation["forward"]["rows"] > 0
    # what is called at least `suspicious` holds what is called `malicious`, for each class of every fold
    for fold in [*generalisation["loco"].values(), generalisation["forward"]]:
        assert fold["served_recall"] <= fold["served_warned_recall"] and fold["served_fpr"] <= fold["served_warned_fpr"]
    assert details["served"]["recall"] <= details["served"]["warned_recall"] <= 1.0
    headline = read_json(sample_repo / "reports/generalisation.json")
    assert headline["loco_min_roc_auc"] == min(fold["roc_auc"] for fold in generalisation["loco"].values())
    served = metrics["served"]
    assert served["rows"] == metrics["test"]["rows"] and metrics["model_sha256"] == read_json(
        sample_repo / "models/model.json")["sha256"]
    for plot in ("roc", "pr", "calibration", "confusion", "importance"):
        assert read_json(sample_repo / f"reports/plots/{plot}.json")
    train = pd.read_parquet(sample_repo / "data/features/train.parquet")
    test = pd.read_parquet(sample_repo / "data/features/test.parquet")
    assert not set(train["group"]) & set(test["group"])
    assert metrics["test"]["rows"] == len(test)


def test_repro_is_up_to_date_and_deterministic(sample_repo: Path, sample_mirror: Path, tmp_path: Path) -> None:
    env = pipeline_env(sample_repo, sample_mirror)
    status = subprocess.run(["dvc", "status", "--json"], cwd=sample_repo, env=env, capture_output=True, text=True)
    # Only the snapshot stage, which must look at the source every time, is ever out of date.
    assert status.returncode == 0 and json.loads(status.stdout) == {"snapshot": ["always changed"]}
    lock_before = (sample_repo / "dvc.lock").read_text()
    forced = subprocess.run(["dvc", "repro", "--force"], cwd=sample_repo, env=env, capture_output=True, text=True)
    assert forced.returncode == 0, forced.stderr[-2000:]
    assert (sample_repo / "dvc.lock").read_text() == lock_before


def test_predict_scores_with_the_reproduced_model(sample_repo: Path, tmp_path: Path) -> None:
    rows = pd.DataFrame({"url": ["http://paypal.com.account-verify.example.tk/login.php", "", "\x00\x01",
                                 "https://en.wikipedia.org/wiki/Phishing"], "ticket": [1, 2, 3, 4]})
    rows.to_csv(tmp_path / "in.csv", index=False)
    result = subprocess.run([sys.executable, "-m", "cybersentinel", "predict", "-i", str(tmp_path / "in.csv"),
                             "-o", str(tmp_path / "out.csv"), "--model-dir", str(sample_repo / "models")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    out = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    assert out["ticket"].tolist() == [1, 2, 3, 4]
    assert out.loc[1, "error"] == "empty URL" and out.loc[1, "verdict"] == ""
    assert out.loc[0, "verdict"] in {"malicious", "suspicious"}
    assert out.loc[3, "verdict"] == "benign"


def test_params_yaml_is_the_composition_of_conf() -> None:
    """params.yaml is what Hydra composes from conf/ (as `dvc exp run` would write it)."""
    assert yaml.safe_load(compose_params([], REPO / "conf")) == yaml.safe_load((REPO / "params.yaml").read_text())

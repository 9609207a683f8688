"""The MLflow registry: versions carry hashes, metrics and commit; `promote` moves `champion` only to a model
that beats it on the same test data; loading by alias verifies the model's SHA-256."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from typer.testing import CliRunner, Result

from cybersentinel.cli.app import app
from cybersentinel.core.config import dataset_sources
from cybersentinel.core.files import sha256_file
from cybersentinel.model.estimators import ModelIntegrityError, load_detector, load_model, save_model
from cybersentinel.scoring.detector import Detector
from cybersentinel.tracking.registry import (
    CHAMPION,
    VERSION_TAGS,
    PromotionError,
    beats,
    client_for,
    evaluation,
    load_alias,
    log_and_register,
    promote,
)
from cybersentinel.tracking.runs import stage_run

pytestmark = pytest.mark.slow  # uses the sample pipeline's data and model
EXPERIMENT = "registry-test"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """An empty MLflow store whose artifacts stay in the temporary folder."""
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client_for(uri).create_experiment(EXPERIMENT, artifact_location=str(root / "artifacts"))
    return uri


@pytest.fixture(scope="module")
def trained(sample_repo: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The sample pipeline's real model, and a deliberately weak one on the same featurizer."""
    strong, manifest = load_detector(sample_repo / "models")
    features = sample_repo / "data" / "features"
    featurizer_sha256 = json.loads((features / "featurizer.json").read_text())["sha256"]
    featurizer = load_model(features / "featurizer.skops", featurizer_sha256)
    train = pd.read_parquet(features / "train.parquet").sample(200, random_state=0)
    weak_classifier = LogisticRegression(C=1e-4, max_iter=200).fit(train[manifest["features"]].to_numpy(),
                                                                     train["label"].to_numpy())
    weak = Pipeline([("features", featurizer), ("classifier", weak_classifier)])
    folder = tmp_path_factory.mktemp("weak")
    weak_manifest = {k: v for k, v in manifest.items() if k != "compiled"}  # a logistic regression has none
    weak_manifest |= {"model": "logreg", "policy": {**weak_manifest["policy"], "threshold": 0.5},
                      "sha256": save_model(weak, folder / "model.skops")}
    return {"strong": (strong, manifest), "weak": (weak, weak_manifest), "test": features / "test.parquet",
            "repo": sample_repo}


def register(uri: str, name: str, model: Pipeline, manifest: dict, repo: Path, monkeypatch) -> str:
    """Register as the train stage does (in the repository, so params.yaml's source hashes are found)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(repo)
    example = pd.read_parquet(repo / "data" / "features" / "test.parquet")[manifest["inputs"]].head(5)
    with stage_run("train", EXPERIMENT) as tracker:
        log_and_register(tracker, model, manifest | {"name": name}, example, repo / "models")
        assert tracker.active, "registration failed (see the warning)"
    return max(client_for(uri).search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version)).version


@pytest.fixture(scope="module")
def registered(store: str, trained: dict) -> dict[str, str]:
    """The weak model as version 1 and the strong one as version 2 of `trained`, registered as train.py does."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        return {kind: register(store, "trained", *trained[kind], trained["repo"], monkeypatch)
                for kind in ("weak", "strong")}


def run_of(client, name: str, version: str):
    """The data (metrics, params, tags) of the run a version was logged in."""
    return client.get_run(client.get_model_version(name, version).run_id).data


def copy_versions(uri: str, versions: list[str], name: str) -> list[str]:
    """The same runs registered under another name with the same tags (cheap: no model is logged again)."""
    client = client_for(uri)
    client.create_registered_model(name)
    copies = []
    for version in versions:
        source = client.get_model_version("trained", version)
        copy = client.create_model_version(name, source.source, run_id=source.run_id, tags=source.tags)
        copies.append(copy.version)
    return copies


def test_champion_moves_only_to_a_better_model_on_the_same_test_data(store, trained, registered) -> None:
    name, repo, test = "promotion", trained["repo"], trained["test"]
    weak, strong = copy_versions(store, [registered["weak"], registered["strong"]], name)
    assert "becomes champion" in promote(store, name, test, candidate=weak)  # no champion yet

    message = promote(store, name, test)  # the newest version by default
    assert message.startswith(f"promoted version {strong} to 'champion' (was version {weak})")
    client = client_for(store)
    assert client.get_model_version_by_alias(name, CHAMPION).version == strong

    with pytest.raises(PromotionError) as refused:
        promote(store, name, test, candidate=weak)
    text = str(refused.value)
    weak_auc = run_of(client, name, weak).metrics["test.roc_auc"]  # metrics on the run, not version tags
    strong_auc = run_of(client, name, strong).metrics["test.roc_auc"]
    assert strong_auc > weak_auc
    assert f"version {weak} has roc_auc {weak_auc:.5f}, champion version {strong} has {strong_auc:.5f}" in text
    assert "must be higher" in text and f"stays on version {strong}" in text
    assert client.get_model_version_by_alias(name, CHAMPION).version == strong

    # Both were scored on the same bytes, and the strong model's number is the evaluate stage's number.
    digest = sha256_file(test)
    for version in (weak, strong):
        assert run_of(client, name, version).tags["test_data_sha256"] == digest
    metrics = json.loads((repo / "reports" / "metrics.json").read_text())["test"]
    assert strong_auc == pytest.approx(metrics["roc_auc"], abs=1e-5)
    assert evaluation(store, name, strong, pd.read_parquet(test), digest).reused

    tags = client.get_model_version(name, strong).tags
    assert set(tags) <= set(VERSION_TAGS)  # a few identifying tags; the figures are the run's metrics
    assert tags["sha256"] == trained["strong"][1]["sha256"]
    assert tags["train_data_sha256"] == trained["strong"][1]["train_data_sha256"]
    assert len(tags["git_commit"]) == 40
    assert len(tags["manifest_sha256"]) == 64  # checked on every fetch (test_loading_by_alias_verifies_the_hash)
    run = run_of(client, name, strong)
    assert "validation.roc_auc" in run.metrics
    params = yaml.safe_load((trained["repo"] / "params.yaml").read_text())
    assert {k for k in run.params if k.startswith("source.")} == {
        f"source.{spec['name']}.sha256" for source in dataset_sources(params["dataset"])
        for spec in source.get("files", [])}  # the feedback source has no files
    source = client.get_model_version("trained", registered["strong"])
    assert trained["strong"][1]["model"] in source.description and "threshold" in source.description


def test_a_different_test_set_is_scored_again_not_reused(store, trained, registered, tmp_path) -> None:
    name = "retest"
    [version] = copy_versions(store, [registered["strong"]], name)
    full = pd.read_parquet(trained["test"])
    first = evaluation(store, name, version, full, sha256_file(trained["test"]))
    half = tmp_path / "half.parquet"
    full.iloc[: len(full) // 2].to_parquet(half)
    second = evaluation(store, name, version, pd.read_parquet(half), sha256_file(half))
    assert not second.reused and second.metrics["rows"] == len(full) // 2 != first.metrics["rows"]
    assert run_of(client_for(store), name, version).tags["test_data_sha256"] == sha256_file(half)


def test_loading_by_alias_verifies_the_hash(store, trained, registered) -> None:
    name = "by-alias"
    [version] = copy_versions(store, [registered["strong"]], name)
    client_for(store).set_registered_model_alias(name, CHAMPION, version)
    model, manifest = load_alias(name, CHAMPION, store)
    urls = pd.DataFrame({"url": ["http://paypal.com.verify-account.example.tk/login", "https://www.python.org/"]})
    expected = Detector(*trained["strong"]).score_urls(urls["url"].tolist())["score"]
    assert np.array_equal(Detector(model, manifest).score_urls(urls["url"].tolist())["score"], expected)

    run_id = client_for(store).get_model_version(name, version).run_id
    folder = Path(store.removeprefix("sqlite:///")).parent / "artifacts" / run_id / "artifacts" / "detector"
    for file in ("model.skops", "scorer.npz"):  # the pipeline, and the compiled form the service loads
        stored = folder / file
        original = stored.read_bytes()
        stored.write_bytes(original + b"tampered")
        try:
            with pytest.raises(ModelIntegrityError, match="do not all match"):
                load_alias(name, CHAMPION, store)
        finally:
            stored.write_bytes(original)
    # the policy that acts on the model is covered too: a threshold of 0 would make every URL malicious
    stored = folder / "model.json"
    original = stored.read_bytes()
    manifest = json.loads(original)
    manifest["policy"]["threshold"] = 0.0001
    stored.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    try:
        with pytest.raises(ModelIntegrityError, match="manifest"):
            load_alias(name, CHAMPION, store)
        assert CliRunner().invoke(app, ["fetch-model", "--name", name, "--out", str(folder.parent / "x")],
                                  env={"MLFLOW_TRACKING_URI": store}).exit_code != 0
    finally:
        stored.write_bytes(original)


def test_cli_promote_refuses_with_exit_code_and_fetch_model_writes_a_usable_folder(
        store, trained, registered, monkeypatch, tmp_path) -> None:
    name = "cli"
    strong, weak = copy_versions(store, [registered["strong"], registered["weak"]], name)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    runner = CliRunner()
    args = ["promote", "--name", name, "--test-data", str(trained["test"])]
    assert runner.invoke(app, [*args, "--version", strong]).exit_code == 0
    refused = runner.invoke(app, [*args, "--version", weak, "--metric", "f1"])
    assert refused.exit_code == 2 and "refusing to promote" in refused.output and "f1" in refused.output

    out = tmp_path / "champion"
    fetched = runner.invoke(app, ["fetch-model", "--name", name, "--out", str(out)])
    assert fetched.exit_code == 0, fetched.output
    assert f"... downloading version {strong}" in fetched.output  # progress, step by step, on stderr
    assert sha256_file(out / "model.skops") == trained["strong"][1]["sha256"]
    assert sha256_file(out / "scorer.npz") == trained["strong"][1]["compiled"]["sha256"]
    by_folder = runner.invoke(app, [*args, "--model-dir", str(out)])  # the folder train wrote, as after exp apply
    assert by_folder.exit_code == 0, by_folder.output
    assert f"version {strong} already is 'champion'" in by_folder.output
    # the same model file under another policy is no registered version: nobody measured that decision
    edited = tmp_path / "edited"
    shutil.copytree(out, edited)
    manifest = json.loads((edited / "model.json").read_text())
    (edited / "model.json").write_text(json.dumps({**manifest, "policy": {**manifest["policy"], "threshold": 0.05}}))
    other = runner.invoke(app, [*args, "--model-dir", str(edited)], env={"COLUMNS": "400"})
    assert other.exit_code == 2 and "no registered version" in other.output
    fetched = Detector.from_dir(out)
    assert fetched.model is None and fetched.scorer is not None  # served from the compiled form
    assert fetched.score_urls(["https://www.python.org/"])["verdict"].tolist() == ["benign"]


def test_refusals_for_bad_metric_and_unscorable_test_data(store, trained, registered, tmp_path) -> None:
    name = "refusals"
    copy_versions(store, [registered["strong"]], name)
    with pytest.raises(PromotionError, match="unknown metric 'auc'"):
        promote(store, name, trained["test"], metric="auc")
    no_urls = tmp_path / "no_urls.parquet"
    pd.read_parquet(trained["test"]).drop(columns=["url"]).to_parquet(no_urls)
    with pytest.raises(PromotionError, match="cannot be scored on the same test data"):
        promote(store, name, no_urls)
    with pytest.raises(PromotionError, match="no registered versions.*make promote"):
        promote(store, "never-registered", trained["test"])
    no_champion = CliRunner().invoke(app, ["fetch-model", "--name", name, "--out", str(tmp_path / "x")],
                                     env={"MLFLOW_TRACKING_URI": store})
    assert no_champion.exit_code == 2 and "has no version with alias 'champion'" in no_champion.output
    assert "make promote" in no_champion.output


def test_metric_direction() -> None:
    assert beats("roc_auc", 0.91, 0.9) and not beats("roc_auc", 0.9, 0.9)
    assert beats("brier", 0.04, 0.05) and not beats("brier", 0.05, 0.04)
    assert not beats("roc_auc", 0.905, 0.9, min_delta=0.01)



def reading_commands(uri: str, tmp_path: Path) -> dict[str, Result]:
    """fetch-model, promote and serve --model-alias: the commands that only read the registry."""
    test = tmp_path / "test.parquet"
    pd.DataFrame({"url": ["https://www.python.org/"], "label": [0]}).to_parquet(test)
    commands = {"fetch-model": ["fetch-model", "--name", "m", "--out", str(tmp_path / "out")],
                "promote": ["promote", "--name", "m", "--test-data", str(test)],
                "serve": ["serve", "--model-alias", "champion", "--model-dir", str(tmp_path)]}
    runner = CliRunner()
    return {name: runner.invoke(app, args, env={"MLFLOW_TRACKING_URI": uri}) for name, args in commands.items()}


def one_line(output: str) -> str:
    """Output with line breaks and the frame of Click's error panel taken out, so a wrapped path still matches."""
    return "".join(line.strip(" │╭╮╰╯─") for line in output.splitlines())


def assert_clear_error(results: dict[str, Result], expected: str) -> None:
    for name, result in results.items():
        assert result.exit_code == 2 and isinstance(result.exception, SystemExit), (name, result.output)
        assert expected.replace(" ", "") in one_line(result.output).replace(" ", ""), (name, result.output)


def contents(path: Path) -> bytes | list[Path]:
    return sorted(path.iterdir()) if path.is_dir() else path.read_bytes()


@pytest.mark.parametrize("kind", ["text", "garbage", "folder", "another SQLite database"])
def test_a_store_that_is_not_an_mlflow_database_is_named_and_left_alone(kind: str, tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    if kind == "folder":
        path.mkdir()
    elif kind == "another SQLite database":
        with closing(sqlite3.connect(path)) as db:
            db.execute("CREATE TABLE notes (text)")
    else:
        path.write_bytes(b"not a database\n" if kind == "text" else bytes(range(256)) * 8)
    before = contents(path)
    assert_clear_error(reading_commands(f"sqlite:///{path}", tmp_path), f"{path} is not an MLflow database")
    assert contents(path) == before  # not migrated into an MLflow store


def test_a_missing_sqlite_store_is_reported_not_created(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "none.db"
    assert_clear_error(reading_commands(f"sqlite:///{path}", tmp_path), f"no MLflow registry at {path}")
    assert not path.parent.exists()


def test_registry_errors_reach_the_user_as_one_redacted_line(store: str, tmp_path: Path, monkeypatch) -> None:
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    def fail(*_args, **_kwargs) -> None:  # what MLflow says when a server drops the connection mid-request
        raise MlflowException("API request to http://user:s3cr3t@mlflow.example/api/2.0/mlflow failed")

    monkeypatch.setattr(MlflowClient, "search_model_versions", fail)
    monkeypatch.setattr(MlflowClient, "get_model_version_by_alias", fail)
    results = reading_commands(store, tmp_path)
    assert_clear_error(results, "http://***@mlflow.example/api")
    assert not any("s3cr3t" in result.output for result in results.values())


@pytest.mark.parametrize(("uri", "driver"), [("postgresql://u:s3cr3t@db.example:1/mlflow", "psycopg"),
                                             ("mysql://u:s3cr3t@db.example/mlflow", "MySQLdb")])
def test_a_database_store_without_its_driver_is_one_redacted_line(uri: str, driver: str, tmp_path: Path) -> None:
    """MLflow would stop with a ModuleNotFoundError traceback when it first opens the store."""
    if importlib.util.find_spec(driver) is not None:
        pytest.skip(f"{driver} is installed here")
    results = reading_commands(uri, tmp_path)
    scheme = uri.partition("://")[0]
    assert_clear_error(results, f"{scheme}://***@db.example")
    assert_clear_error(results, f"the {scheme}:// scheme needs a database driver that is not installed")
    assert not any("s3cr3t" in result.output or "Traceback" in result.output for result in results.values())

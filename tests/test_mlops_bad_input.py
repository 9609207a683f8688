"""The MLOps commands on bad input: `retrain` with an unreachable registry, `predict`/`serve` on a broken
model.json, `promote`/`fetch-model` with reserved aliases, absent versions, unusable tracking URIs and test data
that is no labelled table, `remote check` with a malformed configuration, `report` without workspace metrics.
Each ends in one line (no traceback), credentials redacted."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from cybersentinel.cli.app import app

GIT = ["git", "-c", "user.email=test@cybersentinel.invalid", "-c", "user.name=test"]
NAME = "bad-input-detector"


def invoke(*args: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, list(args), env=env, terminal_width=400)


def flat(output: str) -> str:
    """Output with rich's error box and line wrapping removed."""
    return " ".join(re.sub(r"[\u2500-\u257f]", " ", output).split())


def assert_one_line(result, *expected: str, code: int = 2) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, (TypeError, ValueError, KeyError))
    for text in expected:  # compared without blanks: rich wraps a long path anywhere
        assert text.replace(" ", "") in flat(result.output).replace(" ", ""), result.output


# --- retrain: the registry is unreachable after the decision to promote ------------------------------------


def stub_retrain(monkeypatch, repo: Path, candidate_sha256: str, champion: dict) -> ModuleType:
    """`cybersentinel retrain` in ``repo`` with its steps stubbed (no git, no DVC): the candidate's model.json
    holds ``candidate_sha256``, ``champion`` is what `keep_champion` returns. The steps module, to stub more."""
    from cybersentinel.mlops import retrain as steps

    monkeypatch.chdir(repo)
    (repo / "models").mkdir()
    (repo / "models" / "model.json").write_text(json.dumps({"sha256": candidate_sha256}))
    (repo / "reports").mkdir()
    monkeypatch.setattr(steps, "retrain_params", lambda *_: ({}, {"metric": "roc_auc", "min_delta": 0.001,
                                                                    "loco_tolerance": 0.005, "sanity_tolerance": 0}))
    monkeypatch.setattr(steps, "require_clean", lambda repo: None)
    monkeypatch.setattr(steps, "keep_champion", lambda repo, dest: champion)
    monkeypatch.setattr(steps, "feedback_snapshots", lambda params: {"rows": 0, "snapshot": "none", "sources": {}})
    monkeypatch.setattr(steps, "repro", lambda repo: "")
    return steps


def test_retrain_with_an_unreachable_registry_still_pushes_and_reports_then_fails(tmp_path, monkeypatch) -> None:
    steps = stub_retrain(monkeypatch, tmp_path, "ab" * 32, {})  # no champion yet: a first promotion
    (tmp_path / "reports" / "generalisation.json").write_text("{}")
    pushed = []
    monkeypatch.setattr(steps, "push", lambda repo: pushed.append(repo) or "")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://alice:s3cret@127.0.0.1:1")
    result = CliRunner().invoke(app, ["retrain", "--no-refresh", "--report-dir", str(tmp_path / "out")])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert pushed == [tmp_path], "the candidate must still be pushed"
    report = (tmp_path / "out" / "report.md").read_text()
    assert "registry alias not moved" in report and "unreachable" in report
    assert "registry alias not moved" in result.output and "alice" not in result.output
    assert "s3cret" not in result.output + report + (tmp_path / "out" / "comparison.json").read_text()


def test_retrain_puts_the_champion_back_when_the_candidates_metrics_are_unreadable(tmp_path, monkeypatch) -> None:
    steps = stub_retrain(monkeypatch, tmp_path, "cd" * 32, {"sha256": "ab" * 32, "sanity": {}})
    (tmp_path / "reports" / "metrics.json").write_text('{"sanity": {"legitimate_malicious_with_feeds": Infinity}}')
    restored = []
    monkeypatch.setattr(steps, "restore", lambda repo: restored.append(repo))
    result = CliRunner().invoke(app, ["retrain", "--no-refresh", "--report-dir", str(tmp_path / "out")])
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert "legitimate_malicious_with_feeds is inf" in flat(result.output) and restored == [tmp_path]


# --- predict and serve on a broken model.json -------------------------------------------------------------


@pytest.fixture
def broken_models(tmp_path: Path) -> dict[str, Path]:
    folders = {}
    for name, text in {"not JSON": "{bad", "threshold 'high'": '{"policy": {"threshold": "high"}}',
                       "threshold NaN": '{"policy": {"threshold": NaN}}'}.items():
        folder = tmp_path / re.sub(r"\W", "_", name)
        folder.mkdir()
        (folder / "model.json").write_text(text)
        folders[name] = folder
    return folders


@pytest.mark.parametrize("command", ["predict", "serve"])
def test_a_broken_model_json_is_one_line_naming_the_file(command: str, broken_models) -> None:
    for folder in broken_models.values():
        args = ["--input", "-", "--no-feeds"] if command == "predict" else ["--port", "1"]
        result = invoke(command, "--model-dir", str(folder), *args)
        assert_one_line(result, "cannot load the model", f"{folder}/model.json")


# --- promote and fetch-model -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def light_store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A registry with two versions of NAME (no model files: every refusal here comes before a download)."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path_factory.mktemp('registry') / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    client.create_registered_model(NAME)
    for _ in range(2):
        client.create_model_version(NAME, source="file:///nonexistent/model")
    return uri


def test_a_reserved_alias_is_refused_before_anything_is_downloaded(light_store, tmp_path, monkeypatch) -> None:
    from cybersentinel.tracking import registry

    monkeypatch.setattr(registry, "load_version", lambda *_: pytest.fail("downloaded before checking the alias"))
    test = tmp_path / "test.parquet"
    pd.DataFrame({"url": ["http://a.example/"], "label": [1]}).to_parquet(test)
    env = {"MLFLOW_TRACKING_URI": light_store}
    for alias in ("v1", "V12", "latest", "LATEST"):
        result = invoke("promote", "--name", NAME, "--version", "2", "--alias", alias, "--test-data", str(test),
                        env=env)
        assert_one_line(result, f"{alias!r} is not an alias to use", "--version")
    result = invoke("fetch-model", "--name", NAME, "--alias", "latest", "--out", str(tmp_path / "fm"), env=env)
    assert_one_line(result, "'latest' is not an alias to use", "newest registered version")
    assert not (tmp_path / "fm").exists()


def test_an_absent_version_is_named_not_blamed_on_the_registry(light_store, tmp_path) -> None:
    test = tmp_path / "test.parquet"
    pd.DataFrame({"url": ["http://a.example/"], "label": [1]}).to_parquet(test)
    result = invoke("promote", "--name", NAME, "--version", "999", "--test-data", str(test),
                    env={"MLFLOW_TRACKING_URI": light_store})
    assert_one_line(result, f"'{NAME}' has no version '999'", "registered: 1 to 2")
    assert "could not be asked" not in result.output


@pytest.mark.parametrize(("uri", "message"), [
    ("bogus://alice:s3cret@x", "is not a usable MLflow registry: Model registry functionality is unavailable"),
    ("file:///nonexistent/mlruns", "names no MLflow store (/nonexistent/mlruns is not a folder)"),
])
def test_an_unusable_tracking_uri_is_not_an_absent_alias(uri: str, message: str, tmp_path) -> None:
    result = invoke("fetch-model", "--name", NAME, "--out", str(tmp_path / "fm"), env={"MLFLOW_TRACKING_URI": uri})
    assert_one_line(result, message)
    assert "no version with alias" not in result.output and "s3cret" not in result.output


def test_test_data_that_is_no_labelled_table_is_one_line(light_store, tmp_path) -> None:
    cases = {"test.csv": "is not a readable Parquet table", "nolabel.parquet": "has no 'label' column",
             "empty.parquet": "has no rows"}
    (tmp_path / "test.csv").write_text("url,label\nhttp://a.example/,1\n")
    pd.DataFrame({"url": ["http://a.example/"]}).to_parquet(tmp_path / "nolabel.parquet")
    pd.DataFrame({"url": pd.Series([], dtype=str), "label": pd.Series([], dtype=int)}).to_parquet(
        tmp_path / "empty.parquet")
    for file, message in cases.items():
        result = invoke("promote", "--name", NAME, "--version", "2", "--test-data", str(tmp_path / file),
                        env={"MLFLOW_TRACKING_URI": light_store})
        assert_one_line(result, f"--test-data {tmp_path / file} {message}")


# --- remote check --------------------------------------------------------------------------------------------


def dvc_repo(path: Path, local_config: str) -> Path:
    subprocess.run(["git", "init", "-q", str(path)], check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "remote", "add", "-d", "storage", "s3://bucket/x"], cwd=path,
                   check=True, capture_output=True)
    (path / ".dvc" / "config.local").write_text(local_config)
    return path


@pytest.mark.parametrize(("config", "message"), [
    ("['remote \"storage\"']\n    endpointurl = notaurl\n", "cannot use its settings (Invalid endpoint: notaurl)"),
    ("[core\n    secret_access_key = s3cret\n", "DVC cannot read its configuration"),
])
def test_remote_check_on_a_malformed_configuration_is_one_line(config: str, message: str, tmp_path) -> None:
    repo = dvc_repo(tmp_path / "repo", config)
    result = subprocess.run([str(Path(sys.executable).parent / "cybersentinel"), "remote", "check"], cwd=repo,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "s3cret" not in result.stderr


# --- report without the workspace's metrics -----------------------------------------------------------------


@pytest.mark.parametrize(("content", "message"), [
    (None, "reports/metrics.json is missing from the workspace"),
    ("{not json", "reports/metrics.json in the workspace cannot be read as metrics"),
])
def test_report_refuses_missing_or_corrupt_workspace_metrics(content: str | None, message: str, tmp_path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run([*GIT, "init", "-q", "-b", "main"], cwd=repo, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True)
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"metrics": ["reports/metrics.json"]}))
    (repo / "reports").mkdir()
    (repo / "reports" / "metrics.json").write_text(json.dumps({"test": {"roc_auc": 0.9}}))
    subprocess.run([*GIT, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*GIT, "commit", "-qm", "base"], cwd=repo, check=True)
    if content is None:
        (repo / "reports" / "metrics.json").unlink()
    else:
        (repo / "reports" / "metrics.json").write_text(content)
    result = subprocess.run([str(Path(sys.executable).parent / "cybersentinel"), "report", "--base", "main"],
                            cwd=repo, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (repo / "reports" / "tmp").exists()


def test_report_refuses_metrics_older_than_the_stages_inputs(tmp_path) -> None:
    """`dvc exp run ... train` without evaluate had left the old metrics, which the report showed as the change's."""
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run([*GIT, "init", "-q", "-b", "main"], cwd=repo, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=repo, check=True)
    (repo / "params.yaml").write_text("C: 1\n")
    (repo / "dvc.yaml").write_text(yaml.safe_dump({"stages": {"evaluate": {
        "cmd": "mkdir -p reports && echo '{\"roc_auc\": 0.9}' > reports/metrics.json", "params": ["C"],
        "metrics": [{"reports/metrics.json": {"cache": False}}]}}}))
    subprocess.run([sys.executable, "-m", "dvc", "repro", "-q"], cwd=repo, check=True, capture_output=True)
    subprocess.run([*GIT, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*GIT, "commit", "-qm", "base"], cwd=repo, check=True)
    report = [str(Path(sys.executable).parent / "cybersentinel"), "report", "--base", "main"]
    (repo / "feeds").mkdir()  # a `.dvc` file's output that no stage reads: absent from a clone, it is no stale stage
    (repo / "feeds" / "list.txt").write_text("198.51.100.7\n")
    subprocess.run([sys.executable, "-m", "dvc", "add", "-q", "feeds"], cwd=repo, check=True, capture_output=True)
    subprocess.run([*GIT, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*GIT, "commit", "-qm", "feeds"], cwd=repo, check=True)
    shutil.rmtree(repo / "feeds")
    assert subprocess.run(report, cwd=repo, capture_output=True, text=True, timeout=120).returncode == 0
    (repo / "params.yaml").write_text("C: 3\n")
    result = subprocess.run(report, cwd=repo, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "out of date (evaluate changed since they ran)" in result.stderr, result.stderr

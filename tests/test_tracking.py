import socket

import pytest

from cybersentinel.tracking.runs import flatten, stage_run


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_dead_tracking_server_warns_and_the_stage_carries_on(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{closed_port()}")
    with pytest.warns(UserWarning, match="unreachable"), stage_run("train", "exp") as tracker:
        tracker.params({"a": 1})
        tracker.metrics({"accuracy": 0.9})
        finished = True
    assert finished and not tracker.active


def test_runs_are_logged_to_the_local_sqlite_store(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("DVC_EXP_NAME", "fuzzy-plot")  # as `dvc exp run` sets it for each stage
    with stage_run("evaluate", "exp", {"dataset": "urls"}) as tracker:
        tracker.params({"model": {"name": "lightgbm", "params": {"n_estimators": 10}}})
        tracker.metrics({"accuracy": 0.97, "rows": 10, "label": "not a number"})
    import mlflow

    run = mlflow.search_runs(experiment_names=["exp"], output_format="list")[0]
    assert run.data.params["model.params.n_estimators"] == "10"
    assert run.data.metrics == {"accuracy": 0.97, "rows": 10.0}
    assert run.data.tags["stage"] == "evaluate" and run.data.tags["dataset"] == "urls"
    assert run.data.tags["dvc_experiment"] == "fuzzy-plot" and run.info.status == "FINISHED"


def test_a_stage_that_fails_leaves_a_failed_run(monkeypatch, tmp_path):
    """The run had been ended FINISHED whatever the stage did."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    with pytest.raises(KeyError), stage_run("train", "exp"):
        raise KeyError("url")
    import mlflow

    assert [run.info.status for run in mlflow.search_runs(experiment_names=["exp"], output_format="list")] == [
        "FAILED"]


def test_flatten_joins_nested_keys():
    assert flatten({"a": {"b": {"c": 1}}, "d": 2}) == {"a.b.c": 1, "d": 2}

"""MLflow tracking that can never fail a stage: if the tracking store is unreachable or errors, the
stage warns once, clearly, and carries on without tracking.

Store: ``MLFLOW_TRACKING_URI`` if set (a tracking server, DagsHub, ...), else ``sqlite:///mlflow.db``
in the working directory (ignored by git).
"""

from __future__ import annotations

import logging
import os
import subprocess
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from cybersentinel.core.redact import redact
from cybersentinel.core.retry import one_line

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
log = logging.getLogger(__name__)


def git_commit() -> str:
    result = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=False)
    return result.stdout.strip() or "unknown"


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"model": {"params": {"C": 1}}}`` -> ``{"model.params.C": 1}`` (MLflow params are flat)."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat |= flatten(value, f"{name}.")
        else:
            flat[name] = value
    return flat


class Tracker:
    """A thin guard around an active MLflow run; after the first failure every call is a no-op."""

    def __init__(self, mlflow_module: Any | None):
        self.mlflow = mlflow_module

    @property
    def active(self) -> bool:
        return self.mlflow is not None

    def call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if self.mlflow is None:
            return None
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - tracking is best effort by design
            warnings.warn(f"MLflow {what} failed, continuing without tracking: {one_line(exc)}", stacklevel=2)
            self.mlflow = None
            return None

    def params(self, params: Mapping[str, Any]) -> None:
        flat = {k: str(v)[:500] for k, v in flatten(params).items()}
        self.call("log_params", lambda: self.mlflow.log_params(flat))

    def metrics(self, metrics: Mapping[str, float], prefix: str = "") -> None:
        values = {f"{prefix}{k}": float(v) for k, v in metrics.items() if isinstance(v, int | float)}
        self.call("log_metrics", lambda: self.mlflow.log_metrics(values))

    def artifact(self, path: str, artifact_path: str | None = None) -> None:
        if os.path.exists(path):
            self.call("log_artifact", lambda: self.mlflow.log_artifact(path, artifact_path))

    def tags(self, tags: Mapping[str, Any]) -> None:
        self.call("set_tags", lambda: self.mlflow.set_tags({k: str(v) for k, v in tags.items()}))


def reachable(uri: str) -> str | None:
    """None if the store looks usable, else why not (a quick probe, so a dead server costs seconds)."""
    if not uri.startswith(("http://", "https://")):
        return None
    import requests

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=3)
    except requests.RequestException as exc:
        return f"tracking server {redact(uri)} is unreachable ({type(exc).__name__})"
    return None


@contextmanager
def stage_run(stage: str, experiment: str, tags: Mapping[str, Any] | None = None) -> Iterator[Tracker]:
    """An MLflow run for one pipeline stage, tagged with the stage name and git commit."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    problem = reachable(uri)
    if problem:
        warnings.warn(f"MLflow: {problem}; the {stage} stage continues without tracking", stacklevel=2)
        yield Tracker(None)
        return
    logging.getLogger("alembic").setLevel(logging.WARNING)
    import mlflow

    tracker = Tracker(mlflow)
    tracker.call("set_tracking_uri", mlflow.set_tracking_uri, uri)
    tracker.call("set_experiment", mlflow.set_experiment, experiment)
    run = tracker.call("start_run", mlflow.start_run, run_name=stage)
    if run is None:
        yield Tracker(None)
        return
    status = "FAILED"  # unless the stage's block ends normally: a stage that raised is no finished run
    try:
        # `dvc exp run` names its experiment in the stage's environment: the run is found by it, not by its params
        experiment_name = {"dvc_experiment": os.environ["DVC_EXP_NAME"]} if os.environ.get("DVC_EXP_NAME") else {}
        tracker.tags({"stage": stage, "git_commit": git_commit(), **experiment_name, **(tags or {})})
        yield tracker
        status = "FINISHED"
    finally:
        if tracker.active:
            tracker.call("end_run", mlflow.end_run, status=status)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                Tracker(mlflow).call("end_run", mlflow.end_run, status=status)

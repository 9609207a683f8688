"""The MLflow model registry: every trained model is logged (skops, never pickle) with its signature
and manifest, and registered as a new version of the configured model name."""

from __future__ import annotations

from typing import Any

import pandas as pd
from sklearn.pipeline import Pipeline

from cybersentinel.models import TRUSTED_TYPES
from cybersentinel.tracking import Tracker, git_commit


def log_and_register(tracker: Tracker, model: Pipeline, manifest: dict[str, Any], example: pd.DataFrame) -> None:
    """Log the model and register a version tagged with its hashes, metrics and git commit."""
    if not tracker.active:
        return
    mlflow = tracker.mlflow

    def log() -> None:
        from mlflow.models import infer_signature

        signature = infer_signature(example, model.predict_proba(example)[:, 1])
        info = mlflow.sklearn.log_model(model, name="model", serialization_format="skops",
                                        skops_trusted_types=sorted(TRUSTED_TYPES), signature=signature,
                                        registered_model_name=manifest["name"], pyfunc_predict_fn="predict_proba")
        mlflow.log_dict(manifest, "detector/model.json")
        client = mlflow.MlflowClient()
        version = info.registered_model_version
        tags = {"sha256": manifest["sha256"], "train_data_sha256": manifest["train_data_sha256"],
                "git_commit": git_commit(), "dataset": manifest["dataset"], "model": manifest["model"],
                **{f"validation.{k}": v for k, v in manifest["validation"].items()}}
        for key, value in tags.items():
            client.set_model_version_tag(manifest["name"], version, key, str(value))

    tracker.call("model registration", log)

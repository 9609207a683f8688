"""Scoring with the model the pipeline produced: one code path for the CLI, the service and the
monitor. Rows that cannot be scored get an ``error`` instead of being dropped."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from cybersentinel.models import load_detector
from cybersentinel.urls import to_text

MAX_URL_CHARS = 65_536


@dataclass
class Detector:
    model: Pipeline
    manifest: dict[str, Any]

    @classmethod
    def from_dir(cls, model_dir: str | Path = "models") -> Detector:
        model, manifest = load_detector(model_dir)
        return cls(model, manifest)

    @property
    def threshold(self) -> float:
        return float(self.manifest["threshold"])

    @property
    def suspicious_from(self) -> float:
        return max(0.0, self.threshold - float(self.manifest.get("suspicious_band", 0.0)))

    def verdicts(self, scores: np.ndarray) -> np.ndarray:
        return np.where(scores >= self.threshold, "malicious",
                        np.where(scores >= self.suspicious_from, "suspicious", "benign"))

    def score_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with ``score``, ``verdict`` and ``error`` appended; same rows, same order."""
        inputs = self.manifest["inputs"]
        missing = [c for c in inputs if c not in frame.columns]
        if missing:
            raise ValueError(f"input has no column(s) {missing}; this model needs {inputs[:5]}")
        out = frame.copy()
        errors = row_errors(frame, inputs, self.manifest["kind"])
        ok = errors.isna().to_numpy()
        scores = np.full(len(frame), np.nan)
        if ok.any():
            usable = frame.loc[ok, inputs]
            if self.manifest["kind"] == "url":
                usable = usable.assign(url=usable["url"].map(to_text))
            scores[ok] = self.model.predict_proba(usable)[:, 1]
        out["score"] = np.round(scores, 6)
        out["verdict"] = np.where(ok, self.verdicts(np.nan_to_num(scores)), "")
        out["error"] = errors.fillna("")
        return out

    def score_urls(self, urls: list[Any]) -> pd.DataFrame:
        return self.score_frame(pd.DataFrame({"url": urls}))


def row_errors(frame: pd.DataFrame, inputs: list[str], kind: str) -> pd.Series:
    """A reason per row that cannot be scored (None where the row is fine)."""
    errors = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    if kind == "url":
        text = frame["url"].map(to_text)
        errors[text.str.strip() == ""] = "empty URL"
        errors[text.str.len() > MAX_URL_CHARS] = f"URL longer than {MAX_URL_CHARS} characters"
        return errors
    values = frame[inputs].apply(pd.to_numeric, errors="coerce")
    bad = values.isna().any(axis=1)
    errors[bad] = "missing or non-numeric feature values"
    return errors

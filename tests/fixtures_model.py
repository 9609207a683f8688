"""A real detector for tests that need one, in a folder laid out like the pipeline's ``models/``, and a real
server running it (`running_server`).

By default a small model is trained in seconds on a sample of the real upstream URLs (the offline mirror), with
the package's functions and the manifest that stages/train.py writes, once per test process. That works on a
fresh clone (no ``models/`` unless the pipeline ran) and always matches the featurizer code under test, which a
``models/`` folder from an earlier `dvc repro` need not. To run the tests against the pipeline's model instead,
set CYBERSENTINEL_TEST_MODEL_DIR=models (the folder is copied and verified first).

Use it in a test module with ``from fixtures_model import model_dir  # noqa: F401`` (or from conftest.py).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import yaml
from sklearn.pipeline import Pipeline

from cybersentinel.core.config import dataset_sources
from cybersentinel.core.files import sha256_file, write_json
from cybersentinel.data.prepare import assign_groups, deduplicate
from cybersentinel.features.featurizer import build_featurizer
from cybersentinel.ingest.files import MIRROR_ENV, read_source
from cybersentinel.intel.feeds import MIRROR_ENV as FEEDS_MIRROR_ENV
from cybersentinel.intel.popular import read_popular_sites
from cybersentinel.model.compiled import write_compiled
from cybersentinel.model.drift import write_reference
from cybersentinel.model.estimators import (
    build_estimator,
    calibrate_grouped,
    choose_threshold,
    load_detector,
    save_model,
)
from cybersentinel.scoring.detector import Detector

REPO = Path(__file__).resolve().parents[1]
ROWS_PER_CLASS = 2000
FEATURIZER = {"ngram_range": [3, 5], "n_features": 2**18, "C": 1.0, "cv": 3}
MODEL = {"name": "lightgbm", "params": {"n_estimators": 150, "learning_rate": 0.1, "num_leaves": 31}}
CALIBRATION_FOLDS = 3
POLICY = yaml.safe_load((REPO / "conf" / "config.yaml").read_text())["policy"]  # the served rules, as train records

MODEL_DIR_ENV = "CYBERSENTINEL_TEST_MODEL_DIR"

_trained: dict[str, Path] = {}  # one model per process, however many modules import the fixture


def mirror_dir() -> Path:
    path = Path(os.environ.get(MIRROR_ENV) or REPO.parent / "shared" / "data" / "upstream")
    if not (path / "data_phishing_37175.json").is_file():
        pytest.skip(f"no upstream mirror: set {MIRROR_ENV} to the folder with the upstream files")
    return path


def labelled_sample(mirror: Path, rows_per_class: int, seed: int = 0) -> tuple:
    """``rows_per_class`` URLs of each class of the Ebbu2017 collection (deduplicated), their split groups and the
    dataset's config."""
    source = yaml.safe_load((REPO / "conf" / "collection" / "ebbu2017.yaml").read_text())
    dataset = {"name": "ebbu2017", "kind": "url", "group_by": "registered_domain", "sources": [source]}
    table, _ = deduplicate(read_source(dataset_sources(dataset)[0], str(mirror)), dataset)
    sample = table.groupby("label").sample(n=rows_per_class, random_state=seed).reset_index(drop=True)
    return sample, assign_groups(sample, dataset).to_numpy(), dataset


def popular_sites(mirror: Path) -> list[str]:
    """The pinned popularity list's registered domains (the feeds folder beside the upstream mirror, or
    $CYBERSENTINEL_FEEDS_MIRROR), as stage featurize gives them to the featurizer."""
    folder = Path(os.environ.get(FEEDS_MIRROR_ENV) or mirror.parent / "feeds")
    if not (folder / "tranco_top100k.csv").is_file():
        pytest.skip(f"no feeds mirror: set {FEEDS_MIRROR_ENV} to the folder with tranco_top100k.csv")
    return list(read_popular_sites(folder / "tranco_top100k.csv", 100_000))


def train_small_model(out: Path, mirror: Path, rows_per_class: int = ROWS_PER_CLASS, seed: int = 0) -> Path:
    """Train and save a small URL detector on a sample of the Ebbu2017 URLs the way stages/featurize.py and
    stages/train.py do (featurizer fitted out-of-fold, classifiers calibrated on grouped folds, threshold from
    the held-out calibrated scores), without the hyperparameter search; return ``out``."""
    sample, groups, dataset = labelled_sample(mirror, rows_per_class, seed)
    y = sample["label"].to_numpy()

    featurizer = build_featurizer(dataset, FEATURIZER, [])
    x = featurizer.fit_transform(sample[["url"]], y, popular_sites=popular_sites(mirror))
    calibrated, held_out = calibrate_grouped(build_estimator(MODEL, seed), x, y, groups, folds=CALIBRATION_FOLDS,
                                             method="isotonic", ensemble=False, n_jobs=1, seed=seed)
    threshold = choose_threshold(y, held_out, "accuracy")
    model = Pipeline([("features", featurizer), ("classifier", calibrated)])

    out.mkdir(parents=True, exist_ok=True)
    sha256 = save_model(model, out / "model.skops")
    data_file = mirror / dataset_sources(dataset)[0]["files"][1]["name"]
    compiled = write_compiled(model, out)
    reference = write_reference(out, x, list(featurizer.get_feature_names_out()), held_out, seed=seed)
    write_json(out / "model.json", {
        "name": "cybersentinel-url-detector-test", "file": "model.skops", "sha256": sha256,
        "dataset": dataset["name"], "kind": "url", "inputs": ["url"],
        "features": list(featurizer.get_feature_names_out()), "model": MODEL["name"], "best_params": {},
        "policy": {**POLICY, "threshold": round(threshold, 6)},
        "validation": {"accuracy": round(float(np.mean((held_out >= threshold) == y)), 5), "rows": int(len(y))},
        "train_data_sha256": sha256_file(data_file), **({"compiled": compiled} if compiled else {}),
        "reference": reference,
    })
    return out


def verified_copy(source: Path, out: Path) -> Path:
    """A copy of a model folder (a concurrent `dvc repro` cannot remove it mid-test), checked to load."""
    shutil.copytree(source, out)
    Detector.from_dir(out)  # raises on a missing file or a hash mismatch
    load_detector(out)
    return out


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with model.json + model.skops (see the module docstring for which model)."""
    if "dir" not in _trained:
        chosen = os.environ.get(MODEL_DIR_ENV)
        _trained["dir"] = (verified_copy(REPO / chosen, tmp_path_factory.mktemp("chosen-model") / "models")
                           if chosen else train_small_model(tmp_path_factory.mktemp("small-model"), mirror_dir()))
    return _trained["dir"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_server(model_dir: Path, *args: str, env: dict[str, str] | None = None,
                   timeout: float = 180.0) -> Iterator[str]:
    """`cybersentinel serve` on a free port of 127.0.0.1 in a subprocess; yields its base URL once /healthz
    answers, and stops it afterwards. The server's output goes to a log file shown if it fails to start."""
    port = free_port()
    command = [sys.executable, "-m", "cybersentinel", "serve", "--host", "127.0.0.1", "--port", str(port),
               "--model-dir", str(model_dir), "--log-level", "warning", *args]
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, **(env or {})})
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"server did not start (exit code {process.poll()}):\n{log.read()[-3000:]}")
                try:
                    with urllib.request.urlopen(f"{base}/healthz", timeout=2):  # noqa: S310 (our own server)
                        break
                except (urllib.error.URLError, ConnectionError, TimeoutError):
                    time.sleep(0.2)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

"""`train.engine: dask` end to end: `stages/featurize.py` and `stages/train.py` on a small sample of the prepared
data, with `train.scheduler` pointing at the test LocalCluster, write a model with a compiled scorer that
`Detector.from_dir` loads, and the same feature tables, byte for byte, as featurizing with `train.engine: local`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from fixtures_dask import dask_client  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
PREPARED = REPO / "data" / "prepared.parquet"
FEATURES = ("train.parquet", "test.parquet", "featurizer.skops", "featurizer.json")


def run(stage: list[str], cwd: Path, params: dict) -> str:
    (cwd / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{cwd / 'mlflow.db'}"}
    result = subprocess.run([sys.executable, str(REPO / "stages" / stage[0]), *stage[1:]], cwd=cwd, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout


def featurize(cwd: Path, prepared: Path, params: dict) -> str:
    cwd.mkdir()
    return run(["featurize.py", "--prepared", str(prepared), "--intel", str(REPO / "data" / "intel"), "--words",
                str(REPO / "data" / "words.txt"), "--out", "features", "--report", "split.json"], cwd, params)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_featurize_and_train_on_dask_match_local_features(dask_client, tmp_path: Path) -> None:  # noqa: F811
    for needed in (PREPARED, REPO / "data" / "intel", REPO / "data" / "software.txt",
                   REPO / "data" / "resolvers.txt"):
        if not needed.exists():
            pytest.skip(f"no {needed.relative_to(REPO)}: `dvc checkout` (or `dvc pull`) first")
    table = pd.read_parquet(PREPARED).sample(frac=1.0, random_state=0).groupby(["split", "label"]).head(400)
    prepared = tmp_path / "prepared.parquet"
    table.reset_index(drop=True).to_parquet(prepared, index=False)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["search"].update(n_iter=2, cv_folds=2, n_jobs=1)
    params["featurizer"].update(cv=3, n_features=2**18)
    params["model"]["params"]["n_estimators"] = 20
    params["calibration"]["folds"] = 2
    params["train"].update(engine="local", scheduler=None)

    featurize(tmp_path / "local", prepared, params)
    params["train"].update(engine="dask", scheduler=dask_client.scheduler.address, partitions=3)
    out = featurize(tmp_path / "dask", prepared, params)
    assert "featurizing" in out and dask_client.scheduler.address in out  # the test split went to the cluster
    for name in FEATURES:
        local, dask = (tmp_path / side / "features" / name for side in ("local", "dask"))
        assert dask.read_bytes() == local.read_bytes(), name

    out = run(["train.py", "--features", "features", "--intel", str(REPO / "data" / "intel"),
               "--software", str(REPO / "data" / "software.txt"),
               "--resolvers", str(REPO / "data" / "resolvers.txt"), "--out", "models"], tmp_path / "dask", params)
    assert f"fitting {params['model']['name']}" in out
    models = tmp_path / "dask" / "models"
    manifest = yaml.safe_load((models / "model.json").read_text())  # JSON is YAML
    assert manifest["compiled"]["file"] and (models / manifest["compiled"]["file"]).is_file()

    from cybersentinel.scoring.detector import Detector

    detector = Detector.from_dir(models)
    scores = detector.score_urls(["https://www.example.com/", "http://paypa1-login.example.top/verify"])
    assert len(scores) == 2

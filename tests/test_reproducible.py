"""The numbers do not depend on the CPU: featurize and train on a small sample of the prepared data, in
subprocesses that see different CPUs (numba's code generation for the host vs a generic x86-64, OpenBLAS's
kernels for other core types, AVX2 and AVX-512, numpy's AVX2 loops on an AVX-512 host) and thread counts,
write byte-identical features and models. Before the featurizer's logistic regressions ran on one BLAS
thread, 1 vs 2 threads changed the test features, the featurizer and the model; while they ran in liblinear,
OpenBLAS's AVX-512 kernels (SkylakeX) did."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PREPARED = REPO / "data" / "prepared.parquet"
OUTPUTS = ["features/train.parquet", "features/test.parquet", "features/featurizer.skops", "models/model.skops",
           "models/scorer.npz"]
CPUS = {  # what differs between two machines of the same kind: code generation, BLAS kernels, thread counts
    "host": {},
    "generic-cpu": {"NUMBA_CPU_NAME": "generic", "NUMBA_CPU_FEATURES": ""},
    "haswell-blas-1-thread": {"OPENBLAS_CORETYPE": "Haswell", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                              "NUMBA_NUM_THREADS": "1"},
    "zen-blas-4-threads": {"OPENBLAS_CORETYPE": "Zen", "OMP_NUM_THREADS": "4", "OPENBLAS_NUM_THREADS": "4"},
}
CPUINFO = Path("/proc/cpuinfo")
if CPUINFO.is_file() and " avx512f" in CPUINFO.read_text():  # the kernels need the instructions to run
    CPUS["skylakex-blas"] = {"OPENBLAS_CORETYPE": "SkylakeX"}  # OpenBLAS's AVX-512 kernels (Intel machines)
    CPUS["avx2-numpy"] = {"NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR"}  # numpy's AVX2 loops


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a small stratified sample of data/prepared.parquet and cheap parameters."""
    if not PREPARED.is_file():
        pytest.skip("no data/prepared.parquet: `dvc pull prepare` or `dvc repro prepare` first")
    folder = tmp_path_factory.mktemp("cpu-sample")
    table = pd.read_parquet(PREPARED)
    table = table.sample(frac=1.0, random_state=0).groupby(["split", "label"]).head(1500)
    table.reset_index(drop=True).to_parquet(folder / "prepared.parquet", index=False)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["search"].update(n_iter=2, cv_folds=2)
    params["featurizer"].update(cv=3, n_features=2**18)
    params["model"]["params"]["n_estimators"] = 40
    params["calibration"]["folds"] = 3
    (folder / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return folder


def run_stages(sample: Path, out: Path, env: dict[str, str]) -> dict[str, str]:
    out.mkdir()
    shutil.copy(sample / "params.yaml", out / "params.yaml")
    # numba keys its cache by CPU name and features, so the package's own cache (warmed by the rest of the suite
    # for the host) holds each variant's code apart: only the generic CPU's is compiled here
    environment = {**os.environ, **env,
                   "MLFLOW_TRACKING_URI": f"sqlite:///{out / 'mlflow.db'}"}
    for command in (["stages/featurize.py", "--prepared", str(sample / "prepared.parquet"), "--intel",
                     str(REPO / "data" / "intel"), "--words", str(REPO / "data" / "words.txt"), "--out", "features",
                     "--report", "split.json"],
                    ["stages/train.py", "--features", "features", "--intel", str(REPO / "data" / "intel"),
                     "--software", str(REPO / "data" / "software.txt"),
                     "--resolvers", str(REPO / "data" / "resolvers.txt"), "--out", "models"]):
        result = subprocess.run([sys.executable, str(REPO / command[0]), *command[1:]], cwd=out, env=environment,
                                capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return {name: hashlib.sha256((out / name).read_bytes()).hexdigest() for name in OUTPUTS}


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_features_and_model_are_the_same_on_every_cpu(sample: Path, tmp_path: Path) -> None:
    # two variants at a time (most of a run is one core's numba compilation and fitting); the generic CPU compiles
    # its own cache entries, the others find the host's ready
    with ThreadPoolExecutor(max_workers=2) as pool:
        runs = {name: pool.submit(run_stages, sample, tmp_path / name, env) for name, env in CPUS.items()}
        hashes = {name: run.result() for name, run in runs.items()}
    differing = {name: [f for f in OUTPUTS if h[f] != hashes["host"][f]] for name, h in hashes.items()}
    assert not any(differing.values()), differing

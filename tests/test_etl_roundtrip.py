"""End to end through a real PostgreSQL server: the shared datasets go through the pipeline's stages from
files, are loaded with `etl load`, come back through the `postgres` source, and validate to the same table;
and DVC reruns ingest only when the database really changed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import psycopg2
import pytest
import yaml

from cybersentinel.ingest.files import MIRROR_ENV
from cybersentinel.mlops.params import compose_params
from cybersentinel.ops.etl import load_postgres, migrate_postgres, prepare_labelled_urls

pytest_plugins = ["fixtures_db"]

REPO = Path(__file__).resolve().parents[1]


def mirror() -> Path:
    path = Path(os.environ.get(MIRROR_ENV) or REPO.parent / "shared" / "data" / "upstream")
    if not (path / "dataset_phishing.csv").is_file():
        pytest.skip(f"no upstream mirror: set {MIRROR_ENV}")
    return path


def stage_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env[MIRROR_ENV] = str(mirror())
    env["MLFLOW_TRACKING_URI"] = "http://127.0.0.1:9"  # unreachable: the stages warn and skip tracking
    return env


def run(cwd: Path, *command: str) -> str:
    result = subprocess.run(command, cwd=cwd, env=stage_env(), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{command}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


def pipeline_front(workdir: Path, source: str) -> pd.DataFrame:
    """params for `source` (the Ebbu2017 collection: 73,575 rows), then the snapshot, ingest and validate stages
    as dvc.yaml runs them."""
    workdir.mkdir()
    (workdir / "params.yaml").write_text(compose_params([f"source={source}", "dataset=ebbu2017"], REPO / "conf"))
    python = sys.executable
    run(workdir, python, str(REPO / "stages/snapshot.py"), "--out", "data/snapshot.json")
    run(workdir, python, str(REPO / "stages/ingest.py"), "--snapshot", "data/snapshot.json", "--out", "data/raw")
    run(workdir, python, str(REPO / "stages/validate.py"), "--raw", "data/raw", "--out", "data/validated.parquet",
        "--report", "reports/validation.json")
    return pd.read_parquet(workdir / "data/validated.parquet")


@pytest.mark.slow
def test_shared_datasets_round_trip_through_postgres_to_the_same_validated_table(pg_dsn, tmp_path):
    from_files = pipeline_front(tmp_path / "files", "files")
    migrate_postgres(pg_dsn)
    counts = load_postgres(pg_dsn, [prepare_labelled_urls(from_files)])
    assert vars(counts["labelled_urls"]) == {"inserted": len(from_files), "updated": 0, "unchanged": 0, "rejected": 0,
                                               "deleted": 0}

    from_db = pipeline_front(tmp_path / "postgres", "postgres")
    # the same rows, values, order and columns; only the provenance id differs, by design: file checksums
    # for files, the database snapshot's fingerprint for postgres
    assert list(from_db.columns) == list(from_files.columns)
    pd.testing.assert_frame_equal(from_db.drop(columns="snapshot"), from_files.drop(columns="snapshot"),
                                  check_dtype=False)
    changed_dtypes = {c for c in from_files.columns if from_db[c].dtype != from_files[c].dtype}
    assert all(pd.api.types.is_string_dtype(from_db[c]) for c in changed_dtypes), changed_dtypes  # str vs string
    fingerprints = json.loads((tmp_path / "postgres/data/snapshot.json").read_text())["sources"]
    for source, part in from_db.groupby("source"):
        assert set(part["snapshot"]) == {fingerprints[source]["snapshot"]}
    reports = [json.loads((tmp_path / kind / "reports/validation.json").read_text()) for kind in ("files", "postgres")]
    assert reports[0] == reports[1]


def dvc_repo(root: Path, dsn: str) -> Path:
    """A git + DVC repository with this project's snapshot and ingest stages, reading from PostgreSQL."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for rel in {d for k in ("snapshot", "ingest") for d in stages[k]["deps"] if d.startswith(("stages/", "src/"))}:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if (REPO / rel).is_dir() else shutil.copy)(REPO / rel, root / rel)
    shutil.copytree(REPO / "conf/dataset", root / "conf/dataset")
    (root / "dvc.yaml").write_text(yaml.safe_dump({"stages": {k: stages[k] for k in ("snapshot", "ingest")}}))
    params = yaml.safe_load(compose_params(["source=postgres"], REPO / "conf"))
    params["dataset"] = {"name": "tiny", "kind": "url", "sources": [{"name": "alpha"}, {"name": "beta"}]}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    git = ["git", "-c", "user.email=test@cybersentinel.invalid", "-c", "user.name=test"]
    run(root, "git", "init", "-q", "-b", "main")
    run(root, sys.executable, "-m", "dvc", "init", "-q")
    run(root, *git, "add", "-A")
    run(root, *git, "commit", "-qm", "init")
    return root


def tiny_table(n: int) -> pd.DataFrame:
    return pd.DataFrame({"url": [f"http://u{i}.example/a" for i in range(n)], "label": [i % 2 for i in range(n)],
                         "source": ["alpha" if i % 3 else "beta" for i in range(n)], "snapshot": "0123456789abcdef"})


@pytest.mark.slow
def test_dvc_reruns_ingest_only_when_the_database_changed(pg_dsn, tmp_path):
    migrate_postgres(pg_dsn)
    load_postgres(pg_dsn, [prepare_labelled_urls(tiny_table(30))])
    repo = dvc_repo(tmp_path / "repo", pg_dsn)
    dvc = [sys.executable, "-m", "dvc"]

    out = run(repo, *dvc, "repro")
    assert "Running stage 'snapshot'" in out and "Running stage 'ingest'" in out
    lock = (repo / "dvc.lock").read_bytes()
    out = run(repo, *dvc, "repro")
    assert "Running stage 'snapshot'" in out and "Running stage 'ingest'" not in out  # same data: skipped
    assert (repo / "dvc.lock").read_bytes() == lock
    run(repo, *dvc, "repro", "--force")
    assert (repo / "dvc.lock").read_bytes() == lock  # byte for byte: no timestamps in outputs

    changed = tiny_table(30)
    changed.loc[4, "label"] = 1 - changed.loc[4, "label"]
    load_postgres(pg_dsn, [prepare_labelled_urls(changed)])
    out = run(repo, *dvc, "repro")
    assert "Running stage 'ingest'" in out
    alpha = pd.read_parquet(repo / "data/raw/alpha.parquet")
    assert alpha["label"].tolist() == changed[changed["source"] == "alpha"]["label"].tolist()

    conn = psycopg2.connect(pg_dsn)  # an analyst deletes a row: the count and the fingerprint change
    with conn, conn.cursor() as cur:
        cur.execute("DELETE FROM labelled_urls WHERE source = 'beta' AND source_row = 0")
    conn.close()
    assert "Running stage 'ingest'" in run(repo, *dvc, "repro")
    assert len(pd.read_parquet(repo / "data/raw/beta.parquet")) == 9

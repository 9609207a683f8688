"""A temporary copy of this repository in which `dvc repro` has run on a small sample of the real
upstream data (subsampled from the mirror, checksums updated), for end-to-end tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from cybersentinel.core.config import dataset_sources
from cybersentinel.core.files import sha256_file
from cybersentinel.ingest.files import COLLECTIONS_ENV, MIRROR_ENV

REPO = Path(__file__).resolve().parents[1]
SAMPLE_ROWS = 1500  # per upstream file and per collection
FEEDS_ENV = "CYBERSENTINEL_FEEDS_MIRROR"


def mirror_dir() -> Path:
    path = os.environ.get(MIRROR_ENV) or REPO.parent / "shared" / "data" / "upstream"
    if not Path(path, "dataset_phishing.csv").is_file():
        pytest.skip(f"no upstream mirror: set {MIRROR_ENV} to a folder with the upstream files")
    return Path(path)


def collections_dir() -> Path:
    path = Path(os.environ.get(COLLECTIONS_ENV) or REPO.parent / "shared" / "data" / "collections")
    if not (path / "reddit_links_2013.csv.gz").is_file():
        pytest.skip(f"no collections: set {COLLECTIONS_ENV} to the folder with the curated collections")
    return path


def feeds_dir() -> Path:
    path = Path(os.environ.get(FEEDS_ENV) or REPO.parent / "shared" / "data" / "feeds")
    if not (path / "tranco_top100k.csv").is_file():
        pytest.skip(f"no feeds mirror: set {FEEDS_ENV}")
    return path


def pipeline_env(repo: Path, mirror: Path) -> dict[str, str]:
    """Environment for `dvc repro` in ``repo``: this interpreter first on PATH, its own MLflow store; the sample
    mirror holds the upstream files, the collections in ``collections/`` and the feeds in ``feeds/``."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env[MIRROR_ENV] = str(mirror)
    env[COLLECTIONS_ENV] = str(mirror / "collections")
    env[FEEDS_ENV] = str(feeds_dir())
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{repo / 'mlflow.db'}"
    env.pop("DVC_NO_ANALYTICS", None)
    env["DVC_NO_ANALYTICS"] = "1"
    return env


def make_sample_mirror(source: Path, target: Path, rows: int = SAMPLE_ROWS) -> None:
    """Every k-th entry of each real upstream file, in the same format and file name."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("data_legitimate_36400.json", "data_phishing_37175.json"):
        items = json.loads((source / name).read_text())
        (target / name).write_text(json.dumps(items[:: max(1, len(items) // rows)][:rows]))
    csv = pd.read_csv(source / "dataset_phishing.csv")
    csv.iloc[:: max(1, len(csv) // rows)].head(rows).to_csv(target / "dataset_phishing.csv", index=False)
    arff = (source / "Training Dataset.arff").read_text().splitlines()
    start = arff.index("@data") + 1
    (target / "Training Dataset.arff").write_text("\n".join(arff[:start] + arff[start::4][:rows]) + "\n")
    (target / "collections").mkdir(exist_ok=True)
    for path in collections_dir().glob("*.csv.gz"):  # every k-th row, so both classes of a mixed one stay
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
        table.iloc[:: max(1, len(table) // rows)].head(rows).to_csv(target / "collections" / path.name, index=False)


def copy_worktree(target: Path) -> None:
    """The files git knows (tracked and untracked-but-not-ignored) as they are now, committed anew."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                            capture_output=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target / rel)
    share_numba_cache(REPO, target)
    git = ["git", "-c", "user.email=test@cybersentinel.invalid", "-c", "user.name=test"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=target, check=True)
    subprocess.run([*git, "add", "-A"], cwd=target, check=True)
    subprocess.run([*git, "commit", "-qm", "sample"], cwd=target, check=True)


def share_numba_cache(source: Path, target: Path) -> None:
    """numba's compiled kernels of ``source``'s package given to ``target``'s byte-identical copy of it, so that
    each copy of the repository the tests make does not compile them again (~25 s of one core each time: most of
    a cold `featurize` on the sample). numba finds a kernel in the ``__pycache__`` beside its module and trusts it
    while the module's modification time and size are the ones it was compiled from, so each module identical to
    the source's gets the source's time; a module that differs keeps its own and is compiled as usual."""
    for module in sorted({index.parent.parent / f"{index.name.split('.')[0]}.py"
                          for index in (source / "src").glob("**/__pycache__/*.nbi")}):
        copy = target / module.relative_to(source)
        if not copy.is_file() or copy.read_bytes() != module.read_bytes():
            continue
        (copy.parent / "__pycache__").mkdir(exist_ok=True)
        for cached in module.parent.glob(f"__pycache__/{module.stem}.*.nb[ic]"):
            shutil.copy2(cached, copy.parent / "__pycache__" / cached.name)
        stat = module.stat()
        os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def shrink_params(repo: Path, mirror: Path) -> None:
    """Point the dataset checksums at the sample files and make the search cheap."""
    path = repo / "params.yaml"
    params = yaml.safe_load(path.read_text())
    for source in dataset_sources(params["dataset"]):
        for spec in source.get("files", []):  # the feedback source has none
            spec["sha256"] = sha256_file(mirror / ("collections" if spec.get("collection") else "") / spec["name"])
    if isinstance(params["dataset"]["sources"], dict):  # write the new checksums back into the mapping
        params["dataset"]["sources"] = {s["name"]: s for s in dataset_sources(params["dataset"])}
    params["search"].update(n_iter=2, cv_folds=2)
    params["sample"].update(per_source_class=1000)
    params["featurizer"].update(cv=3, n_features=2**18)
    params["model"]["params"]["n_estimators"] = 100
    # fewer calibration folds and importance repeats: train, evaluate and generalise (10 calibrated fits) run
    # about 10 s faster per repro, and the suite repeats them about five times (retrain, forced repro, sweep)
    params["calibration"]["folds"] = 3
    params["evaluate"]["importance_repeats"] = 1
    params["generalise"]["resamples"] = 20  # the intervals' bootstrap: 35 s -> 29 s of the sample's generalise
    # English words alone (one package of 73,000 words): the seven languages' 1.7 million make every featurizer fit
    # build 3.6 million keys (about 5 s) and each model 57 MB bigger, which the retraining and sweep tests push to S3
    params["software"]["words"] = params["software"]["words"][:1]
    path.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="session")
def sample_mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("mirror")
    make_sample_mirror(mirror_dir(), target)
    return target


@pytest.fixture(scope="session")
def sample_repo(tmp_path_factory: pytest.TempPathFactory, sample_mirror: Path) -> Path:
    """A committed temporary repository where `dvc repro` has produced data, model and reports."""
    repo = tmp_path_factory.mktemp("repo")
    copy_worktree(repo)
    shrink_params(repo, sample_mirror)
    git = ["git", "-c", "user.email=test@cybersentinel.invalid", "-c", "user.name=test"]
    subprocess.run([*git, "commit", "-qam", "sample params"], cwd=repo, check=True)
    result = subprocess.run(["dvc", "repro"], cwd=repo, env=pipeline_env(repo, sample_mirror),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    snapshot_feeds(repo)
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "repro"], cwd=repo, check=True)
    return repo


def snapshot_feeds(repo: Path) -> None:
    """`make feeds` from the offline feeds mirror (refresh, then `dvc add data/feeds`), so the sample repository
    versions its own feed snapshot; without a mirror it versions none."""
    mirror = Path(os.environ.get("CYBERSENTINEL_FEEDS_MIRROR") or REPO.parent / "shared" / "data" / "feeds")
    if not (mirror / "firehol_level1.txt").is_file():
        subprocess.run(["git", "rm", "-q", "data/feeds.dvc"], cwd=repo, check=True)
        return
    cli = Path(sys.executable).parent / "cybersentinel"
    for command in ([str(cli), "feeds", "refresh", "--out", "data/feeds", "--mirror", str(mirror)],
                    [sys.executable, "-m", "dvc", "add", "-q", "data/feeds"]):
        result = subprocess.run(command, cwd=repo, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

"""Hydra sweeps as DVC experiments: every documented sweep composes for every combination (so a queue never
fails halfway), a tiny real sweep runs through `dvc queue`, and experiments travel with `dvc exp push/pull`
through a bare git repository and the local S3 server."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from fixtures_pipeline import REPO, pipeline_env
from hydra.errors import ConfigCompositionException
from test_remote import CLI, clone_with_cache, remote_settings, run

from cybersentinel.core.config import dataset_sources
from cybersentinel.core.files import sha256_file
from cybersentinel.mlops.params import compose_params
from cybersentinel.mlops.remote import free_port, write_local_config
from cybersentinel.model.estimators import build_estimator
from cybersentinel.tracking.registry import client_for, load_version

DVC = [sys.executable, "-m", "dvc"]
# The sweeps the README documents (`make sweep` runs the first).
SWEEPS = [
    ["model=logreg,random_forest,xgboost,lightgbm"],
    ["model=random_forest,xgboost,lightgbm", "model.params.n_estimators=range(100,500,100)"],
    ["model=logreg", "model.search.C=[0.1],[1.0]"],
    ["model=xgboost", "model.search.max_depth=[4],[6,8]"],
]


def expand(overrides: list[str]) -> list[list[str]]:
    from dvc.utils.hydra import get_hydra_sweeps

    return [combo["params.yaml"] for combo in get_hydra_sweeps({"params.yaml": overrides})]


def test_model_files_keep_every_sweepable_key_under_params_or_search() -> None:
    for path in sorted((REPO / "conf" / "model").glob("*.yaml")):
        config = yaml.safe_load(path.read_text())
        assert set(config) == {"name", "params", "search"}, path.name
        assert config["name"] == path.stem
        assert not set(config["params"]) & set(config["search"]), path.name


@pytest.mark.parametrize("sweep", SWEEPS, ids=lambda s: " ".join(s))
def test_every_combination_of_the_documented_sweeps_composes_and_builds(sweep: list[str]) -> None:
    combos = expand(sweep)
    assert len(combos) > 1
    for overrides in combos:
        params = yaml.safe_load(compose_params(overrides, REPO / "conf"))
        build_estimator(params["model"], seed=params["seed"])  # accepts every fixed argument
        assert params["dataset"]["name"] == "urls"


def test_a_key_that_one_chosen_model_lacks_fails_at_queue_time_not_halfway_through_training() -> None:
    [logreg, *_] = expand(["model=logreg,xgboost", "model.params.n_estimators=100,200"])
    with pytest.raises(ConfigCompositionException):
        compose_params(logreg, REPO / "conf")


def conform_conf_to_params(repo: Path) -> None:
    """With hydra enabled `dvc exp run` recomposes params.yaml from conf/: give conf/ the sample's checksums and
    trimmed search so experiments run on the small sample."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for source in dataset_sources(params["dataset"]):  # one file per source in conf/collection/
        if "files" not in source:  # the feedback store: no files to pin
            continue
        collection_file = repo / "conf" / "collection" / f"{source['name']}.yaml"
        collection = yaml.safe_load(collection_file.read_text())
        collection["files"] = source["files"]
        collection_file.write_text(yaml.safe_dump(collection, sort_keys=False))
    config_file = repo / "conf" / "config.yaml"
    config = yaml.safe_load(config_file.read_text())
    for section in ("search", "featurizer", "sample", "calibration", "evaluate", "generalise", "software"):
        config[section] = params[section]
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    composed = yaml.safe_load(compose_params([f"model={params['model']['name']}"], repo / "conf"))
    composed["model"] = params["model"]
    assert composed == params, "conf/ no longer composes to the sample's params.yaml"


def wait_for_queue(repo: Path, env: dict[str, str], timeout: float = 600) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = run([*DVC, "queue", "status"], cwd=repo, env=env).stdout
        if not any(state in status for state in ("Queued", "Running")):
            return status
        time.sleep(5)  # each `dvc queue status` costs about 1 s of CPU, taken from the two experiments running
    raise AssertionError(f"queue still busy after {timeout}s:\n{status}")


def experiments(repo: Path, env: dict[str, str]) -> dict[str, dict]:
    """name -> {params, metrics} of the experiments on the current commit."""
    shown = json.loads(run([*DVC, "exp", "show", "--json"], cwd=repo, env=env).stdout)
    found = {}
    for baseline in shown:
        for exp in baseline.get("experiments") or []:
            data = exp["revs"][0]["data"]
            found[exp["name"]] = {"params": data["params"]["params.yaml"]["data"],
                                  "metrics": data["metrics"]["reports/metrics.json"]["data"]}
    return found


@pytest.mark.slow
def test_queued_sweep_runs_and_experiments_travel_through_git_and_s3(sample_repo, sample_mirror, tmp_path) -> None:
    work = clone_with_cache(sample_repo, tmp_path / "work", share_cache=False)  # no run-cache: training runs
    env = pipeline_env(work, sample_mirror)
    conform_conf_to_params(work)
    run([*DVC, "repro"], cwd=work, env=env)  # conf/ is a dependency of ingest: same data, new lock entry
    run(["git", "-c", "user.email=t@cybersentinel.invalid", "-c", "user.name=t", "commit", "-qam", "sample conf"],
        cwd=work, env=env)
    # Queued runs execute in temporary copies: tracking must use an absolute store, experiment made from here.
    subprocess.run([sys.executable, "-c", "from cybersentinel.tracking.registry import ensure_experiment as e; "
                    "e('cybersentinel')"], cwd=work, env=env, check=True)

    # Up to `evaluate` (its metrics are what the experiments are compared on): the held-out collections' stage,
    # the slowest, adds nothing to what this test checks (the whole test: 113 s -> 87 s here).
    queued = run([*DVC, "exp", "run", "--queue", "evaluate", "-S", "model=logreg", "-S", "model.search.C=[0.1],[1.0]",
                  "-S", "evaluate.importance_repeats=1"], cwd=work, env=env).stdout  # keep the tiny sweep cheap
    assert queued.count("Queued experiment") == 2
    run([*DVC, "queue", "start", "-j", "2"], cwd=work, env=env)
    status = wait_for_queue(work, env)
    assert status.count("Success") == 2, status

    found = experiments(work, env)
    assert sorted(e["params"]["model"]["search"]["C"][0] for e in found.values()) == [0.1, 1.0]
    for exp in found.values():
        assert exp["params"]["model"]["name"] == "logreg"
        assert 0.5 < exp["metrics"]["test"]["roc_auc"] <= 1.0

    # Both runs registered a version in the repository's store, loadable (hash-verified) after the temp dirs went.
    uri = env["MLFLOW_TRACKING_URI"]
    logreg_versions = [v for v in client_for(uri).search_model_versions("name = 'cybersentinel-url-detector'")
                       if v.tags.get("model") == "logreg"]
    assert len(logreg_versions) == 2
    for version in logreg_versions:
        _, manifest = load_version(uri, "cybersentinel-url-detector", version.version)
        assert manifest["model"] == "logreg"

    # Share one experiment: git refs to a bare repository, outputs to the local S3 server.
    name = min(found, key=lambda n: found[n]["params"]["model"]["search"]["C"][0])
    share = tmp_path / "share.git"
    run(["git", "init", "-q", "--bare", "-b", "main", str(share)], cwd=tmp_path)
    run(["git", "remote", "add", "share", str(share)], cwd=work)
    run(["git", "push", "-q", "share", "HEAD:main"], cwd=work)
    run([CLI, "remote", "up", "--port", str(free_port())], cwd=work, env=env)
    try:
        run([*DVC, "exp", "push", "share", name], cwd=work, env=env)
        fresh = tmp_path / "fresh"
        run(["git", "clone", "-q", str(share), str(fresh)], cwd=tmp_path)
        write_local_config(fresh, "storage", remote_settings(work))
        assert not experiments(fresh, env)
        run([*DVC, "exp", "pull", "origin", name], cwd=fresh, env=env)
        pulled = experiments(fresh, env)
        assert list(pulled) == [name] and pulled[name]["metrics"] == found[name]["metrics"]
        run([*DVC, "exp", "apply", name], cwd=fresh, env=env)
    finally:
        run([CLI, "remote", "down"], cwd=work, env=env)
    manifest = json.loads((fresh / "models" / "model.json").read_text())
    assert manifest["model"] == "logreg" and manifest["best_params"] == {"logisticregression__C": 0.1}
    assert sha256_file(fresh / "models" / "model.skops") == manifest["sha256"]


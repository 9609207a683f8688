"""Measured: `dvc push`/`dvc pull` round trip of the data and model to the local S3 server, throughput of a queued
4-model Hydra sweep run two at a time, and the time to build the pull-request report.

    python benchmarks/storage_and_sweeps.py [--jobs 2] [--skip-sweep] [--keep]

Everything runs in a temporary repository made from this working tree (with a copy of its DVC cache objects) and a
fresh clone of it, with their own local S3 server, MLflow store and experiments: the working tree is untouched. The
default dataset and configuration are used; the baseline is first brought up to date with `dvc repro`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DVC = [sys.executable, "-m", "dvc"]
CLI = str(Path(sys.executable).parent / "cybersentinel")
SWEEP = "model=logreg,random_forest,xgboost,lightgbm"
GIT = ["git", "-c", "user.email=bench@cybersentinel.invalid", "-c", "user.name=bench"]


def run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"{' '.join(args)} failed in {cwd}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def timed(args: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    run(args, cwd, env)
    return time.perf_counter() - start


def tree_bytes(*paths: Path) -> int:
    return sum(f.stat().st_size for p in paths for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file())


def environment(repo: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{repo / 'mlflow.db'}"  # absolute: queued runs live in temp dirs
    env.setdefault("CYBERSENTINEL_DATA_MIRROR", str(REPO.parent / "shared" / "data" / "upstream"))
    env["DVC_NO_ANALYTICS"] = "1"
    return env


def baseline(tmp: Path) -> tuple[Path, dict[str, str]]:
    """This working tree's files (tracked and untracked-not-ignored, so stages match the installed package)
    committed in a new repository, with a private copy of the DVC cache objects (no run-cache: every stage the
    sweep changes really runs), reproduced and committed."""
    origin = tmp / "origin"
    env = environment(origin)
    listed = run(["git", "ls-files", "-co", "--exclude-standard", "-z"], REPO, env).split("\0")
    for rel in filter(None, listed):
        if (REPO / rel).is_file():
            (origin / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, origin / rel)
    run(["git", "init", "-q", "-b", "main"], origin, env)
    run([*GIT, "add", "-A"], origin, env)
    run([*GIT, "commit", "-qm", "benchmark baseline"], origin, env)
    shutil.copytree(REPO / ".dvc" / "cache" / "files", origin / ".dvc" / "cache" / "files")
    subprocess.run([*DVC, "checkout", "-q"], cwd=origin, env=env, capture_output=True)  # missing outs: repro makes them
    start = time.perf_counter()
    run([*DVC, "repro"], origin, env)
    print(f"baseline `dvc repro` (no-op when dvc.lock is current): {time.perf_counter() - start:.1f} s")
    run([*GIT, "add", "-A"], origin, env)
    if subprocess.run(["git", "diff", "--cached", "--quiet"], cwd=origin).returncode:
        run([*GIT, "commit", "-qm", "reproduced"], origin, env)
    return origin, env


def storage_round_trip(origin: Path, env: dict[str, str], tmp: Path) -> None:
    outs = [origin / "data", origin / "models"]
    size = tree_bytes(*outs)
    push = timed([*DVC, "push"], origin, env)
    fresh = tmp / "fresh"
    run(["git", "clone", "-q", str(origin), str(fresh)], tmp, env)
    from cybersentinel.mlops.remote import dvc_remote, write_local_config

    remote = dvc_remote(origin)  # endpoint and keys from origin's config.local (not its shared cache setting)
    write_local_config(fresh, remote.name, {"endpointurl": remote.endpoint, "access_key_id": remote.access_key_id,
                                            "secret_access_key": remote.secret_access_key})
    pull_model = timed([*DVC, "pull", "train"], fresh, env)
    pull_rest = timed([*DVC, "pull"], fresh, env)
    manifest = json.loads((fresh / "models" / "model.json").read_text())
    from cybersentinel.core.files import sha256_file

    assert sha256_file(fresh / "models" / "model.skops") == manifest["sha256"], "pulled model differs"
    model_size = tree_bytes(fresh / "models")
    print(f"data + model: {size / 1e6:.1f} MB in {sum(1 for p in outs for f in p.rglob('*') if f.is_file())} files")
    print(f"dvc push (all, empty remote):       {push:6.1f} s  {size / 1e6 / push:6.1f} MB/s")
    print(f"dvc pull train (model, fresh clone): {pull_model:6.1f} s  {model_size / 1e6:.1f} MB")
    print(f"dvc pull (the rest):                 {pull_rest:6.1f} s")
    print(f"round trip push + full pull:         {push + pull_model + pull_rest:6.1f} s")


def queued_sweep(origin: Path, env: dict[str, str], jobs: int) -> None:
    subprocess.run([sys.executable, "-c",
                    "from cybersentinel.tracking.registry import ensure_experiment; ensure_experiment()"],
                   cwd=origin, env=env, check=True, capture_output=True)
    # One search process per experiment, `jobs` experiments at once on this machine's cores; it also makes the
    # lightgbm run differ from the baseline, so all four models really train.
    queued = run([*DVC, "exp", "run", "--queue", "-S", SWEEP, "-S", "search.n_jobs=1"], origin, env)
    start = time.perf_counter()
    # The workers outlive `queue start`: no pipes, or this would wait for them.
    subprocess.run([*DVC, "queue", "start", "-j", str(jobs)], cwd=origin, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while any(state in (status := run([*DVC, "queue", "status"], origin, env)) for state in ("Queued", "Running")):
        time.sleep(5)
    wall = time.perf_counter() - start
    print(status.strip())
    shown = json.loads(run([*DVC, "exp", "show", "--json"], origin, env))
    results = []
    for exp in (exp for base in shown for exp in base.get("experiments") or []):
        rev = exp["revs"][0]
        if rev.get("error"):
            print(f"{exp['name']}: FAILED ({rev['error'].get('msg')}); `dvc queue logs {exp['name']}` says why")
            continue
        test = rev["data"]["metrics"]["reports/metrics.json"]["data"]["test"]
        results.append((test["roc_auc"], exp["name"], rev["data"]["params"]["params.yaml"]["data"]["model"]["name"],
                        test))
    print(f"sweep: {queued.count('Queued experiment')} queued, {len(results)} succeeded, -j {jobs}: {wall:.0f} s "
          f"wall, {len(results) / wall * 3600:.1f} experiments/hour, "
          f"{wall * jobs / max(len(results), 1):.0f} s per experiment per worker")
    print("| experiment | model | roc_auc | pr_auc | accuracy | brier |\n|---|---|---|---|---|---|")
    for _, name, model, test in sorted(results, reverse=True):
        print(f"| {name} | {model} | {test['roc_auc']:.5f} | {test['pr_auc']:.5f} | {test['accuracy']:.5f} | "
              f"{test['brier']:.5f} |")
    if results:
        best = max(results)[1]
        run([*DVC, "exp", "apply", best], origin, env)
        print(f"applied the best experiment, {best}, to the baseline workspace for the report")


def report_time(origin: Path, env: dict[str, str]) -> None:
    times = [timed([CLI, "report", "--base", "HEAD", "--out", "reports/tmp/pr"], origin, env) for _ in range(2)]
    text = (origin / "reports" / "tmp" / "pr" / "report.md").read_text()
    images = text.count("![")
    print(f"report (metrics + params diff, {images} plots as PNG): {min(times):.1f} s best of 2 ({times})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--skip-sweep", action="store_true", help="only the storage round trip and the report")
    parser.add_argument("--keep", action="store_true", help="keep the temporary clones")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="cybersentinel-bench-"))
    origin, env = baseline(tmp)
    port = run([sys.executable, "-c", "from cybersentinel.mlops.remote import free_port; print(free_port())"], tmp, env)
    run([CLI, "remote", "up", "--port", port.strip()], origin, env)
    try:
        storage_round_trip(origin, env, tmp)
        if not args.skip_sweep:
            queued_sweep(origin, env, args.jobs)
        report_time(origin, env)
    finally:
        run([CLI, "remote", "down"], origin, env)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"kept {tmp}")


if __name__ == "__main__":
    main()

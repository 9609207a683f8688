"""The mechanical steps of `make retrain` (`cybersentinel retrain` puts them together with the promotion decision
of `cybersentinel.tracking.promotion`): refresh the feeds only when their content changed, fingerprint the
feedback, keep the champion's files, run `dvc repro`, and either keep and push the candidate or put everything
back as it was. Nothing here writes a timestamp into a versioned file, so a run with nothing new changes nothing.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# What `dvc repro` changes in files git tracks; put back when the candidate is refused (a refreshed feed snapshot
# stays: it is served, not trained on).
TRACKED_OUTPUTS = ("dvc.lock", "reports")


class RetrainError(RuntimeError):
    """A step failed; the message names it and carries the command's last output."""


def run(command: Sequence[str], cwd: Path, what: str) -> str:
    try:
        result = subprocess.run(list(command), cwd=cwd, capture_output=True, text=True)
    except OSError as exc:  # git or dvc not installed (or not on PATH: the virtual environment not activated)
        raise RetrainError(f"{what} failed: cannot run {command[0]}: {exc.strerror or exc}") from None
    if result.returncode:
        raise RetrainError(f"{what} failed ({' '.join(command)}):\n{(result.stdout + result.stderr)[-3000:]}")
    return result.stdout


def _yaml_problem(exc: Exception) -> str:
    """A YAML error on one line: what is wrong and where (PyYAML's own message spans several lines)."""
    mark, problem = getattr(exc, "problem_mark", None), getattr(exc, "problem", None)
    if problem and mark is not None:
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split())


def _number(config: Mapping[str, Any], key: str, path: Path) -> float:
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RetrainError(f"{path}: retrain.{key} must be a number, not {value!r}")
    return float(value)


def retrain_params(path: Path, metrics: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(params, the promotion rule) of ``params.yaml``, checked before anything runs: a bad file is a one-line
    error here, not a traceback after the feeds were refreshed and the pipeline reproduced. ``metrics``: the
    metrics the promotion rule may compare on (the registry's, which this layer does not import)."""
    import yaml

    from cybersentinel.core.files import read_params

    try:
        params = read_params(path)
    except OSError as exc:
        raise RetrainError(f"cannot read {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise RetrainError(f"{path} is not valid YAML: {_yaml_problem(exc)}") from None
    if not isinstance(params, dict) or not isinstance(params.get("dataset"), dict):
        raise RetrainError(f"{path}: no `dataset:` section (params.yaml is composed from conf/)")
    config = params.get("retrain")
    if not isinstance(config, dict):
        raise RetrainError(f"{path}: no `retrain:` section (metric, min_delta, loco_tolerance): the promotion rule")
    if config.get("metric") not in metrics:
        raise RetrainError(f"{path}: retrain.metric {config.get('metric')!r} is not one of {', '.join(metrics)}")
    rule = {"metric": config["metric"], "min_delta": _number(config, "min_delta", path),
            "loco_tolerance": _number(config, "loco_tolerance", path)}
    tolerance = config.get("sanity_tolerance", 0)
    if isinstance(tolerance, bool) or not isinstance(tolerance, int) or tolerance < 0:
        raise RetrainError(f"{path}: retrain.sanity_tolerance must be a whole number, 0 or more, not {tolerance!r}")
    rule["sanity_tolerance"] = tolerance
    return params, rule


def require_clean(repo: Path) -> None:
    """Refuse to start over uncommitted changes to tracked files: a refused candidate is undone by checking
    those files out again, which must not throw anyone's work away."""
    changed = run(["git", "status", "--porcelain", "--untracked-files=no"], repo, "git status").strip()
    if changed:
        raise RetrainError(f"commit or stash these changes first (a refused candidate is undone with git checkout):\n"
                           f"{changed}")


def _feed_hashes(folder: Path) -> dict[str, str]:
    from cybersentinel.intel.feeds import FEEDS

    return {f.filename: hashlib.sha256((folder / f.filename).read_bytes()).hexdigest()
            for f in FEEDS.values() if (folder / f.filename).is_file()}


def refresh_feeds_if_changed(repo: Path, mirror: Path | None) -> str:
    """Refresh the feeds into a scratch copy; replace ``data/feeds`` and `dvc add` it only when a feed file's
    content changed (``feeds.json`` records fetch times: rewriting it alone would be a change of nothing)."""
    from cybersentinel.intel.feeds import FeedError, refresh_feeds

    feeds = repo / "data" / "feeds"
    with tempfile.TemporaryDirectory(prefix=".feeds-", dir=repo / "data") as scratch:
        fresh = Path(scratch) / "feeds"
        if feeds.is_dir():
            shutil.copytree(feeds, fresh)  # conditional GETs start from what we have
        else:
            fresh.mkdir()
        try:
            _, errors = refresh_feeds(fresh, mirror=mirror)
        except FeedError as exc:
            raise RetrainError(f"feeds refresh failed: {exc}") from None
        if errors:
            raise RetrainError(f"feeds refresh failed, the snapshot is unchanged: {errors}")
        if feeds.is_dir() and _feed_hashes(feeds) == _feed_hashes(fresh):
            return "feeds unchanged"
        if feeds.exists():
            shutil.rmtree(feeds)
        shutil.move(str(fresh), feeds)
    run(["dvc", "add", "-q", "data/feeds"], repo, "dvc add data/feeds")
    return "feeds updated (data/feeds.dvc: commit it)"


def feedback_snapshots(params: Mapping[str, Any]) -> dict[str, Any]:
    """Rows and fingerprint of every feedback source of the dataset (summed rows, joined fingerprints)."""
    from cybersentinel.core.config import dataset_sources, is_feedback
    from cybersentinel.core.retry import one_line
    from cybersentinel.ingest.base import SourceError
    from cybersentinel.ingest.feedback import feedback_snapshot

    try:
        found = {s["name"]: feedback_snapshot(s) for s in dataset_sources(params["dataset"]) if is_feedback(s)}
    except SourceError as exc:  # unreachable PostgreSQL, a malformed DSN, a damaged SQLite file
        raise RetrainError(f"cannot read the analyst feedback: {one_line(exc)}") from None
    return {"rows": sum(v["rows"] for v in found.values()),
            "snapshot": "+".join(v["snapshot"] for v in found.values()) or "-", "sources": found}


def keep_champion(repo: Path, dest: Path) -> dict[str, Any]:
    """Copies of what the comparison needs from the current (champion) outputs: the model folder, its test
    rows, its generalisation table and its wrong verdicts on the sanity sets. ``{}`` when there is no model yet."""
    import json

    models = repo / "models"
    if not (models / "model.json").is_file():
        return {}
    shutil.copytree(models, dest / "models")
    kept: dict[str, Any] = {"models": dest / "models",
                            "sha256": json.loads((models / "model.json").read_text())["sha256"],
                            "manifest_sha256": hashlib.sha256((models / "model.json").read_bytes()).hexdigest()}
    test = repo / "data" / "features" / "test.parquet"
    if test.is_file():
        kept["test"] = dest / "test.parquet"
        shutil.copyfile(test, kept["test"])
    generalisation = repo / "reports" / "generalisation.json"
    if generalisation.is_file():
        kept["generalisation"] = json.loads(generalisation.read_text())
    kept["sanity"] = sanity_counts(repo)
    return kept


def sanity_counts(repo: Path) -> dict[str, int] | None:
    """The evaluated model's wrong verdicts on the hand-written sanity sets (`reports/metrics.json`'s ``sanity``),
    None when the metrics hold none."""
    import json

    metrics = repo / "reports" / "metrics.json"
    if not metrics.is_file():
        return None
    try:
        sanity = json.loads(metrics.read_bytes()).get("sanity")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
        raise RetrainError(f"{metrics} is not a JSON object of metrics: {exc}") from None
    if sanity is None:
        return None
    if not isinstance(sanity, dict):
        raise RetrainError(f"{metrics}: `sanity` must map each count to a whole number, 0 or more; it is {sanity!r}")
    for key, value in sanity.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise RetrainError(f"{metrics}: `sanity` must map each count to a whole number, 0 or more; "
                               f"{key} is {value!r}")
    return dict(sanity)


def repro(repo: Path) -> str:
    return run(["dvc", "repro"], repo, "dvc repro")


def restore(repo: Path) -> None:
    """Put the champion back: the tracked files as committed, the DVC outputs from the cache."""
    present = [p for p in TRACKED_OUTPUTS if (repo / p).exists()]
    run(["git", "checkout", "--", *present], repo, "git checkout")
    run(["dvc", "checkout", "-q", "--force"], repo, "dvc checkout")


def push(repo: Path) -> str:
    return run(["dvc", "push"], repo, "dvc push")

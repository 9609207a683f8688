"""The MLflow model registry.

Every trained model is logged (skops, never pickle) with its signature and registered as a new version with a
description and only the tags that identify and verify it (its hashes, the training data's, the git commit);
metrics are the run's metrics (validation by train, test by ``promote``) and the source-data checksums the
run's parameters, so the registry table stays readable. Beside MLflow's own
copy, the run keeps ``detector/model.skops`` - the exact bytes DVC tracks - and ``detector/model.json``,
so a version loaded from the registry is verified against the same SHA-256 as a DVC-pulled file.

``promote`` moves the ``champion`` alias to a candidate version only if it beats the current champion on
the chosen metric, both evaluated on the same test data (identified by its SHA-256); otherwise it refuses
and says why.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cybersentinel.core.config import dataset_sources
from cybersentinel.core.redact import redact
from cybersentinel.core.retry import one_line
from cybersentinel.tracking.runs import DEFAULT_TRACKING_URI, Tracker, git_commit, reachable

if TYPE_CHECKING:  # the CLI imports this module at startup: sklearn, skops and pandas load on use
    import pandas as pd
    from sklearn.pipeline import Pipeline


DETECTOR_DIR = "detector"


CHAMPION = "champion"


DEFAULT_MODEL_NAME = "cybersentinel-url-detector"


METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "pr_auc", "tpr_at_1pct_fpr", "brier")


LOWER_IS_BETTER = frozenset({"brier"})


# What a logged model needs to load; listing them skips MLflow's requirement inference (~12 s per training,
# it imports the model in a subprocess). The package itself (custom featurizer types) is installed from the repo.
MODEL_REQUIREMENTS = ("scikit-learn", "skops", "numpy", "scipy", "pandas", "pyarrow", "numba", "tldextract",
                      "lightgbm", "xgboost-cpu")


# The version tags: what identifies the version and what `fetch-model` / `serve --model-alias` verify.
VERSION_TAGS = ("model", "sha256", "manifest_sha256", "compiled_sha256", "train_data_sha256", "git_commit")

NO_CHAMPION_HINT = "register a model (train with MLflow tracking on), then run `make promote` to give it the alias"


class PromotionError(RuntimeError):
    """The candidate may not become champion; the message says why."""


class RegistryUnreachableError(RuntimeError):
    """The registry could not be asked (server down, store missing or unreadable) or failed a request: not the
    same as an alias it lacks."""


ABSENT = frozenset({"RESOURCE_DOES_NOT_EXIST", "NOT_FOUND"})  # MLflow's "no such" codes


# MLflow answers a missing alias with INVALID_PARAMETER_VALUE, the same code as an unusable tracking URI (an
# unknown scheme, a file store it refuses): only this message means "no such alias".
ALIAS_NOT_FOUND = re.compile(r"\balias\b.*\bnot found\b", re.IGNORECASE)


# MLflow reserves `latest` (any case: the newest version, promoted or not) and `v<digits>` (that version).
RESERVED_ALIAS = re.compile(r"latest|[vV]\d+", re.IGNORECASE)


def check_alias(alias: str) -> None:
    """`PromotionError` for an alias MLflow reserves: ``latest`` would quietly name the newest version, never
    promoted, and ``v<digits>`` a version number; neither can be moved."""
    if RESERVED_ALIAS.fullmatch(alias):
        what = ("the newest registered version, promoted or not" if alias.lower() == "latest"
                else f"version {alias[1:]}")
        raise PromotionError(f"{alias!r} is not an alias to use: MLflow reserves it for {what}; choose a version "
                             "with `promote --version N` and name another alias (e.g. 'champion')")


REGISTRY_TABLES = frozenset({"registered_models", "model_versions"})  # what makes a SQLite file an MLflow registry


def sqlite_file(uri: str) -> Path | None:
    """The file a ``sqlite://`` tracking URI names; None for another store or an in-memory database."""
    scheme, _, rest = uri.partition("://")
    if scheme.partition("+")[0] != "sqlite":
        return None
    # SQLAlchemy's reading, which MLflow uses (not a dependency of ours to import): the host part is empty, so
    # `sqlite:///x.db` is x.db, `sqlite:////tmp/x.db` is /tmp/x.db, `sqlite://` an in-memory database
    database = rest.partition("?")[0].removeprefix("/")
    return Path(database) if database and database != ":memory:" else None


def sqlite_problem(path: Path) -> str | None:
    """Why the SQLite file at ``path`` is no MLflow registry to read, None if it is one. Opened read-only: MLflow
    itself would create a missing file (and its folders) or migrate another database into a registry."""
    if not path.exists():
        return f"no MLflow registry at {path} (no such file; check MLFLOW_TRACKING_URI)"
    if path.is_dir():
        return f"{path} is not an MLflow database (it is a folder)"
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:  # another kind of file, or one that cannot be opened
        return f"{path} is not an MLflow database (SQLite: {exc})"
    if not REGISTRY_TABLES.issubset(tables):
        return f"{path} is not an MLflow database (it has no model registry tables)"
    return None


def check_readable(uri: str) -> None:
    """Raise `RegistryUnreachableError` unless the registry can be read as it is, without side effects: a SQLite
    store must already be an MLflow database, a server must answer a quick probe (a dead one costs seconds, not
    MLflow's minutes of retries)."""
    path = sqlite_file(uri)
    if path is not None and (problem := sqlite_problem(path)):
        raise RegistryUnreachableError(problem)
    scheme = uri.partition("://")[0] if "://" in uri else ""
    if scheme in ("", "file"):  # a folder store: MLflow would create a missing one (or refuse file stores)
        folder = Path(uri.removeprefix("file://")) if scheme else Path(uri)
        if not folder.is_dir():
            raise RegistryUnreachableError(f"MLFLOW_TRACKING_URI {redact(uri)} names no MLflow store ({folder} is "
                                           "not a folder); use e.g. sqlite:///mlflow.db")
    if problem := reachable(uri):
        raise RegistryUnreachableError(f"MLflow registry: {problem}")


def registry_failure(uri: str, exc: Exception) -> RegistryUnreachableError:
    """An MLflow error as one line, credentials redacted (MLflow quotes the tracking URI, password and all)."""
    if getattr(exc, "error_code", None) == "INVALID_PARAMETER_VALUE" and unusable_uri(str(exc)):
        return RegistryUnreachableError(f"MLFLOW_TRACKING_URI {redact(uri)} is not a usable MLflow registry: "
                                        f"{one_line(exc).partition('. See ')[0][:300]}")
    return RegistryUnreachableError(f"MLflow registry {redact(uri)} could not be asked: {one_line(exc)}")


def unusable_uri(message: str) -> bool:
    """Whether MLflow's message says the tracking URI itself is unusable (not a bad argument to a request)."""
    return any(sign in message for sign in ("unsupported URI", "Model registry functionality is unavailable",
                                            "filesystem tracking backend", "file store"))


@contextmanager
def registry_errors(uri: str) -> Iterator[None]:
    """MLflow's errors inside the block as `registry_failure`: a message for the user, not a traceback."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        raise registry_failure(uri, exc) from None


def source_hashes(params_path: str | Path = "params.yaml") -> dict[str, str]:
    """SHA-256 of every upstream file the dataset was built from, as pinned in params.yaml."""
    from cybersentinel.core.files import read_params

    if not Path(params_path).is_file():
        return {}
    sources = dataset_sources(read_params(params_path).get("dataset", {}))
    return {spec["name"]: spec["sha256"] for source in sources for spec in source.get("files", [])}


def pinned_requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for name in MODEL_REQUIREMENTS:
        with suppress(PackageNotFoundError):
            pins.append(f"{name}=={version(name)}")
    return pins


def log_and_register(tracker: Tracker, model: Pipeline, manifest: dict[str, Any], example: pd.DataFrame,
                     model_dir: Path) -> None:
    """Log the model (and the files beside it in ``model_dir`` that the manifest names) and register a version
    tagged with its hashes, metrics and git commit."""
    if not tracker.active:
        return
    mlflow = tracker.mlflow

    def log() -> None:
        from mlflow.models import infer_signature

        from cybersentinel.core.files import sha256_file, write_json
        from cybersentinel.model.estimators import TRUSTED_TYPES, ModelIntegrityError, save_model

        # The DVC-tracked bytes first, so every registered version can be loaded and verified.
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / manifest["file"]
            if save_model(model, path) != manifest["sha256"]:
                raise ModelIntegrityError("re-serialising the model did not reproduce the manifest's SHA-256")
            mlflow.log_artifact(str(path), DETECTOR_DIR)
            if manifest.get("compiled"):
                from cybersentinel.model.compiled import UrlScorer

                path = Path(tmp) / manifest["compiled"]["file"]
                scorer = UrlScorer.from_pipeline(model)
                if scorer is None or scorer.save(path) != manifest["compiled"]["sha256"]:
                    raise ModelIntegrityError("compiling the model did not reproduce the manifest's compiled file")
                mlflow.log_artifact(str(path), DETECTOR_DIR)
            # the policy's pinned lists and the drift reference, covered by the manifest's hash
            for pinned in ("popularity", "software", "resolvers", "reference"):
                if manifest.get(pinned):
                    mlflow.log_artifact(str(model_dir / manifest[pinned]["file"]), DETECTOR_DIR)
            path = Path(tmp) / "model.json"  # the exact bytes train wrote, so its hash can be checked on fetch
            write_json(path, manifest)
            manifest_sha256 = sha256_file(path)
            mlflow.log_artifact(str(path), DETECTOR_DIR)
        signature = infer_signature(example, model.predict_proba(example)[:, 1])
        info = mlflow.sklearn.log_model(model, name="model", serialization_format="skops",
                                        skops_trusted_types=sorted(TRUSTED_TYPES), signature=signature,
                                        registered_model_name=manifest["name"], pyfunc_predict_fn="predict_proba",
                                        pip_requirements=pinned_requirements())
        client = mlflow.MlflowClient()
        version = info.registered_model_version
        mlflow.log_params({f"source.{name}.sha256": digest for name, digest in source_hashes().items()})
        mlflow.log_metrics({f"validation.{k}": float(v) for k, v in manifest["validation"].items()
                            if isinstance(v, int | float)})
        tags = {"model": manifest["model"], "sha256": manifest["sha256"], "manifest_sha256": manifest_sha256,
                "train_data_sha256": manifest["train_data_sha256"],
                **({"compiled_sha256": manifest["compiled"]["sha256"]} if manifest.get("compiled") else {}),
                "git_commit": git_commit()}
        for key, value in tags.items():
            client.set_model_version_tag(manifest["name"], version, key, str(value))
        client.update_model_version(manifest["name"], version, description=version_description(manifest))
        if not client.get_registered_model(manifest["name"]).description:
            client.update_registered_model(manifest["name"], description=MODEL_DESCRIPTION)

    tracker.call("model registration", log)


MODEL_DESCRIPTION = ("CyberSentinel's calibrated detector of malicious URLs. Each version holds the model, its "
                     "compiled form and manifest (detector/), verified against the version's sha256 tags when "
                     "loaded; `make promote` moves the 'champion' alias to a version that beats the champion.")


def version_description(manifest: dict[str, Any]) -> str:
    """One paragraph for the registry page: what the version is and how it was judged."""
    validation = manifest.get("validation", {})
    rule = manifest.get("threshold_rule", {})
    budget = f" (false-positive budget {rule['max_fpr']:.2%})" if rule.get("max_fpr") else ""
    figures = ", ".join(f"{label} {validation[key]:.4f}" for label, key in
                        (("ROC-AUC", "roc_auc"), ("TPR at 1% FPR", "tpr_at_1pct_fpr"), ("precision", "precision"),
                         ("recall", "recall")) if isinstance(validation.get(key), int | float))
    return (f"{manifest['model']} on the {manifest['dataset']} dataset, {len(manifest.get('features', []))} features; "
            f"threshold {manifest['policy']['threshold']}{budget}. Held-out training groups: {figures or 'n/a'}. "
            f"Model SHA-256 {manifest['sha256']}.")


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI", DEFAULT_TRACKING_URI)


def ensure_experiment(name: str | None = None, uri: str | None = None) -> str:
    """Create the experiment from here (the repository root) if it does not exist: its artifact folder is
    fixed at creation, and queued `dvc exp` runs execute in temporary copies that are deleted afterwards."""
    name = name or _params_value("experiment", "cybersentinel")
    client = client_for(uri or tracking_uri())
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return client.create_experiment(name, artifact_location=str(Path("mlruns", name).resolve()))
    return experiment.experiment_id


def client_for(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def download_version(uri: str, name: str, version: str, dest: Path) -> tuple[Path, dict[str, Any]]:
    """Download a version's detector files into ``dest`` and check them against the registry's SHA-256."""
    import mlflow

    from cybersentinel.core.files import ModelIntegrityError, sha256_file

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with registry_errors(uri):
        model_version = client_for(uri).get_model_version(name, version)
    expected = model_version.tags.get("sha256")
    if not expected:
        raise ModelIntegrityError(f"{name} version {version} has no sha256 tag; refusing to load it")
    try:
        local = Path(mlflow.artifacts.download_artifacts(run_id=model_version.run_id, artifact_path=DETECTOR_DIR,
                                                         dst_path=str(dest), tracking_uri=uri))
    except (OSError, mlflow.exceptions.MlflowException) as exc:
        raise ModelIntegrityError(f"{name} version {version}: no {DETECTOR_DIR}/ files in run {model_version.run_id} "
                                  f"({one_line(exc)}); it was registered without the verified model bytes") from exc
    # The manifest carries the decision policy (threshold, band, feed and popularity rules): it is checked
    # before anything in it is believed, like the model bytes.
    expected_manifest, actual_manifest = model_version.tags.get("manifest_sha256"), sha256_file(local / "model.json")
    if not expected_manifest or actual_manifest != expected_manifest:
        raise ModelIntegrityError(f"{name} version {version}: manifest SHA-256 {actual_manifest}, registry "
                                  f"{expected_manifest}; the decision policy may have been edited, refusing to load")
    manifest = json.loads((local / "model.json").read_text())
    actual = sha256_file(local / manifest["file"])
    if not manifest.get("sha256") == actual == expected:
        raise ModelIntegrityError(f"{name} version {version}: file SHA-256 {actual}, manifest "
                                  f"{manifest.get('sha256')}, registry {expected} do not all match; refusing to load")
    compiled = manifest.get("compiled")
    if compiled:
        actual, expected = sha256_file(local / compiled["file"]), model_version.tags.get("compiled_sha256")
        if not compiled["sha256"] == actual == expected:
            raise ModelIntegrityError(f"{name} version {version}: compiled file SHA-256 {actual}, manifest "
                                      f"{compiled['sha256']}, registry {expected} do not all match; refusing to load")
    return local, manifest


def load_version(uri: str, name: str, version: str) -> tuple[Pipeline, dict[str, Any]]:
    """A registered version's model, loaded only if its bytes match the SHA-256 the version was tagged with."""
    from cybersentinel.model.estimators import load_model

    with tempfile.TemporaryDirectory() as tmp:
        local, manifest = download_version(uri, name, version, Path(tmp))
        return load_model(local / manifest["file"], manifest["sha256"]), manifest


def alias_version(uri: str, name: str, alias: str) -> str | None:
    """The version ``alias`` names, None if the registry has no such model or alias; `RegistryUnreachableError`
    if the registry cannot be asked (a quick probe first, so a dead server costs seconds, not MLflow's retries)."""
    from mlflow.exceptions import MlflowException

    check_alias(alias)
    check_readable(uri)
    try:
        return str(client_for(uri).get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if exc.error_code in ABSENT or (exc.error_code == "INVALID_PARAMETER_VALUE"
                                        and ALIAS_NOT_FOUND.search(str(exc)) and not unusable_uri(str(exc))):
            return None
        raise registry_failure(uri, exc) from None


def load_alias(name: str = DEFAULT_MODEL_NAME, alias: str = CHAMPION,
               uri: str | None = None) -> tuple[Pipeline, dict[str, Any]]:
    """The model an alias points at, hash-verified (``Detector(*load_alias())`` scores with it)."""
    from cybersentinel.core.files import ModelIntegrityError

    uri = uri or tracking_uri()
    version = alias_version(uri, name, alias)
    if version is None:
        raise ModelIntegrityError(f"{name} has no version with alias {alias!r} in {redact(uri)}: {NO_CHAMPION_HINT}")
    return load_version(uri, name, version)


def evaluate_on(model: Pipeline, manifest: dict[str, Any], test: pd.DataFrame) -> dict[str, float]:
    """Test metrics of one model at its own threshold, scored exactly as the evaluate stage does."""
    from cybersentinel.model.metrics import classification_metrics
    from cybersentinel.scoring.policy import Policy

    missing = [c for c in manifest["inputs"] if c not in test.columns]
    if missing:
        raise PromotionError(f"the test data has no column(s) {missing[:5]} that this {manifest['dataset']} "
                               "model needs, so it cannot be scored on the same test data")
    scores = model.predict_proba(test[manifest["inputs"]])[:, 1]
    return classification_metrics(test["label"].to_numpy(), scores, Policy.from_manifest(manifest).threshold)


def read_test_table(path: Path) -> pd.DataFrame:
    """The labelled test table both models are scored on; `PromotionError` if it is no such table (not Parquet,
    no ``label`` column, no rows)."""
    import pandas as pd
    import pyarrow as pa

    try:
        test = pd.read_parquet(path)
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise PromotionError(f"--test-data {path} is not a readable Parquet table ({one_line(exc)[:200]})") from None
    if "label" not in test.columns:
        raise PromotionError(f"--test-data {path} has no 'label' column: the models are scored against it")
    if test.empty:
        raise PromotionError(f"--test-data {path} has no rows: there is nothing to score the models on")
    return test


def beats(metric: str, candidate: float, champion: float, min_delta: float = 0.0) -> bool:
    """Strictly better by more than ``min_delta`` (lower is better for the Brier score)."""
    if metric in LOWER_IS_BETTER:
        return candidate < champion - min_delta
    return candidate > champion + min_delta


@dataclass(frozen=True)
class Evaluation:
    version: str
    metrics: dict[str, float]
    reused: bool


def evaluation(uri: str, name: str, version: str, test: pd.DataFrame, test_sha256: str,
               progress: Callable[[str], None] = lambda _: None) -> Evaluation:
    """The version's metrics on this test set: the ones recorded on its run if they were computed on the same
    bytes (the run's ``test_data_sha256`` tag), else scored now and logged on the run as metrics."""
    from mlflow.entities import Metric, RunTag

    client = client_for(uri)
    run_id = client.get_model_version(name, version).run_id
    run = client.get_run(run_id).data
    if run.tags.get("test_data_sha256") == test_sha256 and all(f"test.{m}" in run.metrics for m in METRICS):
        recorded = {k.removeprefix("test."): v for k, v in run.metrics.items() if k.startswith("test.")}
        return Evaluation(version, {k: int(v) if k == "rows" else v for k, v in recorded.items()}, reused=True)
    progress(f"downloading and verifying version {version}")
    model, manifest = load_version(uri, name, version)
    progress(f"scoring version {version} on {len(test):,} test rows")
    metrics = evaluate_on(model, manifest, test)
    client.log_batch(run_id, metrics=[Metric(f"test.{k}", float(v), int(time.time() * 1000), 0)
                                      for k, v in metrics.items() if isinstance(v, int | float)],
                     tags=[RunTag("test_data_sha256", test_sha256)])
    return Evaluation(version, metrics, reused=False)


def model_versions(uri: str, name: str) -> list[Any]:
    """Every registered version of ``name``; the registry is checked first, like `alias_version`."""
    check_readable(uri)
    with registry_errors(uri):
        return client_for(uri).search_model_versions(f"name = '{name}'")


def promote(uri: str, name: str, test_path: Path, metric: str = "roc_auc", candidate: str | None = None,
            alias: str = CHAMPION, min_delta: float = 0.0, progress: Callable[[str], None] = lambda _: None) -> str:
    """Move ``alias`` to ``candidate`` (default: the newest version) if it beats the alias holder on
    ``metric`` over the same test data; return what happened, or raise PromotionError explaining why not
    (RegistryUnreachableError if the registry cannot be asked or fails)."""
    if metric not in METRICS:
        raise PromotionError(f"unknown metric {metric!r}: choose one of {', '.join(METRICS)}")
    check_alias(alias)  # before anything is downloaded or scored: MLflow would refuse to move it at the end
    progress(f"looking up {name!r} in the registry")
    versions = model_versions(uri, name)
    if not versions:
        raise PromotionError(f"no registered versions of {name!r} in {redact(uri)}: train with MLflow tracking on "
                             "(`dvc repro`), then run `make promote`")
    numbers = sorted(int(v.version) for v in versions)
    candidate = str(candidate or numbers[-1]).strip()
    if candidate not in {str(n) for n in numbers}:
        raise PromotionError(f"{name!r} has no version {candidate!r} in {redact(uri)} (registered: "
                             f"{numbers[0]} to {numbers[-1]}, {len(numbers)} in all)")
    with registry_errors(uri):
        return challenge(uri, name, test_path, metric, candidate, alias, min_delta, progress)


def challenge(uri: str, name: str, test_path: Path, metric: str, candidate: str, alias: str, min_delta: float,
              progress: Callable[[str], None]) -> str:
    """`promote` once the candidate is known: score it and the alias holder, move the alias if it wins."""

    from cybersentinel.core.files import sha256_file

    client = client_for(uri)
    holder = alias_version(uri, name, alias)
    if holder == candidate:
        return f"{name} version {candidate} already is {alias!r}; nothing to do"

    progress(f"reading the test data {test_path}")
    test_sha256 = sha256_file(test_path)
    test = read_test_table(test_path)
    new = evaluation(uri, name, candidate, test, test_sha256, progress)
    on_data = f"on {test_path} (sha256 {test_sha256[:12]}..., {len(test):,} rows)"
    if holder is None:
        client.set_registered_model_alias(name, alias, candidate)
        return (f"{name} had no {alias!r}: version {candidate} becomes {alias} with {metric} "
                f"{new.metrics[metric]:.5f} {on_data}")
    old = evaluation(uri, name, holder, test, test_sha256, progress)
    direction = "lower" if metric in LOWER_IS_BETTER else "higher"
    comparison = (f"version {candidate} has {metric} {new.metrics[metric]:.5f}, {alias} version {holder} has "
                  f"{old.metrics[metric]:.5f} {on_data}")
    if not beats(metric, new.metrics[metric], old.metrics[metric], min_delta):
        margin = f" by more than {min_delta}" if min_delta else ""
        raise PromotionError(f"refusing to promote: {comparison}; the candidate must be {direction}{margin}. "
                               f"{alias!r} stays on version {holder}.")
    client.set_registered_model_alias(name, alias, candidate)
    return f"promoted version {candidate} to {alias!r} (was version {holder}): {comparison}"


def _params_value(key: str, default: str) -> str:
    """``mlflow.<key>`` from params.yaml in the working directory, if there is one."""
    from cybersentinel.core.files import read_params

    if Path("params.yaml").is_file():
        return read_params().get("mlflow", {}).get(key, default)
    return default


def registered_name() -> str:
    return _params_value("registered_model", DEFAULT_MODEL_NAME)

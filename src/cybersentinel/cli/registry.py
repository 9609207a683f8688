"""`cybersentinel promote` and `cybersentinel fetch-model`: the MLflow model registry."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from cybersentinel.core.redact import redact
from cybersentinel.core.retry import one_line
from cybersentinel.tracking.registry import (
    CHAMPION,
    METRICS,
    NO_CHAMPION_HINT,
    PromotionError,
    RegistryUnreachableError,
    alias_version,
    download_version,
    model_versions,
    promote,
    registered_name,
    tracking_uri,
)


def progress(message: str) -> None:
    """One line per step on stderr (stdout keeps the result), so a slow registry shows where it is."""
    typer.secho(f"... {message}", err=True, dim=True)


@contextmanager
def refusals() -> Iterator[None]:
    """A refusal or registry failure ends the command with its one-line message and status 2, the CLI's error
    status (1 is `drift`'s "drift found"); the messages are redacted where they are made."""
    from cybersentinel.core.files import ModelIntegrityError

    try:
        yield
    except (PromotionError, ModelIntegrityError, RegistryUnreachableError) as exc:
        typer.secho(str(exc), fg=typer.colors.RED, err=True)
        raise typer.Exit(2) from exc


def check_driver(uri: str) -> None:
    """`RegistryUnreachableError` when ``uri`` names a database whose driver is not installed here: MLflow would
    stop with a ModuleNotFoundError traceback at its first request (``postgresql://`` needs psycopg)."""
    from mlflow.store.db.db_types import DATABASE_ENGINES

    scheme = uri.partition("://")[0]
    if scheme.partition("+")[0].lower() not in DATABASE_ENGINES:
        return
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(uri).get_dialect().import_dbapi()  # SQLAlchemy's choice of driver, as MLflow's store makes it
    except (ImportError, ArgumentError) as exc:
        raise RegistryUnreachableError(f"MLflow registry {redact(uri)}: the {scheme}:// scheme needs a database "
                                       f"driver that is not installed ({one_line(exc)})") from None


def version_of(uri: str, name: str, model_dir: Path) -> str:
    """The newest registered version holding the model in ``model_dir`` (e.g. after `dvc exp apply`): the same
    manifest, not only the same model file: a retrain that changed only the decision policy (a threshold, a
    pinned list) has the model's bytes and another ``model.json``, and a version is what `fetch-model` serves."""
    from cybersentinel.core.files import sha256_file

    digest = sha256_file(model_dir / "model.json")
    versions = [v for v in model_versions(uri, name) if v.tags.get("manifest_sha256") == digest]
    if not versions:
        raise PromotionError(f"no registered version of {name!r} holds {model_dir}/ (model.json sha256 "
                             f"{digest[:12]}...): was it trained with MLflow tracking on and the same "
                             "MLFLOW_TRACKING_URI?")
    return str(max(int(v.version) for v in versions))


def promote_command(
    metric: Annotated[str, typer.Option(help=f"test metric to compare: {', '.join(METRICS)}")] = "roc_auc",
    version: Annotated[str | None, typer.Option(help="candidate version (default: the newest)")] = None,
    model_dir: Annotated[Path | None, typer.Option(exists=True, file_okay=False,
                                                   help="candidate: the version holding this model folder "
                                                        "(e.g. models/ after `dvc exp apply`)")] = None,
    test_data: Annotated[Path, typer.Option(exists=True, dir_okay=False,
                                            help="test table both models are scored on")] = Path(
                                                "data/features/test.parquet"),
    alias: Annotated[str, typer.Option(help="alias to move")] = CHAMPION,
    min_delta: Annotated[float, typer.Option(min=0.0, help="required improvement")] = 0.0,
    name: Annotated[str | None, typer.Option(help="registered model (default: params.yaml mlflow.registered_model)")
                    ] = None,
) -> None:
    """Move the champion alias to a model version only if it beats the champion on the same test data."""
    uri, name = tracking_uri(), name or registered_name()
    with refusals():
        check_driver(uri)
        if model_dir is not None:
            version = version_of(uri, name, model_dir)
        typer.echo(promote(uri, name, test_data, metric, version, alias, min_delta, progress))


def fetch_model_command(
    out: Annotated[Path, typer.Option(file_okay=False, help="folder to write model.json and model.skops to")],
    alias: Annotated[str, typer.Option(help="registry alias")] = CHAMPION,
    name: Annotated[str | None, typer.Option(help="registered model (default: params.yaml mlflow.registered_model)")
                    ] = None,
) -> None:
    """Write the hash-verified model an alias points at to a folder (`cybersentinel predict --model-dir` it)."""
    import shutil

    from cybersentinel.core.files import atomic_path
    from cybersentinel.model.drift import read_reference
    from cybersentinel.model.estimators import ModelIntegrityError, load_model
    from cybersentinel.scoring.detector import pinned_lists

    uri, name = tracking_uri(), name or registered_name()
    with tempfile.TemporaryDirectory() as tmp:
        with refusals():
            check_driver(uri)
            progress(f"looking up alias {alias!r} of {name}")
            version = alias_version(uri, name, alias)
            if version is None:
                raise ModelIntegrityError(f"{name} has no version with alias {alias!r} in {redact(uri)}: "
                                          f"{NO_CHAMPION_HINT}")
            progress(f"downloading version {version} and checking its SHA-256")
            local, manifest = download_version(uri, name, version, Path(tmp))
            progress("loading the model (refuses untrusted types) and checking the policy's pinned lists")
            load_model(local / manifest["file"], manifest["sha256"])  # also refuses untrusted types
            pinned_lists(local, manifest)  # the policy's pinned lists, checked against the manifest
            if manifest.get("reference"):  # the drift reference profile, checked the same way
                read_reference(local, manifest)
        for file in (manifest["file"], *([manifest["compiled"]["file"]] if manifest.get("compiled") else []),
                     *(manifest[k]["file"] for k in ("popularity", "software", "resolvers", "reference")
                       if manifest.get(k)),
                     "model.json"):
            with atomic_path(out / file) as target:
                shutil.copyfile(local / file, target)
    typer.echo(f"{name} version {version} ({alias}, {manifest['model']}, sha256 {manifest['sha256'][:12]}...) -> {out}")

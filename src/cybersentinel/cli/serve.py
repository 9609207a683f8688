"""`cybersentinel serve`: the scoring API and web page."""

import logging
import os
import signal
from contextlib import nullcontext
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from cybersentinel.cli.options import (
    AllowFiles,
    BlockFiles,
    DecisionLogDir,
    FeedbackDb,
    LogRetentionDays,
    LogRotateRows,
    LogRotateSeconds,
    ModelSha256,
)
from cybersentinel.ops.service import (
    ENV,
    KEY_ENV,
    LOCAL_HOSTS,
    ServerLimits,
    Settings,
    create_app,
    parse_api_keys,
    run,
)


def registry_model(alias: str, name: str, dest: Path) -> tuple[Path, str]:
    """Download the registry version an alias points at into ``dest`` (hash-checked by the registry module,
    and again when the app loads it); return its folder and a description of where it came from."""
    from cybersentinel.cli.registry import check_driver
    from cybersentinel.core.files import ModelIntegrityError
    from cybersentinel.core.redact import redact
    from cybersentinel.tracking.registry import alias_version, download_version, tracking_uri

    uri = tracking_uri()
    check_driver(uri)
    version = alias_version(uri, name, alias)
    if version is None:
        raise ModelIntegrityError(f"{name} has no version with alias {alias!r} in {redact(uri)}")
    local, _ = download_version(uri, name, version, dest)
    return local, f"mlflow: models:/{name}@{alias} (version {version})"


def check_address(host: str, port: int) -> None:
    """Bind ``host:port`` once, as uvicorn will: a port in use or a host that is no address here ends `serve` with
    one line naming it and status 2 (`LazyGroup`), with one worker as with several (uvicorn alone logs its start-up
    and exits 3). A server that takes the port between this check and uvicorn's bind still fails uvicorn's way."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # as `ops.workers.listening_sockets` reads it
    try:
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            sock.bind((host, port))
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror or str(exc), f"{host}:{port}") from None


def check_feeds(folder: Path) -> None:
    """Read the feeds as each worker's app will (`create_app`: a folder without feed files is none), so a
    malformed file stops `serve` here rather than every worker while starting."""
    from cybersentinel.intel.feeds import FEEDS, IntelIndex

    if any((folder / feed.filename).is_file() for feed in FEEDS.values()):
        IntelIndex.from_dir(folder)


class LogLevel(StrEnum):
    """The names uvicorn accepts (uvicorn.config.LOG_LEVELS, not imported: it loads asyncio); any other stops uvicorn
    or logging with a traceback."""

    critical = "critical"
    error = "error"
    warning = "warning"
    info = "info"
    debug = "debug"
    trace = "trace"


TRACE = 5  # uvicorn's level below DEBUG: logging knows its name only once uvicorn is imported


def serve(
    host: Annotated[str, typer.Option(help="Address to bind; keep 127.0.0.1 unless a proxy or container "
                                           "needs more.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, envvar="CYBERSENTINEL_PORT",
                                      help="Port to bind (the image's HEALTHCHECK reads the same variable).")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes, each with its own copy of the model.")] = 1,
    model_dir: Annotated[Path, typer.Option(envvar=ENV["model_dir"],
                                            help="Folder with model.json and model.skops (`dvc pull`).")
                         ] = Settings.model_dir,
    model_sha256: ModelSha256 = None,
    feeds_dir: Annotated[Path, typer.Option(envvar=ENV["feeds_dir"],
                                            help="Threat-intel snapshots; skipped with a warning if absent.")
                         ] = Path("data/feeds"),
    metrics: Annotated[Path, typer.Option(envvar=ENV["metrics_path"], help="Test metrics shown by /v1/model.")
                       ] = Settings.metrics_path,
    max_batch: Annotated[int, typer.Option(min=1, envvar=ENV["max_batch"], help="URLs per request, at most.")
                         ] = Settings.max_batch,
    max_body_bytes: Annotated[int, typer.Option(min=1024, envvar=ENV["max_body_bytes"],
                                                help="Request body size, at most.")] = Settings.max_body_bytes,
    model_alias: Annotated[str | None, typer.Option(envvar="CYBERSENTINEL_MODEL_ALIAS",
                                                    help="Serve the MLflow registry version this alias names "
                                                         "(MLFLOW_TRACKING_URI) instead of --model-dir.")] = None,
    model_name: Annotated[str, typer.Option(help="Registered model name for --model-alias.")
                          ] = "cybersentinel-url-detector",
    allow_files: AllowFiles = None,
    block_files: BlockFiles = None,
    trusted_hosts: Annotated[list[str] | None, typer.Option(
        "--trusted-host", envvar=ENV["trusted_hosts"],
        help="Host header value answered, besides the bound address and localhost (repeatable; the names clients "
             "or the reverse proxy use). Other Host headers get 400.")] = None,
    header_timeout: Annotated[float, typer.Option(min=0.5, help="Seconds a client has to send a request's headers.")
                              ] = ServerLimits.header_timeout,
    body_timeout: Annotated[float, typer.Option(min=0.5, help="Seconds a client has to send a request's body, from "
                                                "the request's start (then 408 and the connection closed).")
                            ] = ServerLimits.body_timeout,
    keep_alive_timeout: Annotated[int, typer.Option(min=1, help="Seconds an idle kept-alive connection stays open.")
                                  ] = ServerLimits.keep_alive,
    max_connections: Annotated[int, typer.Option(min=1, help="Open connections (per worker) before new requests "
                                                 "get 503.")] = ServerLimits.max_connections,
    prometheus: Annotated[bool, typer.Option("--prometheus/--no-prometheus", envvar=ENV["prometheus"],
                                             help="Prometheus metrics at /metrics (no API key needed).")] = True,
    decision_log: DecisionLogDir = None,
    log_rotate_rows: LogRotateRows = Settings.log_rotate_rows,
    log_rotate_seconds: LogRotateSeconds = Settings.log_rotate_seconds,
    log_retention_days: LogRetentionDays = Settings.log_retention_days,
    feedback_db: FeedbackDb = None,
    access_log: Annotated[bool, typer.Option(help="Log every request (method, path, status).")] = True,
    log_level: Annotated[LogLevel, typer.Option(case_sensitive=False, help="uvicorn log level.")] = LogLevel.info,
) -> None:
    """Serve the scoring API and the web page. API keys, if any, come from CYBERSENTINEL_API_KEYS; the keys that
    alone may read and write analyst corrections, if any, from CYBERSENTINEL_FEEDBACK_KEYS."""
    import tempfile

    from cybersentinel.cli.predict import check_model_json
    from cybersentinel.core.files import ModelIntegrityError
    from cybersentinel.features.lexical import FeatureDefinitionError
    from cybersentinel.intel.feeds import FeedError
    from cybersentinel.scoring.detector import Detector
    from cybersentinel.scoring.policy import read_site_list
    from cybersentinel.tracking.registry import PromotionError, RegistryUnreachableError

    logging.basicConfig(level=TRACE if log_level is LogLevel.trace else log_level.upper(),
                        format="%(levelname)s: %(message)s")
    keys: dict[str, tuple[str, ...]] = {}
    for name, setting in KEY_ENV.items():
        try:
            keys[name] = parse_api_keys(os.environ.get(setting, ""), setting)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint=setting) from None
    try:  # read here for a message naming the option; the app reads them again (each worker its own)
        read_site_list(allow_files or [], [], "allowlist")
        read_site_list(block_files or [], [], "local block list")
    except (OSError, ValueError) as exc:
        raise typer.BadParameter(str(exc), param_hint="--allow-file/--block-file") from exc
    hosts = [*LOCAL_HOSTS, *([] if host in ("0.0.0.0", "::") else [host]),  # noqa: S104 (compared, not bound)
             *(h.strip() for item in trusted_hosts or () for h in item.split(",") if h.strip())]
    # a folder for the model a registry alias names, for as long as the server runs; none without an alias
    with tempfile.TemporaryDirectory(prefix="cybersentinel-model-") if model_alias else nullcontext() as downloaded:
        source = ""
        try:  # load and verify here, so a bad model stops `serve` with a clear message before the port opens
            if model_alias:
                model_dir, source = registry_model(model_alias, model_name, Path(downloaded))
            check_model_json(model_dir, "--model-alias" if model_alias else "--model-dir")
            settings = Settings(model_dir=model_dir, feeds_dir=feeds_dir, metrics_path=metrics, max_batch=max_batch,
                                max_body_bytes=max_body_bytes, model_source=source, model_sha256=model_sha256 or "",
                                allow_files=tuple(allow_files or ()), block_files=tuple(block_files or ()),
                                prometheus=prometheus, decision_log=decision_log, log_rotate_rows=log_rotate_rows,
                                log_rotate_seconds=log_rotate_seconds, log_retention_days=log_retention_days,
                                feedback_db=feedback_db,
                                **keys, trusted_hosts=tuple(dict.fromkeys(hosts)))
            if workers == 1:
                application = create_app(settings)
            else:  # each worker builds its own app; this process only verifies the model and feeds first
                Detector.from_dir(settings.model_dir, settings.model_sha256, settings.metrics_path)
                check_feeds(feeds_dir)
                application = None
        except (FileNotFoundError, KeyError, FeatureDefinitionError, ModelIntegrityError, PromotionError,
                RegistryUnreachableError) as exc:
            raise typer.BadParameter(f"cannot load the model: {exc}",
                                     param_hint="--model-alias" if model_alias else "--model-dir") from exc
        except FeedError as exc:
            raise typer.BadParameter(f"cannot read the feeds: {exc}", param_hint="--feeds-dir") from exc
        check_address(host, port)  # after the model, as with several workers (`run` binds before they start)
        # uvicorn re-raises a SIGTERM it shut down for once its handler is gone, which would end the process
        # before the downloaded model's folder is removed: raise it as SystemExit, so the folder goes too
        from cybersentinel.core.files import exit_on_signal

        signal.signal(signal.SIGTERM, exit_on_signal)
        run(application, settings, host=host, port=port, workers=workers, access_log=access_log,
            log_level=log_level, limits=ServerLimits(header_timeout, body_timeout, keep_alive_timeout, max_connections))

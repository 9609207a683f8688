"""`cybersentinel remote`: the DVC remote (local S3 server or real S3)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from cybersentinel.core.redact import redact
from cybersentinel.mlops.remote import (
    DEFAULT_PORT,
    STATE_FILE,
    RemoteError,
    check_remote,
    describe_unsynced,
    dvc_remote,
    local_up,
    stop_server,
    unsynced_outputs,
)

remote_app = typer.Typer(help="The DVC remote: start/stop the local S3 server, check the configured remote.",
                         no_args_is_help=True)


RemoteOption = Annotated[str | None, typer.Option("--remote", "-r", help="DVC remote (default: core.remote)")]


RepoOption = Annotated[Path, typer.Option(help="DVC repository")]


PortOption = Annotated[int, typer.Option(min=1, max=65535, help="port on 127.0.0.1 for the local S3 server")]


TargetsArgument = Annotated[list[str] | None, typer.Argument(help="stages or outputs, e.g. `train` for the model only")]


def _fail(exc: RemoteError) -> typer.Exit:
    """Exit status 2, as every command's errors (1 is `drift`'s "drift found"); redacted again, as the message may
    quote a library's text, and that may quote a URL with its credentials."""
    typer.secho(f"error: {redact(str(exc))}", fg=typer.colors.RED, err=True)
    return typer.Exit(2)


@remote_app.command("up")
def up(
    port: PortOption = DEFAULT_PORT,
    remote: RemoteOption = None,
    repo: RepoOption = Path("."),
) -> None:
    """Start the local S3 server, create the bucket and write the endpoint to .dvc/config.local."""
    try:
        settings, state = local_up(repo.resolve(), port, remote)
    except RemoteError as exc:
        raise _fail(exc) from exc
    typer.echo(f"local S3 server (pid {state['pid']}) at {state['endpoint']}; {settings.where} ready. "
               "Objects live in memory until `cybersentinel remote down`.")


@remote_app.command("down")
def down(repo: RepoOption = Path(".")) -> None:
    """Stop the local S3 server that `remote up` started (its objects are discarded)."""
    try:
        stopped = stop_server(repo.resolve())
    except RemoteError as exc:
        raise _fail(exc) from exc
    if stopped is None:
        typer.echo("no local S3 server is recorded")
        return
    state, running = stopped
    typer.echo(f"stopped the local S3 server (pid {state['pid']})" if running else
               f"pid {state['pid']} recorded in {STATE_FILE} is not the local S3 server (it has exited, or the pid "
               "names another process now): nothing stopped, the stale record removed")


@remote_app.command("check")
def check(
    remote: RemoteOption = None,
    repo: RepoOption = Path("."),
) -> None:
    """Check that the DVC remote answers, accepts the credentials and holds every locked output."""
    try:
        settings = dvc_remote(repo, remote)
        check_remote(settings)
        problems = unsynced_outputs(repo, settings)
    except RemoteError as exc:
        raise _fail(exc) from exc
    if problems:
        raise _fail(RemoteError(describe_unsynced(settings, problems)))
    typer.echo(f"{settings.where} is reachable, accepts the credentials and holds every locked output")


def _transfer(command: str, targets: list[str] | None, remote: str | None, repo: Path) -> None:
    try:
        settings = dvc_remote(repo, remote)
        check_remote(settings)
    except RemoteError as exc:
        raise _fail(exc) from exc
    args = [sys.executable, "-m", "dvc", command, "-r", settings.name, *(targets or [])]
    if subprocess.run(args, cwd=repo).returncode != 0:
        raise _fail(RemoteError(f"`dvc {command}` with {settings.where} failed (see above); "
                                "`cybersentinel remote check` probes the remote again"))
    if command == "push":  # dvc push only warns about outputs it could not find; a fresh clone then cannot pull
        problems = unsynced_outputs(repo, settings, targets)
        if problems:
            raise _fail(RemoteError(describe_unsynced(settings, problems)))
        typer.echo(f"every locked output{' of ' + ' '.join(targets) if targets else ''} is on {settings.where}")


@remote_app.command("push")
def push(
    targets: TargetsArgument = None,
    remote: RemoteOption = None,
    repo: RepoOption = Path("."),
) -> None:
    """Check the remote, then `dvc push` data and models to it."""
    _transfer("push", targets, remote, repo)


@remote_app.command("pull")
def pull(
    targets: TargetsArgument = None,
    remote: RemoteOption = None,
    repo: RepoOption = Path("."),
) -> None:
    """Check the remote, then `dvc pull` (on a fresh clone, `pull train` fetches the exact model)."""
    _transfer("pull", targets, remote, repo)

"""`cybersentinel remote`: the DVC remote (local S3 server or real S3)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from cybersentinel.mlops.remote import DEFAULT_PORT, RemoteError, check_remote, dvc_remote, local_up, stop_server

remote_app = typer.Typer(help="The DVC remote: start/stop the local S3 server, check the configured remote.",
                         no_args_is_help=True)


RemoteOption = Annotated[str | None, typer.Option("--remote", "-r", help="DVC remote (default: core.remote)")]


RepoOption = Annotated[Path, typer.Option(help="DVC repository")]


TargetsArgument = Annotated[list[str] | None, typer.Argument(help="stages or outputs, e.g. `train` for the model only")]


def _fail(exc: RemoteError) -> typer.Exit:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    return typer.Exit(1)


@remote_app.command("up")
def up(
    port: Annotated[int, typer.Option(help="port on 127.0.0.1 for the local S3 server")] = DEFAULT_PORT,
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
    state = stop_server(repo.resolve())
    typer.echo(f"stopped the local S3 server (pid {state['pid']})" if state else "no local S3 server is recorded")


@remote_app.command("check")
def check(
    remote: RemoteOption = None,
    repo: RepoOption = Path("."),
) -> None:
    """Check that the DVC remote answers and accepts the credentials (run before dvc push/pull)."""
    try:
        settings = dvc_remote(repo, remote)
        check_remote(settings)
    except RemoteError as exc:
        raise _fail(exc) from exc
    typer.echo(f"{settings.where} is reachable and accepts the credentials")


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

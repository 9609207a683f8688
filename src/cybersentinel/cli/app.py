"""The `cybersentinel` command: one Typer application assembled from one module per command group. Only
this package imports Typer; the commands call the library below it."""

from __future__ import annotations

import errno
import importlib
from typing import Annotated

import typer
from typer.core import TyperCommand, TyperGroup

# Command name -> (module of this package, its command function or Typer sub-app), in help order. A command's
# module, and what it imports, loads only when that command runs or a help page lists it: `predict` starts
# without the service, ETL, registry and drift code (~0.1 s of imports on every run).
COMMANDS = {
    "predict": ("predict", "predict"),
    "monitor": ("monitor", "monitor"),
    "serve": ("serve", "serve"),
    "drift": ("drift", "drift"),
    "assess": ("assess", "assess"),
    "promote": ("registry", "promote_command"),
    "fetch-model": ("registry", "fetch_model_command"),
    "report": ("report", "report_command"),
    "retrain": ("retrain", "retrain_command"),
    "feeds": ("feeds", "feeds_app"),
    "intel": ("intel", "intel_app"),
    "blocklist": ("blocklist", "blocklist_app"),
    "remote": ("remote", "remote_app"),
    "etl": ("etl", "etl_app"),
    "feedback": ("feedback", "feedback_app"),
}


def load_command(name: str) -> TyperCommand | TyperGroup:
    """The Click command Typer builds for ``COMMANDS[name]``, its module imported now."""
    module, attribute = COMMANDS[name]
    target = getattr(importlib.import_module(f"cybersentinel.cli.{module}"), attribute)
    if isinstance(target, typer.Typer):
        group = typer.main.get_group(target)
        group.name = name
        return group
    single = typer.Typer(add_completion=False)
    single.command(name)(target)
    return typer.main.get_command(single)


def os_error_text(exc: OSError) -> str:
    """``[Errno 30] Read-only file system: 'out.csv'`` as ``out.csv: read-only file system``."""
    name = exc.filename if exc.filename is not None else exc.filename2
    reason = (exc.strerror or str(exc)).rstrip(".")
    return f"{name}: {reason[:1].lower()}{reason[1:]}" if name is not None else reason


class LazyGroup(TyperGroup):
    """The top-level group: lists every name of `COMMANDS`, builds a command on first use. A file a command
    cannot read or write (a directory, a read-only or full disk, a missing folder) ends it with one line naming
    the file, not a traceback: every command writes through `atomic_path`, so nothing half-written stays."""

    def invoke(self, ctx: typer.Context) -> object:
        try:
            return super().invoke(ctx)
        except OSError as exc:
            if exc.errno == errno.EPIPE:  # a reader that left (`| head -1`): Click's own handling, status 1
                raise
            typer.echo(f"Error: {os_error_text(exc)}", err=True)
            raise typer.Exit(2) from exc  # 2 as for a bad option; 1 is `drift`'s "drift found", acted on

    def list_commands(self, ctx: typer.Context) -> list[str]:
        return [*super().list_commands(ctx), *(name for name in COMMANDS if name not in self.commands)]

    def get_command(self, ctx: typer.Context, cmd_name: str) -> TyperCommand | TyperGroup | None:
        if cmd_name not in self.commands and cmd_name in COMMANDS:
            self.add_command(load_command(cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)


app = typer.Typer(cls=LazyGroup, help="CyberSentinel: detect and block malicious URLs, domains and IP addresses.",
                  no_args_is_help=True, pretty_exceptions_show_locals=False)


def print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        typer.echo(f"cybersentinel {version('cybersentinel')}")
        raise typer.Exit()


@app.callback()
def main(version: Annotated[bool, typer.Option("--version", callback=print_version, is_eager=True,
                                              help="Print the version and exit.")] = False) -> None:
    """CyberSentinel command line."""


"""The `cybersentinel` command: one Typer application assembled from one module per command group. Only
this package imports Typer; the commands call the library below it."""

from __future__ import annotations

from typing import Annotated

import typer

from cybersentinel.cli.blocklist import blocklist_app
from cybersentinel.cli.drift import drift
from cybersentinel.cli.etl import etl_app
from cybersentinel.cli.feedback import feedback_app
from cybersentinel.cli.feeds import feeds_app
from cybersentinel.cli.intel import intel_app
from cybersentinel.cli.monitor import monitor
from cybersentinel.cli.predict import predict
from cybersentinel.cli.registry import fetch_model_command, promote_command
from cybersentinel.cli.remote import remote_app
from cybersentinel.cli.report import report_command
from cybersentinel.cli.retrain import retrain_command
from cybersentinel.cli.serve import serve

app = typer.Typer(help="CyberSentinel: detect and block malicious URLs, domains and IP addresses.",
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


app.command()(predict)
app.command("monitor")(monitor)
app.command("serve")(serve)
app.command("drift")(drift)
app.command("promote")(promote_command)
app.command("fetch-model")(fetch_model_command)
app.command("report")(report_command)
app.command("retrain")(retrain_command)
app.add_typer(feeds_app, name="feeds")
app.add_typer(intel_app, name="intel")
app.add_typer(blocklist_app, name="blocklist")
app.add_typer(remote_app, name="remote")
app.add_typer(etl_app, name="etl")
app.add_typer(feedback_app, name="feedback")

"""The `cybersentinel` command line. Sub-commands of other modules are registered at the bottom."""

from __future__ import annotations

import typer

app = typer.Typer(help="CyberSentinel: detect and block malicious URLs, domains and IP addresses.",
                  no_args_is_help=True, pretty_exceptions_show_locals=False)


@app.callback()
def main() -> None:
    """CyberSentinel command line."""

from cybersentinel.intel import feeds_app, intel_app  # noqa: E402

app.add_typer(feeds_app, name="feeds")
app.add_typer(intel_app, name="intel")

from cybersentinel.blocklist import blocklist_app  # noqa: E402

app.add_typer(blocklist_app, name="blocklist")

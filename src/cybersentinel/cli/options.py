"""Options several commands share, declared once so they read and validate the same everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

AllowNames = Annotated[list[str] | None, typer.Option(
    "--allow", help="Host name never judged malicious or blocked, with its subdomains (repeatable).")]
AllowFiles = Annotated[list[Path] | None, typer.Option(
    "--allow-file", exists=True, dir_okay=False, help="Allowlist file: a host name per line (repeatable).")]
BlockFiles = Annotated[list[Path] | None, typer.Option(
    "--block-file", exists=True, dir_okay=False,
    help="Local block list file: always malicious, blocked even if popular, never if allowlisted.")]
AllowTop = Annotated[int, typer.Option(
    min=0, help="Never block the Tranco top N registered domains and their subdomains (0: off).")]

"""Options several commands share, declared once so they read and validate the same everywhere, and how a value
is shown on a terminal."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:  # `cybersentinel --help` stays free of numpy
    from cybersentinel.scoring.policy import SiteList

AllowNames = Annotated[list[str] | None, typer.Option(
    "--allow", help="Host name never judged malicious or blocked, with its subdomains (repeatable).")]
AllowFiles = Annotated[list[Path] | None, typer.Option(
    "--allow-file", exists=True, dir_okay=False, help="Allowlist file: a host name per line (repeatable).")]
BlockFiles = Annotated[list[Path] | None, typer.Option(
    "--block-file", exists=True, dir_okay=False,
    help="Local block list file: always malicious, blocked even if popular, never if allowlisted.")]
ModelSha256 = Annotated[str | None, typer.Option(
    "--model-sha256", envvar="CYBERSENTINEL_MODEL_SHA256",
    help="SHA-256 of the model's model.json: any other is refused (without it, the one `evaluate` recorded in "
         "reports/metrics.json is required when that file is of this model).")]
AllowTop = Annotated[int, typer.Option(
    min=0, help="Never block the Tranco top N registered domains and their subdomains (0: off).")]

# One name for the feed snapshot folder everywhere: --feeds-dir. `predict` and `etl load` used to call it --feeds;
# that spelling still works, hidden from --help, with a warning.
FeedsAlias = Annotated[Path | None, typer.Option("--feeds", hidden=True, file_okay=False,
                                                 help="Deprecated spelling of --feeds-dir.")]


def printable(value: object) -> str:
    """A value for a terminal line: non-printable characters escaped (``\\t``, ``\\n``, ``\\x1b``), so what a user,
    a feed or a log wrote can neither forge a row of a tab-separated listing nor drive the terminal."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in str(value))


def feeds_dir_or_alias(feeds_dir: Path | None, alias: Path | None) -> Path | None:
    """--feeds-dir, or the deprecated --feeds when only that was given (said on standard error)."""
    if alias is None:
        return feeds_dir
    typer.secho("--feeds is deprecated: use --feeds-dir", err=True, fg=typer.colors.YELLOW)
    return alias
DecisionLogDir = Annotated[Path | None, typer.Option(
    "--decision-log", envvar="CYBERSENTINEL_DECISION_LOG", file_okay=False,
    help="Keep a decision log (rotated Parquet files: value, verdict, scores, reasons, model hash, time) in this "
         "folder. Off if unset.")]
LogRotateRows = Annotated[int, typer.Option(
    min=1, envvar="CYBERSENTINEL_DECISION_LOG_ROTATE_ROWS", help="Start a new decision log file after this many rows.")]
LogRotateSeconds = Annotated[float, typer.Option(
    min=1.0, envvar="CYBERSENTINEL_DECISION_LOG_ROTATE_SECONDS", help="... or after this many seconds.")]
LogRetentionDays = Annotated[float, typer.Option(
    min=0.001, envvar="CYBERSENTINEL_DECISION_LOG_RETENTION_DAYS", help="Delete decision log files older than this.")]

FeedbackDb = Annotated[Path | None, typer.Option(
    "--feedback-db", envvar="CYBERSENTINEL_FEEDBACK_DB", dir_okay=False,
    help="Analyst feedback store, a SQLite file (default data/feedback.sqlite; CYBERSENTINEL_FEEDBACK_DSN names "
         "PostgreSQL instead).")]
UseFeedback = Annotated[bool, typer.Option(
    "--feedback/--no-feedback", help="Apply the analyst feedback: false positives allowlisted, confirmations on "
                                     "the local block list (an absent store is no feedback).")]


def with_feedback(allow: SiteList, block: SiteList, use: bool, path: Path | None) -> tuple[SiteList, SiteList]:
    """The allowlist and block list with the feedback store's active corrections added (the lists' own entries
    keep their reasons), or unchanged with ``--no-feedback``."""
    if not use:
        return allow, block
    from cybersentinel.ops.feedback import FeedbackError, FeedbackStore

    try:
        feedback_allow, feedback_block = FeedbackStore.from_env(path=path).site_lists()
    except FeedbackError as exc:
        raise typer.BadParameter(f"cannot read the feedback store: {exc}", param_hint="--feedback-db") from None
    return allow.merged(feedback_allow), block.merged(feedback_block)


def pinned_list(model_dir: Path, console: Any, which: str) -> dict[str, Any]:
    """A list pinned with the model in ``model_dir`` (hash-checked): the public DNS resolvers (``resolvers``) or the
    popular sites (``popularity``, name -> rank); {} without a model."""
    if not (model_dir / "model.json").is_file():
        what = "public DNS resolvers" if which == "resolvers" else "popular sites"
        console.print(f"[yellow]warning:[/yellow] no model in {model_dir}: {what} are protected only by the allowlist")
        return {}
    from cybersentinel.core.files import load_manifest
    from cybersentinel.scoring.detector import read_popularity, read_resolvers

    read = read_resolvers if which == "resolvers" else read_popularity
    return read(model_dir, load_manifest(model_dir))

"""`cybersentinel feedback`: analyst corrections without the service (the same store and rules as
`POST /v1/feedback`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cybersentinel.cli.options import FeedbackDb, printable

if TYPE_CHECKING:
    from cybersentinel.ops.feedback import FeedbackStore

feedback_app = typer.Typer(help="Record, list, revoke and export analyst feedback on verdicts.",
                           no_args_is_help=True)


def _store(db: Path | None) -> FeedbackStore:
    from cybersentinel.ops.feedback import FeedbackStore  # imported here: `cybersentinel --help` stays quick

    return FeedbackStore.from_env(path=db)


def _fail(exc: Exception) -> typer.Exit:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    return typer.Exit(2)


@feedback_app.command("migrate")
def migrate_command(db: FeedbackDb = None) -> None:
    """Create or upgrade the store's schema (idempotent)."""
    store = _store(db)
    try:
        applied = store.migrate()
    except ValueError as exc:  # FeedbackError and its kinds
        raise _fail(exc) from None
    typer.echo(f"{store.describe()}: " + (f"applied migrations {applied}" if applied else "schema up to date"))


@feedback_app.command("add")
def add_command(
    url: Annotated[str, typer.Argument(help="The URL, domain or IP address the verdict was about.")],
    kind: Annotated[str, typer.Option(help="false_positive or confirmed_malicious.")],
    analyst: Annotated[str, typer.Option(help="Who says so.")],
    scope: Annotated[str, typer.Option(help="url or host: this URL only, or its host and its subdomains.")] = "url",
    note: Annotated[str, typer.Option(help="Why (optional).")] = "",
    db: FeedbackDb = None,
    model_dir: Annotated[Path, typer.Option(file_okay=False, help="Model folder: a host-wide correction may not "
                                            "block its pinned popular sites and public DNS resolvers, nor allowlist "
                                            "a ranked domain with all its sites.")] = Path("models"),
) -> None:
    """Record a correction (once: the same active correction is not written twice)."""
    from rich.console import Console

    from cybersentinel.cli.options import pinned_list
    from cybersentinel.ops.blocklist import Guard

    store = _store(db)
    try:
        guard = None
        if scope == "host":
            console = Console(stderr=True)
            guard = Guard(popularity=pinned_list(model_dir, console, "popularity"),
                          addresses=pinned_list(model_dir, console, "resolvers"))
        store.migrate()
        item, created = store.add(url, kind, scope, analyst, note, guard=guard)
    except ValueError as exc:  # FeedbackError and its kinds
        raise _fail(exc) from None
    state = "recorded" if created else f"already recorded by {item.analyst} at {item.created_at}"
    typer.echo(printable(f"#{item.id} {item.kind} {item.scope} {item.target}: {state}"))


@feedback_app.command("revoke")
def revoke_command(
    feedback_id: Annotated[int, typer.Argument(help="The correction's number (`feedback list`).")],
    analyst: Annotated[str, typer.Option(help="Who revokes it.")],
    reason: Annotated[str, typer.Option(help="Why.")],
    db: FeedbackDb = None,
) -> None:
    """Retract a correction: it stays in the history, marked revoked (who, when, why)."""
    try:
        item = _store(db).revoke(feedback_id, analyst, reason)
    except ValueError as exc:  # FeedbackError and its kinds
        raise _fail(exc) from None
    typer.echo(printable(f"#{item.id} revoked by {item.revoked_by} at {item.revoked_at}: {item.revoke_reason}"))


@feedback_app.command("list")
def list_command(
    active: Annotated[bool, typer.Option("--active", help="Only the corrections in effect.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON lines, every field.")] = False,
    db: FeedbackDb = None,
) -> None:
    """Every correction, oldest first, revoked ones included unless --active."""
    try:
        items = _store(db).list(active_only=active)
    except ValueError as exc:  # FeedbackError and its kinds
        raise _fail(exc) from None
    for item in items:
        if as_json:
            typer.echo(json.dumps(item.as_dict(), ensure_ascii=False))
        else:
            state = "active" if item.active else f"revoked by {item.revoked_by}: {item.revoke_reason}"
            fields = (f"#{item.id}", item.created_at, item.analyst, item.kind, item.scope, item.target, state,
                      item.note)
            typer.echo("\t".join(printable(field) for field in fields))  # a tab or newline in a value: escaped


@feedback_app.command("export")
def export_command(
    out_dir: Annotated[Path, typer.Option("--out-dir", "-o", file_okay=False, help="Folder for the files.")
                       ] = Path("feedback"),
    db: FeedbackDb = None,
) -> None:
    """Write the active host corrections as `allow.txt` and `block.txt` (for --allow-file/--block-file anywhere)
    and the whole history as `feedback.jsonl`. Commands that take --feedback-db read the store directly."""
    from cybersentinel.core.files import atomic_path

    try:
        items = _store(db).list()
    except ValueError as exc:  # FeedbackError and its kinds
        raise _fail(exc) from None
    active = [i for i in items if i.active and i.scope == "host"]
    files = {
        "allow.txt": sorted({i.target for i in active if i.kind == "false_positive"}),
        "block.txt": sorted({i.target for i in active if i.kind == "confirmed_malicious"}),
        "feedback.jsonl": [json.dumps(i.as_dict(), ensure_ascii=False) for i in items],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, lines in files.items():
        with atomic_path(out_dir / name) as tmp:
            tmp.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
        typer.echo(f"{out_dir / name}: {len(lines)} lines")

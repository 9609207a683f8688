"""`cybersentinel etl`: schema migrations and idempotent loads into PostgreSQL or MongoDB."""

from __future__ import annotations

from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from cybersentinel.cli.options import FeedsAlias, feeds_dir_or_alias
from cybersentinel.ops.etl import (
    SCHEMA_VERSION,
    LoadError,
    load_mongodb,
    load_postgres,
    migrate_mongodb,
    migrate_postgres,
    prepare_feed_entries,
    read_url_table,
    with_mongo,
)

etl_app = typer.Typer(help="Load validated URLs and feed entries into PostgreSQL or MongoDB.", no_args_is_help=True)


class Target(StrEnum):
    postgres = "postgres"
    mongodb = "mongodb"


ToOption = Annotated[Target, typer.Option("--to", help="Database to write to.")]


DsnEnvOption = Annotated[str, typer.Option(help="Environment variable (or .env entry) holding the PostgreSQL DSN.")]


UriEnvOption = Annotated[str, typer.Option(help="Environment variable (or .env entry) holding the MongoDB URI.")]


DEFAULT_VALIDATED = Path("data/validated.parquet")


DatabaseOption = Annotated[str, typer.Option(help="MongoDB database (default: the URI's, else cybersentinel).")]


def _fail(message: str) -> typer.Exit:
    from rich.console import Console
    from rich.markup import escape

    # escaped, no emoji codes: a path or a server's text is data (`alice:1234:` is no :1234: emoji); soft wrap: one line
    Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {escape(message)}", highlight=False, emoji=False)
    return typer.Exit(2)


@etl_app.command("migrate")
def migrate_command(to: ToOption, dsn_env: DsnEnvOption = "CYBERSENTINEL_PG_DSN",
                    uri_env: UriEnvOption = "CYBERSENTINEL_MONGODB_URI", database: DatabaseOption = "") -> None:
    """Create or upgrade the schema: PostgreSQL tables, keys and indexes; MongoDB indexes."""
    from cybersentinel.ingest.base import SourceError
    from cybersentinel.ingest.database import setting_from_env

    try:
        if to is Target.postgres:
            applied = migrate_postgres(setting_from_env(dsn_env, "etl migrate"))
        else:
            applied = with_mongo(migrate_mongodb, uri_env, database or _default_mongo_db(uri_env))
    except (LoadError, SourceError) as exc:
        raise _fail(str(exc)) from None
    typer.echo(f"applied migrations {applied}" if applied else f"schema already at version {SCHEMA_VERSION}")


def _default_mongo_db(uri_env: str) -> str | None:
    """The URI's database if it names one, else ``cybersentinel``."""
    import os
    from urllib.parse import urlsplit

    try:
        path = urlsplit(os.environ.get(uri_env, "")).path.strip("/")
    except ValueError:  # a malformed URI: connecting reports it (without the URI)
        return None
    return None if path else "cybersentinel"


@etl_app.command("load")
def load_command(
    to: ToOption,
    validated: Annotated[Path | None, typer.Option(
        help=f"Validated URL table (parquet) from the pipeline. Default: {DEFAULT_VALIDATED}, skipped when absent; "
             "a path given here must exist.", show_default=False)] = None,
    feeds: Annotated[Path, typer.Option("--feeds-dir", help="Feed snapshot folder (`cybersentinel feeds refresh`).")
                     ] = Path("data/feeds"),
    feeds_alias: FeedsAlias = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Documents per MongoDB bulk write.")] = 1000,
    retries: Annotated[int, typer.Option(min=0, help="Retries while the server is unreachable.")] = 3,
    dsn_env: DsnEnvOption = "CYBERSENTINEL_PG_DSN",
    uri_env: UriEnvOption = "CYBERSENTINEL_MONGODB_URI",
    database: DatabaseOption = "",
) -> None:
    """Upsert validated URLs and feed entries (idempotent); rejected rows go to the quarantine table, and rows of
    a loaded source that its new table no longer holds are deleted."""
    import time

    from rich.console import Console
    from rich.table import Table as RichTable

    from cybersentinel.ingest.base import SourceError
    from cybersentinel.ingest.database import setting_from_env

    console = Console(stderr=True)
    feeds = feeds_dir_or_alias(feeds, feeds_alias)
    batches = []
    if validated is not None and not validated.is_file():  # a mistyped path must not load only the feeds
        problem = "is not a file" if validated.exists() else "does not exist"
        raise _fail(f"--validated {validated} {problem}: nothing was loaded")
    validated = validated or DEFAULT_VALIDATED
    if validated.is_file():
        try:
            batches.append(read_url_table(validated))
        except LoadError as exc:  # checked before any connection: a wrong file is not a database problem
            raise _fail(str(exc)) from None
    else:
        console.print(f"[yellow]no URL table at {validated}; skipping labelled URLs[/yellow]")
    if feeds.is_dir():
        try:
            batches.append(prepare_feed_entries(feeds))
        except LoadError as exc:
            console.print(f"[yellow]{exc}; skipping feed entries[/yellow]")
    else:
        console.print(f"[yellow]no feed folder at {feeds}; skipping feed entries[/yellow]")
    if not batches:
        raise _fail("nothing to load")
    started = time.perf_counter()
    try:
        if to is Target.postgres:
            counts = load_postgres(setting_from_env(dsn_env, "etl load"), batches, {"retries": retries})
        else:
            counts = with_mongo(lambda db: load_mongodb(db, batches, batch_size), uri_env,
                                database or _default_mongo_db(uri_env), retries=retries)
    except (LoadError, SourceError) as exc:
        raise _fail(str(exc)) from None
    seconds = time.perf_counter() - started
    table = RichTable("table", "inserted", "updated", "unchanged", "rejected", "deleted", title=f"etl load --to {to}")
    for name, count in counts.items():
        table.add_row(name, *(f"{v:,}" for v in asdict(count).values()))
    Console().print(table)
    rows = sum(len(b.accepted) + len(b.rejected) for b in batches)
    console.print(f"{rows:,} rows in {seconds:.1f}s ({rows / seconds:,.0f} rows/s)")
    rejected = sum(c.rejected for c in counts.values())
    if rejected:
        console.print(f"[yellow]{rejected:,} rejected rows are in the quarantine table with their reasons[/yellow]")

"""One entry point over every source kind (the Hydra ``source`` group: ``files``, ``postgres``, ``mongodb``,
``json_api``): read a dataset source, or fingerprint what reading it would give now. A dataset source with
``reader: feedback`` (analyst feedback, conf/collection/feedback.yaml) is read from the feedback store whatever
the origin."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from cybersentinel.core.config import is_feedback
from cybersentinel.ingest.base import Ingested, SourceError
from cybersentinel.ingest.files import read_files
from cybersentinel.ingest.fingerprint import files_snapshot

SOURCE_KINDS = ("files", "postgres", "mongodb", "json_api")


def ingest(source: Mapping[str, Any], origin: Mapping[str, Any], mirror: str | None = None,
           on_chunk: Callable[[int], None] | None = None) -> Ingested:
    """Read one dataset source (``params["dataset"]["sources"][i]``) from the configured origin
    (``params["source"]``). ``on_chunk(rows_so_far)`` is called as database/API rows stream in."""
    if is_feedback(source):
        from cybersentinel.ingest.feedback import read_feedback

        return read_feedback(source, on_chunk)
    kind = origin.get("kind", "files")
    if kind == "files":
        return read_files(source, mirror)
    if kind == "postgres":
        from cybersentinel.ingest.postgres import read_postgres

        return read_postgres(source["name"], origin, on_chunk)
    if kind == "mongodb":
        from cybersentinel.ingest.mongodb import read_mongodb

        return read_mongodb(source["name"], origin, on_chunk)
    if kind == "json_api":
        from cybersentinel.ingest.json_api import read_json_api

        return read_json_api(source["name"], origin, on_chunk)
    raise SourceError(f"unknown source kind {kind!r}; expected one of {', '.join(SOURCE_KINDS)}")


def snapshot(source: Mapping[str, Any], origin: Mapping[str, Any]) -> dict[str, Any]:
    """The fingerprint of what :func:`ingest` would read now, computed as cheaply as the origin allows
    (checksums from the config for files; ordered keys and versions only for databases)."""
    if is_feedback(source):
        from cybersentinel.ingest.feedback import feedback_snapshot

        return feedback_snapshot(source)
    kind = origin.get("kind", "files")
    if kind == "files":
        return files_snapshot(source)
    if kind == "postgres":
        from cybersentinel.ingest.postgres import postgres_snapshot

        return postgres_snapshot(source["name"], origin)
    if kind == "mongodb":
        from cybersentinel.ingest.mongodb import mongodb_snapshot

        return mongodb_snapshot(source["name"], origin)
    if kind == "json_api":
        from cybersentinel.ingest.json_api import json_api_snapshot

        return json_api_snapshot(source["name"], origin)
    raise SourceError(f"unknown source kind {kind!r}; expected one of {', '.join(SOURCE_KINDS)}")

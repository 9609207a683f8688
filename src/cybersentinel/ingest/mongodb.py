"""MongoDB as an ingest source: documents streamed in key order through a batched cursor."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from cybersentinel.core.retry import one_line, retry_call
from cybersentinel.ingest.base import Ingested, SourceError, utc_now
from cybersentinel.ingest.database import (
    Collected,
    finish_read,
    setting_from_env,
    unique_ordered,
    versioned_columns,
)

MONGODB_URI_ENV = "CYBERSENTINEL_MONGODB_URI"


def describe_mongodb_uri(uri: str) -> str:
    """The hosts of a MongoDB URI, never its credentials (whatever follows the last "@", up to the path), for a
    malformed URI too."""
    after = uri.partition("://")[2] or uri
    return re.split(r"[/?]", after.rpartition("@")[2], maxsplit=1)[0] or "?"


def mongo_client(uri: str, spec: Mapping[str, Any]):
    """A client that fails fast when the server is down (the caller retries a bounded number of times)."""
    import pymongo
    from pymongo.errors import ConfigurationError

    timeout_ms = int(float(spec.get("connect_timeout_s", 10)) * 1000)
    try:
        return pymongo.MongoClient(uri, serverSelectionTimeoutMS=timeout_ms, connectTimeoutMS=timeout_ms,
                                   appname="cybersentinel")
    except (ValueError, ConfigurationError) as exc:  # pymongo's parser raises both; messages redacted
        raise SourceError(f"the MongoDB URI for {describe_mongodb_uri(uri)} is not valid: {one_line(exc)}") from None


def mongo_collection(client, spec: Mapping[str, Any], name: str | None = None):
    return client.get_database(spec.get("database") or None)[name or spec["collection"]]


def _mongo_read(source_name: str, spec: Mapping[str, Any], fields: Sequence[str] | None,
                on_docs: Callable[[list[dict]], None], reset: Callable[[], None]) -> str:
    from pymongo import errors

    uri = setting_from_env(spec.get("uri_env", MONGODB_URI_ENV), f"mongodb source {source_name}")
    what = f"mongodb source {source_name} ({describe_mongodb_uri(uri)}, collection {spec['collection']})"
    query = dict(spec.get("filter") or {})
    if spec.get("source_field"):
        query[spec["source_field"]] = source_name
    projection = None
    if fields is not None:
        projection = {name: 1 for name in fields} | ({} if "_id" in fields else {"_id": 0})
    batch = int(spec.get("batch_size", 10_000))

    def attempt() -> None:
        reset()
        client = mongo_client(uri, spec)
        try:
            cursor = mongo_collection(client, spec).find(query, projection)
            cursor = cursor.sort([(k, 1) for k in spec["key"]]).batch_size(batch)
            if spec.get("max_time_ms"):
                cursor = cursor.max_time_ms(int(spec["max_time_ms"]))
            docs: list[dict] = []
            for doc in cursor:
                docs.append(doc)
                if len(docs) == batch:
                    on_docs(docs)
                    docs = []
            if docs:
                on_docs(docs)
        except errors.ExecutionTimeout as exc:
            raise SourceError(f"{what}: query exceeded max_time_ms={spec.get('max_time_ms')} "
                              f"({one_line(exc)})") from None
        except errors.OperationFailure as exc:  # refused credentials, bad filter: retrying cannot help
            raise SourceError(f"{what}: {one_line(exc)}") from None
        except errors.ConfigurationError as exc:
            raise SourceError(f"{what}: {one_line(exc)}") from None
        finally:
            client.close()

    retry_call(attempt, what=what, attempts=int(spec.get("retries", 3)) + 1, backoff=float(spec.get("backoff_s", 1.0)),
               transient=(errors.ConnectionFailure,), error=SourceError)
    return what


def read_mongodb(source_name: str, spec: Mapping[str, Any],
                 on_chunk: Callable[[int], None] | None = None) -> Ingested:
    """The documents of one dataset source from MongoDB, in key order, as its tidy table."""
    versioned = versioned_columns(spec)
    fields = unique_ordered([*spec["columns"], *versioned]) if spec.get("columns") else None
    collected = Collected(f"mongodb source {source_name}", len(spec["key"]), on_chunk)

    def on_docs(docs: list[dict]) -> None:
        collected.add(([doc.get(name) for name in versioned] for doc in docs), pd.DataFrame(docs, dtype=object))

    started = utc_now()
    what = _mongo_read(source_name, spec, fields, on_docs, collected.reset)
    return finish_read(what, source_name, spec, collected, started, drop=[spec.get("source_field") or "", "_id"])


def mongodb_snapshot(source_name: str, spec: Mapping[str, Any]) -> dict[str, Any]:
    versioned = versioned_columns(spec)
    collected = Collected(f"mongodb source {source_name}", len(spec["key"]))
    _mongo_read(source_name, spec, versioned,
                lambda docs: collected.add([doc.get(name) for name in versioned] for doc in docs), collected.reset)
    return collected.snapshot()

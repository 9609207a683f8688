"""What every source produces: the tidy table (the source's columns, ``label`` as int8 with 1 = phishing,
``source`` and ``snapshot``), the ``Ingested`` result with its fingerprint, and ``SourceError``."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd


class SourceError(RuntimeError):
    """An upstream file is missing, corrupt or unreadable; the message names it."""


def map_labels(raw: pd.Series, labels: Mapping[Any, int], name: str) -> pd.Series:
    """Map raw label values to 0/1; an unmapped value is an error, never a silently dropped row."""
    mapping = {str(k): int(v) for k, v in labels.items()}
    as_text = raw.astype(str)
    unknown = sorted(set(as_text) - set(mapping))
    if unknown:
        raise SourceError(f"{name}: label values {unknown[:5]} are not in the configured mapping {mapping}")
    return as_text.map(mapping).astype("int8")


def utc_now() -> str:
    """A fetch time for logs and MLflow (never for DVC outputs, which must not change when data do not)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Ingested:
    """One dataset source read into its tidy table, with what was fetched when (for logs, not outputs)."""

    table: pd.DataFrame
    snapshot: dict[str, Any]
    fetches: list[dict[str, Any]]


def expand_json_column(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    """Replace a column of JSON objects by one column per key, in place of the original column and in
    the keys' first-seen order (a missing key is a missing value). A row without the object (SQL's NULL, or a
    document without the field, which pandas reads as NaN) has none of the keys."""
    values = frame[column].map(lambda v: v if isinstance(v, Mapping) else ({} if is_missing(v) else v))
    bad = values[~values.map(lambda v: isinstance(v, Mapping))]
    if len(bad):
        raise SourceError(f"column {column!r} should hold JSON objects; {len(bad)} rows do not, "
                          f"e.g. {bad.iloc[0]!r:.80}")
    expanded = pd.DataFrame.from_records(values.tolist(), index=frame.index)
    clash = sorted(set(expanded.columns) & (set(frame.columns) - {column}))
    if clash:
        raise SourceError(f"keys {clash[:5]} of column {column!r} clash with columns of the same name")
    at = frame.columns.get_loc(column)
    return pd.concat([frame.iloc[:, :at], expanded, frame.iloc[:, at + 1:]], axis=1)


def is_missing(value: Any) -> bool:
    """None, or NaN (how pandas fills a field a record or document left out)."""
    return value is None or isinstance(value, float) and value != value  # NaN is the one value unequal to itself


def labels_from(raw: pd.Series, spec: Mapping[str, Any], where: str) -> pd.Series:
    """0/1 labels from a source column: mapped through ``spec["labels"]`` if given, else already 0/1."""
    if spec.get("labels"):
        return map_labels(raw, spec["labels"], where)
    numeric = pd.to_numeric(raw, errors="coerce")
    bad = raw[~numeric.isin([0, 1])]
    if len(bad):
        examples = ", ".join(repr(v) for v in bad.drop_duplicates().head(5))
        raise SourceError(f"{where}: {len(bad)} rows have a label that is not 0 or 1 (e.g. {examples}); "
                          "map raw values with source.labels")
    return numeric.astype("int8")


def require_characters(payload: Any, where: str) -> None:
    """A `SourceError` if decoded JSON holds a lone surrogate: ``"\\ud800"`` is valid JSON but no character, and the
    table could not be built or written with it."""
    try:
        json.dumps(payload, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise SourceError(f"{where}: a text holds a lone surrogate escape (\\u{ord(exc.object[exc.start]):04x}), "
                          f"which is no character: {exc.object[max(exc.start - 40, 0):exc.start]!r} before it"
                          ) from None


def tidy(frame: pd.DataFrame, spec: Mapping[str, Any], source_name: str, snapshot: str,
         drop: Sequence[str] = ()) -> pd.DataFrame:
    """The tidy-table contract for records from a database or API: the configured columns (JSON objects
    expanded), then ``label``, ``source`` and ``snapshot``; every row kept or a clear error."""
    where = f"{spec['kind']} source {source_name}"
    if spec.get("columns"):
        missing = [c for c in spec["columns"] if c not in frame.columns]
        if missing:
            raise SourceError(f"{where}: columns {missing} not in the result (it has {list(frame.columns)[:20]})")
        frame = frame[list(spec["columns"])]
    else:
        frame = frame.drop(columns=[c for c in drop if c in frame.columns])
    if spec.get("expand_json") and spec["expand_json"] in frame.columns:
        frame = expand_json_column(frame, spec["expand_json"])
    frame = frame.reset_index(drop=True)
    if spec.get("label") is not None:  # a feed whose records all share one label (URLhaus: all malicious)
        label = pd.Series(int(spec["label"]), index=frame.index, dtype="int8")
        frame = frame.drop(columns=[spec.get("label_column", "label")], errors="ignore")
    else:
        column = spec.get("label_column", "label")
        if column not in frame.columns:
            raise SourceError(f"{where}: no label column {column!r} (columns: {list(frame.columns)[:20]})")
        label = labels_from(frame.pop(column), spec, where)
    frame["label"] = label
    frame["source"] = source_name
    frame["snapshot"] = snapshot
    return frame

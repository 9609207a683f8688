"""Schemas (pandera) and data-quality accounting for the ingested tables."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import pandera.pandas as pa

from cybersentinel.data.prepare import feature_columns, feature_vector_key
from cybersentinel.url.parsing import normalise, split_url

MAX_URL_LENGTH = 65_536


class DataValidationError(ValueError):
    """The data breaks its schema; the message lists the failing checks and example values."""


def schema_for(frame: pd.DataFrame, dataset: Mapping[str, Any]) -> pa.DataFrameSchema:
    """The schema one dataset's tidy table must satisfy."""
    columns: dict[str, pa.Column] = {
        "label": pa.Column(int, pa.Check.isin([0, 1]), coerce=True),
        "source": pa.Column(str, pa.Check.str_length(min_value=1)),
        "snapshot": pa.Column(str, pa.Check.str_matches(r"^[0-9a-f]{16}$")),
    }
    if dataset["kind"] == "url" or "url" in frame.columns:
        columns["url"] = pa.Column(str, [pa.Check.str_length(1, MAX_URL_LENGTH),
                                         pa.Check(lambda s: s.str.strip() != "", element_wise=False,
                                                  error="blank URL"),
                                         # a NUL byte ends the text for C tools (PostgreSQL refuses it): the ETL
                                         # would drop the row, so the table is refused here instead
                                         pa.Check(lambda s: ~s.str.contains("\x00", regex=False),
                                                  element_wise=False, error="NUL byte in URL")])
    if dataset["kind"] == "tabular":
        allowed = dataset.get("feature_values")
        checks = [pa.Check.isin(allowed)] if allowed else [pa.Check(lambda s: s.notna() & (s.abs() < float("inf")),
                                                                    error="missing or infinite value")]
        for name in feature_columns(frame, dataset):
            columns[name] = pa.Column(float, checks, coerce=True, nullable=False)
    return pa.DataFrameSchema(columns, strict=False)


def validate_table(frame: pd.DataFrame, dataset: Mapping[str, Any]) -> pd.DataFrame:
    """Check ``frame`` against its schema, collecting every failure into one readable error."""
    if dataset["kind"] == "tabular" and not feature_columns(frame, dataset):
        raise DataValidationError(f"{dataset['name']}: no feature columns found")
    _check_before_coercion(frame, dataset)
    try:
        return schema_for(frame, dataset).validate(frame, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        lines = [f"{dataset['name']}: {len(cases)} schema violations"]
        for (column, check), group in cases.groupby(["column", "check"], dropna=False, sort=True):
            examples = ", ".join(repr(v)[:60] for v in group["failure_case"].head(3))
            lines.append(f"  column {column!r} fails {check}: {len(group)} rows, e.g. {examples}")
        raise DataValidationError("\n".join(lines)) from None


def _check_before_coercion(frame: pd.DataFrame, dataset: Mapping[str, Any]) -> None:
    """What the schema's coercion would hide or misreport: a label of 0.5 or -0.9 becomes 0 as an integer, and a
    URL that is no text (a record without one: None, a number) fails the text checks with an `AttributeError`."""
    problems = []
    if "label" in frame.columns:
        label = pd.to_numeric(frame["label"], errors="coerce")
        bad = frame["label"][~label.isin([0, 1])]
        if len(bad):
            problems.append(f"  column 'label' is not 0 or 1: {len(bad)} rows, e.g. "
                            + ", ".join(repr(v)[:60] for v in bad.head(3)))
    if "url" in frame.columns:
        bad = frame["url"][~frame["url"].map(lambda v: isinstance(v, str)).astype(bool)]
        if len(bad):
            problems.append(f"  column 'url' is missing or not text: {len(bad)} rows, e.g. "
                            + ", ".join(repr(v)[:60] for v in bad.head(3)))
    if problems:
        raise DataValidationError("\n".join([f"{dataset['name']}: {len(problems)} schema violations", *problems]))


def url_sanity(urls: pd.Series) -> dict[str, Any]:
    """Counts of URL shapes that matter for features and for shortcut learning."""
    parts = [split_url(u) for u in urls]
    lengths = urls.str.len()
    return {
        "empty": int((urls.str.strip() == "").sum()),
        "with_scheme": int(sum(bool(p.scheme) for p in parts)),
        "https": int(sum(p.scheme == "https" for p in parts)),
        "leading_www": int(sum(p.host.startswith("www.") for p in parts)),
        "bare_homepage": int(sum(p.path.strip("/") == "" and not p.query for p in parts)),
        "host_is_ip": int(sum(p.is_ip for p in parts)),
        "no_public_suffix": int(sum(not p.suffix and not p.is_ip for p in parts)),
        "non_ascii": sum(not u.isascii() for u in urls),
        "control_chars": int(urls.str.contains(r"[\x00-\x1f\x7f]", regex=True).sum()),
        "max_length": int(lengths.max()) if len(urls) else 0,
        "median_length": float(lengths.median()) if len(urls) else 0.0,
    }


def quality_report(frame: pd.DataFrame, dataset: Mapping[str, Any]) -> dict[str, Any]:
    """Duplicate, conflict, balance, overlap and URL-sanity accounting for one dataset."""
    if dataset["kind"] == "url":
        key = frame["url"].map(normalise)
        exact = frame.duplicated(subset=["url"]).sum()
    else:
        key = feature_vector_key(frame, feature_columns(frame, dataset))
        exact = frame.duplicated(subset=[*feature_columns(frame, dataset), "label"]).sum()
    labels_per_key = frame.groupby(key)["label"].nunique()
    sources_per_key = frame.groupby(key)["source"].nunique()
    report: dict[str, Any] = {
        "dataset": dataset["name"],
        "rows": len(frame),
        "positives": int(frame["label"].sum()),
        "positive_share": round(float(frame["label"].mean()), 4),
        "exact_duplicates": int(exact),
        "normalised_duplicates": int(key.duplicated().sum()),
        "conflicting_label_keys": int((labels_per_key > 1).sum()),
        "keys_in_several_sources": int((sources_per_key > 1).sum()),
        "by_source": {},
    }
    for source, part in frame.groupby("source", sort=True):
        entry = {"rows": len(part), "positives": int(part["label"].sum())}
        if "url" in part.columns:
            entry["urls"] = {label: url_sanity(sub["url"]) for label, sub in
                             (("legitimate", part[part["label"] == 0]), ("phishing", part[part["label"] == 1]))}
        report["by_source"][source] = entry
    return report


def url_slices(urls: pd.Series) -> dict[str, np.ndarray]:
    """Boolean masks of URL shapes that were shortcut signals in the training collections."""
    parts = [split_url(u) for u in urls]
    with_path = pd.Series([bool(p.path.strip("/")) or bool(p.query) for p in parts], index=urls.index)
    www = pd.Series([p.host.startswith("www.") for p in parts], index=urls.index)
    https = pd.Series([p.scheme == "https" for p in parts], index=urls.index)
    no_scheme = pd.Series([not p.scheme for p in parts], index=urls.index)
    return {"bare_homepage": (~with_path).to_numpy(), "with_path": with_path.to_numpy(),
            "leading_www": www.to_numpy(), "no_www": (~www).to_numpy(),
            "https": https.to_numpy(), "no_scheme": no_scheme.to_numpy()}

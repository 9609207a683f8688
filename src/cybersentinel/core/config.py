"""Reading the composed configuration (params.yaml) the same way everywhere; no heavy imports, so the
snapshot stage that runs on every `dvc repro` stays quick."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def dataset_sources(dataset: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A dataset's sources in their configured order, each with its ``name``: Hydra composes them as a mapping
    (``sources.<name>``, one file per collection in conf/collection/); a plain list works too."""
    sources = dataset.get("sources") or []
    if isinstance(sources, Mapping):
        return [{**spec, "name": spec.get("name", name)} for name, spec in sources.items()]
    return [dict(spec) for spec in sources]


FEEDBACK_READER = "feedback"


def is_feedback(source: Mapping[str, Any]) -> bool:
    """A dataset source read from the analyst feedback store (``reader: feedback``) whatever the origin: it
    trains, weighted (params ``feedback.weight``), but is no collection of its own for the generalisation study."""
    return source.get("reader") == FEEDBACK_READER


def feedback_source_names(dataset: Mapping[str, Any]) -> frozenset[str]:
    return frozenset(s["name"] for s in dataset_sources(dataset) if is_feedback(s))

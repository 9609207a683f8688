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

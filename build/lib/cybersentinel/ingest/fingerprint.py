"""Snapshot fingerprints: the identity of the data an ingest reads, without timestamps, so that DVC reruns
ingest exactly when the data changed. Standard library only: the snapshot stage runs on every `dvc repro`
and must stay cheap to start.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Fingerprint:
    """Row count plus a sha256 of the rows' ordered key (and version) values: the identity of a database
    or API snapshot. Two reads give the same fingerprint exactly when they saw the same keyed rows."""

    rows: int = 0
    _digest: Any = field(default_factory=hashlib.sha256, repr=False)

    def add(self, values: Sequence[Any]) -> None:
        self._digest.update(json.dumps(list(values), default=str).encode() + b"\n")
        self.rows += 1

    @property
    def sha256(self) -> str:
        return hashlib.sha256(f"{self.rows}:{self._digest.hexdigest()}".encode()).hexdigest()

    def as_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "fingerprint": self.sha256, "snapshot": self.sha256[:16]}


def files_snapshot(source: Mapping[str, Any]) -> dict[str, Any]:
    fingerprint = Fingerprint()
    for spec in source["files"]:
        fingerprint.add([spec["name"], spec["sha256"]])
    return {**fingerprint.as_dict(), "files": {f["name"]: f["sha256"] for f in source["files"]}}

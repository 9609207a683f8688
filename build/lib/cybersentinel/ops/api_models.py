"""The service's responses as pydantic models, for the OpenAPI schema (`/openapi.json`, `/docs`).

They document; they do not filter: the routes keep returning their dicts and responses (a response model
would validate every answer on the hot path), and ``extra="allow"`` keeps fields added later visible. Imported
only by `create_app`, so `cybersentinel --help` does not load pydantic.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Documented(BaseModel):
    model_config = ConfigDict(extra="allow")


class ModelRef(Documented):
    name: str = Field(description="registered model name")
    version: str = Field(description="first 12 hex characters of the model file's SHA-256")


class Health(ModelRef):
    status: str = Field(description="`ok` once the model is loaded and verified")
    intel: bool = Field(description="whether threat-intel feeds are loaded (else the model's score alone)")


class ScoreResult(Documented):
    url: str = Field(description="the submitted value, unchanged")
    score: float | None = Field(description="0-1 after the decision policy; null when `error` is set")
    verdict: str | None = Field(description="`malicious`, `suspicious` or `benign` (empty when `error` is set)")
    reasons: str | None = Field(description="why, in words an analyst can check; empty for a plain benign verdict")
    model_score: float | None = Field(description="the URL model's own score, before the policy")
    feeds: str | None = Field(description="feeds that list the host or address, comma separated")
    error: str | None = Field(description="why the value could not be scored (empty when it was)")


class ScoreResponse(Documented):
    model: ModelRef
    count: int = Field(description="number of results: one per submitted value, in order")
    results: list[ScoreResult]


class ModelCard(ModelRef):
    model: str = Field(description="estimator family, e.g. lightgbm")
    dataset: str
    threshold: float = Field(description="`malicious` from this score")
    suspicious_from: float = Field(description="`suspicious` from this score")
    policy: dict[str, Any] = Field(description="the decision policy's parameters")
    validation_metrics: dict[str, Any] | None = None
    test_metrics: dict[str, Any] | None = Field(None, description="reports/metrics.json, when it names this model")
    hashes: dict[str, Any] = Field(description="SHA-256 of the model, its compiled form and its inputs")


class ErrorResponse(BaseModel):
    detail: str | list[dict[str, Any]] = Field(description="what was wrong; a list of field problems for 422")


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the error statuses a route can answer with."""
    meaning = {400: "malformed body (invalid JSON, not UTF-8, client left mid-body)",
               401: "missing or invalid API key (only when keys are configured)",
               413: "request body over the size limit", 415: "content type is neither JSON nor text/plain",
               422: "valid JSON of the wrong shape, an empty body, or too many URLs"}
    return {status: {"model": ErrorResponse, "description": meaning[status]} for status in statuses}

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
    source: str = Field(description="where the model came from: `dvc`, or the MLflow registry alias and version")


class FeedbackRecord(Documented):
    id: int
    url: str = Field(description="the URL, domain or IP the verdict was about, as given but for the password of "
                                 "its user-info (`user:***@host`)")
    scope: str = Field(description="`url` (this URL) or `host` (the host and its subdomains)")
    target: str = Field(description="what the correction covers: the normalised URL, or the host")
    kind: str = Field(description="`false_positive` or `confirmed_malicious`")
    label: int = Field(description="as training data: 1 = malicious")
    note: str
    analyst: str = Field(description="who said so")
    verdict: str | None = Field(description="the service's verdict when the correction was made")
    score: float | None
    model_version: str | None
    created_at: str
    revoked_at: str | None
    revoked_by: str | None
    revoke_reason: str | None
    active: bool


class FeedbackResponse(Documented):
    feedback: FeedbackRecord
    created: bool = Field(description="false: the same correction was already active, nothing was written")
    effect: str = Field(description="what the decision policy now does with the URL")


class FeedbackList(Documented):
    count: int = Field(description="corrections in this page")
    feedback: list[FeedbackRecord] = Field(description="in id order, after the `after` id, at most `limit` of them")
    next_after: int | None = Field(description="the cursor of the next page (send it as `after`); null on the last")


class ErrorResponse(BaseModel):
    detail: str | list[dict[str, Any]] = Field(description="what was wrong; a list of field problems for 422")


HOST_REFUSED = "Host header not among the trusted hosts (a text/plain body from the host check)"


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the error statuses a route can answer with. Every route can answer 400
    from the trusted-host check (plain text); the others are JSON ``{"detail": ...}``."""
    meaning = {400: "malformed body (invalid JSON, not UTF-8, client left mid-body)",
               401: "missing or invalid API key (only when keys are configured)",
               403: "cross-origin browser request without an API key; or, on the feedback routes, a scoring key "
                    "when feedback keys (CYBERSENTINEL_FEEDBACK_KEYS) are configured",
               404: "no such feedback", 408: "the body did not arrive within the body timeout (the connection is "
                                             "then closed)",
               409: "the feedback was already revoked",
               413: "request body over the size limit", 415: "content type is neither JSON nor text/plain",
               422: "valid JSON of the wrong shape, an empty body, too many URLs, a correction that cannot apply "
                    "(a host correction on a public suffix or reserved address), or a feedback id (or a page's "
                    "`after` or `limit`) that is not a whole number written with digits only, without a leading "
                    "zero, or is out of range",
               503: "the feedback store is unreachable or has no schema"}
    responses: dict[int | str, dict[str, Any]] = {
        400: {"description": HOST_REFUSED, "content": {"text/plain": {"schema": {"type": "string"}}}}}
    for status in statuses:
        responses[status] = {"model": ErrorResponse, "description": meaning[status]}
    if 400 in statuses:
        responses[400] = {"model": ErrorResponse, "description": f"{meaning[400]}; or {HOST_REFUSED}",
                          "content": {"text/plain": {"schema": {"type": "string"}}}}
    return responses

"""The floor for benchmarks/load_test.py: the service's server stack (uvicorn with the same workers and options,
FastAPI, the same JSON response class) with a bare POST /v1/score that reads the body and answers a constant
result without parsing, validating or scoring anything. Its latency at the same rate is what this machine gives
any request, so the service's p99 beside it is comparable across machines."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


class AsciiJSONResponse(JSONResponse):  # as the service renders its responses
    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


RESULT = {"model": {"name": "floor", "version": "0"}, "count": 1,
          "results": [{"url": "x", "score": 0.5, "verdict": "benign", "reasons": [], "error": None}]}

app = FastAPI(default_response_class=AsciiJSONResponse, openapi_url=None)


@app.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok", "name": "floor", "version": "0", "intel": False}


@app.post("/v1/score")
async def score(request: Request) -> AsciiJSONResponse:
    await request.body()
    return AsciiJSONResponse(RESULT)

"""The floor for benchmarks/load_test.py: the service's server stack (uvicorn with the same workers and options,
FastAPI with its native telemetry off, the same JSON response class) with a bare POST /v1/score that reads the
body and answers a constant result without parsing, validating or scoring anything. Its latency at the same rate
is what this machine gives any request, so the service's p99 beside it is comparable across machines.

The endpoint is a plain Starlette route, as the service's `POST /v1/score` is (ops/service.py places one before
FastAPI's): a FastAPI route here would cost the floor its dependency solving and response handling (~25 us of
CPU per request), which the service no longer pays, and so raise the floor."""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from cybersentinel.ops.service import TELEMETRY_OFF


class AsciiJSONResponse(JSONResponse):  # as the service renders its responses
    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


RESULT = {"model": {"name": "floor", "version": "0"}, "count": 1,
          "results": [{"url": "x", "score": 0.5, "verdict": "benign", "reasons": [], "error": None}]}

app = FastAPI(default_response_class=AsciiJSONResponse, openapi_url=None, telemetry=TELEMETRY_OFF)


@app.get("/healthz")
async def healthz() -> dict:
    return {"status": "ok", "name": "floor", "version": "0", "intel": False}


async def score(request: Request) -> AsciiJSONResponse:
    await request.body()
    return AsciiJSONResponse(RESULT)


app.add_route("/v1/score", score, methods=["POST"])

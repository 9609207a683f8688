"""What a one-URL request to the service goes through, kept short for latency: POST /v1/score is answered by a
plain Starlette route (FastAPI's route only documents it), and the metrics count its results after the answer is
sent. The answers themselves are checked in tests/test_service.py, tests/test_small_requests.py and
tests/test_observe.py."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.routing import APIRoute
from fixtures_model import REPO, model_dir  # noqa: F401
from starlette.routing import Match

from cybersentinel.ops.service import Settings, create_app
from cybersentinel.scoring.detector import Detector


@pytest.fixture(scope="module")
def detector(model_dir: Path) -> Detector:  # noqa: F811
    return Detector.from_dir(model_dir)


def scope(method: str, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> dict:
    return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
            "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
            "headers": [(b"host", b"127.0.0.1:8000"), *(headers or [])]}


async def call(app, request: dict, body: bytes = b"", on_send=None) -> list[dict]:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)
        if on_send is not None:
            await on_send(message)

    await app(request, receive, send)
    return sent


async def urls_scored(app) -> float:
    """cybersentinel_urls_scored_total as /metrics shows it now."""
    sent = await call(app, scope("GET", "/metrics"))
    for line in b"".join(m.get("body", b"") for m in sent).decode().splitlines():
        if line.startswith("cybersentinel_urls_scored_total "):
            return float(line.split()[1])
    return 0.0


def test_score_route_is_a_plain_starlette_route_and_fastapi_documents_it(model_dir: Path,  # noqa: F811
                                                                          detector: Detector) -> None:
    app = create_app(Settings(model_dir=model_dir, feeds_dir=None), detector)
    post = scope("POST", "/v1/score")
    answering = next(route for route in app.router.routes if route.matches(post)[0] == Match.FULL)
    assert not isinstance(answering, APIRoute)  # no dependency solving per request
    assert "/v1/score" in app.openapi()["paths"]


def test_scoring_metrics_are_counted_after_the_answer_is_sent(model_dir: Path, detector: Detector) -> None:  # noqa: F811
    app = create_app(Settings(model_dir=model_dir, feeds_dir=None), detector)
    seen: list[float] = []

    async def on_send(message: dict) -> None:
        if message["type"] == "http.response.body":
            seen.append(await urls_scored(app))

    async def run() -> list[dict]:
        body = json.dumps({"urls": ["a.example", "http://192.0.2.1/paypal/login.php"]}).encode()
        return await call(app, scope("POST", "/v1/score", [(b"content-type", b"application/json")]), body, on_send)

    loop = asyncio.new_event_loop()
    try:
        sent = loop.run_until_complete(run())
        after = loop.run_until_complete(urls_scored(app))
    finally:
        loop.close()
    assert sent[0]["status"] == 200 and json.loads(sent[1]["body"])["count"] == 2
    assert seen == [0.0]  # not yet counted when the body went out
    assert after == 2.0


def test_a_request_does_not_ask_opentelemetry_for_providers(model_dir: Path, detector: Detector,  # noqa: F811
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # with FastAPI's native telemetry on, every request asks the global providers whether one was set since
    from opentelemetry import _logs, metrics, trace

    asked: list[str] = []
    for module, name in ((trace, "get_tracer_provider"), (metrics, "get_meter_provider"),
                         (_logs, "get_logger_provider")):
        original = getattr(module, name)
        monkeypatch.setattr(module, name, lambda name=name, original=original: asked.append(name) or original())
    app = create_app(Settings(model_dir=model_dir, feeds_dir=None), detector)
    body = json.dumps({"urls": ["a.example"]}).encode()
    loop = asyncio.new_event_loop()
    try:
        sent = loop.run_until_complete(call(app, scope("POST", "/v1/score", [(b"content-type", b"application/json")]),
                                            body))
    finally:
        loop.close()
    assert sent[0]["status"] == 200
    assert asked == []


def test_the_floor_answers_through_the_same_kind_of_route_as_the_service() -> None:
    # benchmarks/load_test.py's floor: a FastAPI route there would cost it what the service's score route skips
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import load_floor
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    post = scope("POST", "/v1/score")
    answering = next(route for route in load_floor.app.router.routes if route.matches(post)[0] == Match.FULL)
    assert not isinstance(answering, APIRoute)
    loop = asyncio.new_event_loop()
    try:
        sent = loop.run_until_complete(call(load_floor.app, post, b'{"urls": ["a.example"]}'))
    finally:
        loop.close()
    assert sent[0]["status"] == 200 and json.loads(sent[1]["body"])["count"] == 1


WARMED = """
import sys
from pathlib import Path
from cybersentinel.features import lexical
from cybersentinel.ops.service import Settings, create_app
create_app(Settings(model_dir=Path(sys.argv[1]), feeds_dir=None, feedback_db=Path(sys.argv[2]) / "f.db"))
print(bool(lexical._texture.signatures), bool(lexical._skeletons.signatures))
"""


def test_start_up_loads_the_batch_path_kernels(model_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    # a worker's first large request must not compile (or load) the batch path's kernels: with a cold numba cache
    # that took seconds and a 1,000-URL batch of the load test timed out
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    found = subprocess.run([sys.executable, "-c", WARMED, str(model_dir), str(tmp_path)], capture_output=True,
                           text=True, env=env, cwd=tmp_path, timeout=600, check=True)
    assert found.stdout.split() == ["True", "True"]

"""`/docs` and the OpenAPI schema: Swagger UI is served by the app itself (vendored from the npm registry, hashes
recorded), the page references nothing outside the app and renders in Chromium with every other request
refused; every route documents its response body and the error statuses it can answer with."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from fixtures_model import model_dir, running_server  # noqa: F401
from test_web_page import CHROMIUM, CHROMIUM_ARGS, MISSING

from cybersentinel.ops.service import Settings, create_app

SWAGGER = Path(__file__).resolve().parents[1] / "src" / "cybersentinel" / "ops" / "web" / "swagger"
EXTERNAL = re.compile(r"""(?:src|href|url)\s*[=(]\s*["']?(?:https?:)?//""", re.I)


@pytest.fixture(scope="module")
def client(model_dir: Path) -> TestClient:  # noqa: F811
    return TestClient(create_app(Settings(model_dir=model_dir, feeds_dir=None)), base_url="http://127.0.0.1")


def recorded_hashes() -> dict[str, str]:
    text = (SWAGGER / "README.md").read_text()
    return dict(re.findall(r"^\| (\S+) \| `([0-9a-f]{64})` \|$", text, re.M))


def test_vendored_swagger_ui_is_the_recorded_release() -> None:
    hashes = recorded_hashes()
    assert set(hashes) == {"swagger-ui-bundle.js", "swagger-ui.css"}
    for name, digest in hashes.items():
        assert hashlib.sha256((SWAGGER / name).read_bytes()).hexdigest() == digest, name


def test_external_reference_pattern() -> None:
    assert EXTERNAL.search('<script src="https://cdn.jsdelivr.net/x.js">')
    assert EXTERNAL.search("<link href='//unpkg.com/a.css'>")
    assert not EXTERNAL.search('<script src="/static/swagger/swagger-ui-bundle.js">')


def test_docs_page_and_its_assets_come_from_the_app(client: TestClient) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert not EXTERNAL.search(page.text) and "http" not in page.text
    assert "'unsafe-inline'" not in page.headers["content-security-policy"].split("script-src")[1].split(";")[0]
    assets = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert "/static/swagger/swagger-ui-bundle.js" in assets and "/static/docs.js" in assets
    for asset in assets:
        assert client.get(asset).status_code == 200, asset
    init = client.get("/static/docs.js").text
    assert '"/openapi.json"' in init and "validatorUrl: null" in init


def test_schema_documents_every_response_and_error_status(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    expected = {("/healthz", "get"): {"200", "400"}, ("/v1/model", "get"): {"200", "400", "401"},
                ("/v1/score", "post"): {"200", "400", "401", "403", "408", "413", "415", "422"},
                ("/v1/feedback", "post"): {"200", "201", "400", "401", "403", "408", "413", "415", "422",
                                             "503"},
                ("/v1/feedback", "get"): {"200", "400", "401", "403", "422", "503"},
                ("/v1/feedback/{feedback_id}/revoke", "post"): {"200", "400", "401", "403", "404", "408", "409",
                                                                "413", "415", "422", "503"}}
    documented = {(path, method): operation["responses"] for path, methods in schema["paths"].items()
                  for method, operation in methods.items()}
    assert set(documented) == set(expected)  # the pages and /docs stay out of the schema
    for route, statuses in expected.items():
        responses = documented[route]
        assert set(responses) == statuses, route
        for status, response in responses.items():
            if status == "400" and route[1] == "get":  # only the trusted-host check: plain text
                assert set(response["content"]) == {"text/plain"}, route
                continue
            ref = response["content"]["application/json"]["schema"]["$ref"]  # a named model, not a bare object
            assert (ref == "#/components/schemas/ErrorResponse") == (status not in ("200", "201")), (route, status, ref)
    components = schema["components"]["schemas"]
    assert {"url", "score", "verdict", "reasons", "error"} <= set(components["ScoreResult"]["properties"])
    assert "results" in components["ScoreResponse"]["properties"]


def test_documented_shapes_match_what_the_routes_return(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()["components"]["schemas"]
    health = client.get("/healthz").json()
    assert set(schema["Health"]["required"]) <= set(health)
    scored = client.post("/v1/score", json={"urls": ["example.com"]}).json()
    assert set(schema["ScoreResponse"]["required"]) <= set(scored)
    assert set(schema["ScoreResult"]["required"]) <= set(scored["results"][0])
    card = client.get("/v1/model").json()
    assert set(schema["ModelCard"]["required"]) <= set(card)
    refused = client.post("/v1/score", content=b"{", headers={"content-type": "application/json"})
    assert refused.status_code == 400 and set(refused.json()) == set(schema["ErrorResponse"]["properties"])
    cross = client.post("/v1/score", json={"urls": ["example.com"]}, headers={"origin": "https://elsewhere.example"})
    assert cross.status_code == 403 and set(cross.json()) == set(schema["ErrorResponse"]["properties"])
    host = client.get("/healthz", headers={"host": "attacker.example"})
    assert host.status_code == 400 and host.headers["content-type"].startswith("text/plain")


@pytest.fixture(scope="module")
def server(model_dir: Path) -> Iterator[str]:  # noqa: F811
    with running_server(model_dir, "--no-access-log") as base:
        yield base


@pytest.mark.slow
@pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
def test_docs_render_in_chromium_with_nothing_from_outside(server: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    # one block per documented operation (health, model, score, the feedback routes...)
    schema = httpx.get(f"{server}/openapi.json").json()
    operations = sum(len(methods) for methods in schema["paths"].values())
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            elsewhere: list[str] = []
            problems: list[str] = []
            page.on("pageerror", lambda error: problems.append(str(error)))
            page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
            page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(server)
                       else (elsewhere.append(route.request.url), route.abort()))
            page.goto(f"{server}/docs")
            assert operations >= 3
            expect(page.locator(".opblock")).to_have_count(operations)
            expect(page.locator(".opblock-summary-path").first).to_be_visible()
            page.screenshot(path=str(tmp_path / "docs.png"), full_page=True)
            assert elsewhere == [] and problems == [], (elsewhere, problems)
        finally:
            browser.close()

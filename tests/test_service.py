"""The scoring API in process (FastAPI's test client): the contract, limits, API keys, the page's assets, and
property-based bad input (hypothesis): never a 5xx, and for valid requests one result per input, in order."""

from __future__ import annotations

import hashlib
import io
import json
import re
import socket
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from fixtures_model import REPO, model_dir  # noqa: F401
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cybersentinel.cli.app import app as cli_app
from cybersentinel.ops.service import Settings, create_app, key_matches, model_card, parse_api_keys, presented_key
from cybersentinel.scoring.detector import Detector

FEEDS = REPO.parent / "shared" / "data" / "feeds"
PHISHING = "http://ads-social-network-info.hol.es/2017/recovery-chekpoint-login.html"  # Ebbu2017, test split
LEGITIMATE = "https://en.wikipedia.org/wiki/Phishing"
LISTED_IP_URL = "http://1.10.16.5/index.php"  # inside FireHOL level 1 and Spamhaus DROP (1.10.16.0/20)
JSON = {"content-type": "application/json"}
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def post_json(client: TestClient, payload, **kwargs):
    # json.dumps escapes to ASCII, so any Python string (lone surrogates included) can be sent
    return client.post("/v1/score", content=json.dumps(payload), headers={**JSON, **kwargs.pop("headers", {})},
                       **kwargs)


@pytest.fixture(scope="module")
def detector(model_dir: Path) -> Detector:  # noqa: F811
    return Detector.from_dir(model_dir)


@pytest.fixture(scope="module")
def metrics_file(tmp_path_factory: pytest.TempPathFactory, detector: Detector) -> Path:
    path = tmp_path_factory.mktemp("reports") / "metrics.json"
    path.write_text(json.dumps({"model_sha256": detector.manifest["sha256"], "accuracy": 0.9, "roc_auc": 0.95,
                                "by_source": {"a": {"accuracy": 0.9}}}))
    return path


@pytest.fixture(scope="module")
def client(model_dir: Path, detector: Detector, metrics_file: Path) -> TestClient:  # noqa: F811
    feeds = FEEDS if FEEDS.is_dir() else None
    app = create_app(Settings(model_dir=model_dir, feeds_dir=feeds, metrics_path=metrics_file), detector)
    return TestClient(app, base_url="http://127.0.0.1")


@pytest.fixture(scope="module")
def small_client(model_dir: Path, detector: Detector) -> TestClient:  # noqa: F811
    limits = Settings(model_dir=model_dir, feeds_dir=None, max_batch=5, max_body_bytes=2048)
    return TestClient(create_app(limits, detector), base_url="http://127.0.0.1")


@pytest.fixture(scope="module")
def keyed_client(model_dir: Path, detector: Detector) -> TestClient:  # noqa: F811
    keys = Settings(model_dir=model_dir, feeds_dir=None, api_keys=("first-key", "second-key-longer"))
    return TestClient(create_app(keys, detector), base_url="http://127.0.0.1")


# ------------------------------------------------------------------------------------------------ contract


def test_health_names_the_loaded_model(client: TestClient, detector: Detector) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["version"] == detector.manifest["sha256"][:12]


def test_model_card_reports_identity_metrics_and_hashes(client: TestClient, detector: Detector) -> None:
    card = client.get("/v1/model").json()
    manifest = detector.manifest
    assert (card["name"], card["version"]) == (manifest["name"], manifest["sha256"][:12])
    assert card["threshold"] == pytest.approx(detector.threshold)
    assert card["hashes"]["sha256"] == manifest["sha256"]
    assert card["hashes"]["train_data_sha256"] == manifest["train_data_sha256"]
    assert card["test_metrics"]["roc_auc"] == 0.95
    assert card["validation_metrics"] == manifest["validation"]
    assert card["limits"]["max_batch"] == Settings.max_batch


def test_test_metrics_of_another_model_are_not_shown(detector: Detector, caplog: pytest.LogCaptureFixture) -> None:
    other = {"model_sha256": "0" * 64, "test": {"accuracy": 0.99}}
    assert model_card(detector, Settings(), other, None)["test_metrics"] is None
    assert "test metrics refused: they are of model 000000000000" in caplog.text
    unnamed = {"test": {"accuracy": 0.99}}  # metrics that do not say whose they are are refused too
    assert model_card(detector, Settings(), unnamed, None)["test_metrics"] is None
    same = {**other, "model_sha256": detector.manifest["sha256"]}
    assert model_card(detector, Settings(), same, None)["test_metrics"] == same


def test_the_committed_metrics_belong_to_the_committed_model() -> None:
    """evaluate ties reports/metrics.json to the model it scored, so the image serves both or neither."""
    manifest = REPO / "models" / "model.json"
    if not manifest.is_file():
        pytest.skip("no model in models/")
    metrics = json.loads((REPO / "reports" / "metrics.json").read_text())
    assert metrics["model_sha256"] == json.loads(manifest.read_text())["sha256"]
    assert metrics["manifest_sha256"] == hashlib.sha256(manifest.read_bytes()).hexdigest()  # the policy measured


def test_an_empty_feeds_folder_means_model_only(model_dir: Path, detector: Detector, tmp_path: Path,  # noqa: F811
                                                caplog: pytest.LogCaptureFixture) -> None:
    """The image's /app/data/feeds mount point is empty when nothing is mounted: scores come from the model."""
    client = TestClient(create_app(Settings(model_dir=model_dir, feeds_dir=tmp_path), detector),
                        base_url="http://127.0.0.1")
    assert client.get("/healthz").json()["intel"] is False
    assert "no feed files in" in caplog.text
    assert post_json(client, {"urls": [PHISHING]}).json()["results"][0]["score"] is not None


def test_scores_many_values_one_result_each_in_order(client: TestClient, detector: Detector) -> None:
    values = [PHISHING, LEGITIMATE, "203.0.113.9", "paypal.com.account-verify.example.tk", "", "x" * 70_000,
              "http://[::1", "%%%", "   "]
    response = post_json(client, {"urls": values})
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == len(values) == len(body["results"])
    assert [r["url"] for r in body["results"]] == values
    by_url = {r["url"]: r for r in body["results"]}
    assert by_url[PHISHING]["score"] > by_url[LEGITIMATE]["score"]
    for result in body["results"]:
        assert {"score", "verdict", "reasons", "error"} <= result.keys()
        if result["error"]:
            assert result["score"] is None and result["verdict"] == ""
        else:
            assert 0.0 <= result["score"] <= 1.0
            assert result["verdict"] in ("malicious", "suspicious", "benign")
    assert by_url[""]["error"] and by_url["x" * 70_000]["error"] and by_url["   "]["error"]
    # the API gives what the detector gives
    alone = detector.score_values([PHISHING]).to_pylist()[0]
    assert by_url[PHISHING]["model_score"] == alone["model_score"]


@pytest.mark.skipif(not FEEDS.is_dir(), reason=f"no feeds mirror at {FEEDS}")
def test_feed_matches_raise_the_score_and_show_in_the_result(client: TestClient) -> None:
    listed, private = post_json(client, {"urls": [LISTED_IP_URL, "http://10.1.2.3/login"]}).json()["results"]
    assert "firehol_level1" in listed["feeds"] and "spamhaus_drop" in listed["feeds"]
    assert listed["score"] >= 0.9 and listed["verdict"] == "malicious"
    assert listed["score"] >= listed["model_score"]
    assert private["feeds"] == ""  # FireHOL lists private ranges; they are reported as such, not as malicious
    assert "private address" in private["reasons"]


def test_text_plain_body_is_one_value_per_line(client: TestClient) -> None:
    response = client.post("/v1/score", content=f"{PHISHING}\n\n{LEGITIMATE}\n".encode(),
                           headers={"content-type": "text/plain; charset=utf-8"})
    assert response.status_code == 200
    assert [r["url"] for r in response.json()["results"]] == [PHISHING, "", LEGITIMATE]


def test_submitted_urls_are_never_fetched_or_resolved(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    attempts: list[tuple] = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise AssertionError("network access while scoring")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "gethostbyname", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    values = [PHISHING, LEGITIMATE, "http://127.0.0.1:9/x", "http://localhost/", "example.invalid"]
    assert post_json(client, {"urls": values}).status_code == 200
    assert attempts == []


# ------------------------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(("body", "content_type", "status"), [
    (b'{"urls": [', "application/json", 400),
    (b"\xff\xfe{}", "application/json", 400),
    (b"not json", "application/json", 400),
    (b'{"urls": "http://a.example"}', "application/json", 422),
    (b'{"urls": [1, 2]}', "application/json", 422),
    (b'{"urls": [null]}', "application/json", 422),
    (b'{"urls": []}', "application/json", 422),
    (b'{"url": ["a.example"]}', "application/json", 422),
    (b'{"urls": ["a.example"], "extra": 1}', "application/json", 422),
    (b'["a.example"]', "application/json", 422),
    (b"urls=a.example", "application/x-www-form-urlencoded", 415),
    (b"", "text/plain", 422),
    (b"\xff\xfe", "text/plain", 400),
])
def test_bad_requests_get_a_clear_4xx_json_error(client: TestClient, body: bytes, content_type: str,
                                                 status: int) -> None:
    response = client.post("/v1/score", content=body, headers={"content-type": content_type})
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["detail"]


def test_batch_size_is_bounded(small_client: TestClient) -> None:
    assert post_json(small_client, {"urls": ["a.example"] * 5}).status_code == 200
    response = post_json(small_client, {"urls": ["a.example"] * 6})
    assert response.status_code == 422
    assert "at most 5" in json.dumps(response.json())
    lines = small_client.post("/v1/score", content="a.example\n" * 6, headers={"content-type": "text/plain"})
    assert lines.status_code == 422 and "at most 5" in lines.json()["detail"]


def test_body_size_is_bounded_before_parsing(small_client: TestClient) -> None:
    fits = json.dumps({"urls": ["a" * 2000]})
    assert len(fits) <= 2048 and post_json(small_client, json.loads(fits)).status_code == 200
    response = small_client.post("/v1/score", content=b"[" * 2049, headers=JSON)  # would be a JSON error if parsed
    assert response.status_code == 413
    assert "2048 bytes" in response.json()["detail"]
    chunked = small_client.post("/v1/score", content=iter([b"[" * 1000] * 3), headers=JSON)  # no Content-Length
    assert chunked.status_code == 413


# ------------------------------------------------------------------------------------------------ API keys


def test_api_keys_guard_the_api_but_not_health_or_the_page(keyed_client: TestClient) -> None:
    payload = {"urls": [PHISHING]}
    refused = post_json(keyed_client, payload)
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert refused.json()["detail"]
    assert post_json(keyed_client, payload, headers={"x-api-key": "wrong"}).status_code == 401
    assert post_json(keyed_client, payload, headers={"x-api-key": "first-key"}).status_code == 200
    assert post_json(keyed_client, payload, headers={"authorization": "Bearer second-key-longer"}).status_code == 200
    assert keyed_client.get("/v1/model").status_code == 401
    assert keyed_client.get("/v1/model", headers={"x-api-key": "second-key-longer"}).status_code == 200
    assert keyed_client.get("/healthz").status_code == 200
    assert keyed_client.get("/").status_code == 200


def test_key_helpers() -> None:
    assert parse_api_keys(" a, ,b ,") == ("a", "b")
    assert key_matches("b", ("a", "b")) and not key_matches("c", ("a", "b")) and not key_matches("", ())
    assert key_matches("\ud800", ("x",)) is False
    assert presented_key({"x-api-key": "k"}) == "k"
    assert presented_key({"authorization": "Bearer  k "}) == "k"
    assert presented_key({"authorization": "Basic k"}) is None
    assert presented_key({}) is None


def test_settings_round_trip_through_the_environment(tmp_path: Path) -> None:
    chosen = Settings(model_dir=tmp_path / "m", feeds_dir=tmp_path / "f", metrics_path=tmp_path / "r.json",
                      max_batch=7, max_body_bytes=4096)
    env = {**chosen.to_env(), "CYBERSENTINEL_API_KEYS": "k1,k2"}
    assert Settings.from_env(env) == Settings(**{**chosen.__dict__, "api_keys": ("k1", "k2")})
    assert "CYBERSENTINEL_API_KEYS" not in chosen.to_env()


# ------------------------------------------------------------------------------------------------ the page


def test_page_and_model_card_are_served_with_their_own_assets_only(client: TestClient) -> None:
    for path in ("/", "/model", "/docs"):  # /docs: Swagger UI vendored in web/swagger/ (test_service_docs.py)
        response = client.get(path)
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in response.headers["content-security-policy"]
        html = response.text
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert assets and not [a for a in assets if re.match(r"(https?:)?//", a)]  # no CDN, no other origin
        for asset in assets:
            if asset.startswith("/static/"):
                assert client.get(asset).status_code == 200, asset
    assert client.get("/static/../service.py").status_code == 404
    assert client.get("/redoc").status_code == 404  # ReDoc would load from a CDN


def test_serve_refuses_a_missing_model_with_a_clear_message(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli_app, ["serve", "--model-dir", str(tmp_path / "none")])
    assert result.exit_code == 2
    assert "cannot load the model" in result.output


# ------------------------------------------------------------------------------------------------ bad input


@FAST
@given(values=st.lists(st.text(max_size=300), min_size=1, max_size=25))
def test_any_strings_give_one_result_each_in_order(client: TestClient, values: list[str]) -> None:
    response = post_json(client, {"urls": values})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["url"] for r in results] == values
    assert all((r["error"] != "") == (r["score"] is None) for r in results)


@pytest.mark.parametrize("value", ["https://bücher.example/straße?q=\u2028", "http://example.com/\U0001f600"])
def test_answers_are_ascii_and_give_back_any_submitted_string(client: TestClient, value: str) -> None:
    response = post_json(client, {"urls": [value, LEGITIMATE]})
    assert response.status_code == 200
    assert response.content.isascii()
    assert [r["url"] for r in json.loads(response.content)["results"]] == [value, LEGITIMATE]


def test_a_lone_surrogate_is_refused_as_invalid_json(client: TestClient) -> None:
    response = post_json(client, {"urls": ["http://\ud800.example/"]})  # json.dumps writes it as an escape
    assert response.status_code == 400
    assert response.json()["detail"][0]["type"] == "json_invalid"


@FAST
@given(text=st.text(max_size=2000))
def test_any_text_plain_body_is_scored_line_by_line_or_refused(small_client: TestClient, text: str) -> None:
    response = small_client.post("/v1/score", content=text.encode(), headers={"content-type": "text/plain"})
    # lines end in \n, \r\n or a bare \r, as `predict` reads a text file; the other breaks stay in the value
    lines = re.split(r"\r\n|\r|\n", re.sub(r"(?:\r\n|\r|\n)$", "", text)) if text else []
    if not lines or len(lines) > 5 or len(text.encode()) > 2048:
        assert response.status_code in (413, 422)
    else:
        assert response.status_code == 200
        assert [r["url"] for r in response.json()["results"]] == lines


def test_a_text_body_is_split_into_the_rows_predict_reads_from_the_same_text(small_client: TestClient) -> None:
    from cybersentinel.scoring.batch import read_text

    text = "http://cr.example/a\rb\r\nc.example\n\u2028d.example\r"
    rows = [url for batch in read_text(io.BytesIO(text.encode()), 10) for url in batch.passthrough["url"].to_pylist()]
    response = small_client.post("/v1/score", content=text.encode(), headers={"content-type": "text/plain"})
    assert [r["url"] for r in response.json()["results"]] == rows == ["http://cr.example/a", "b", "c.example",
                                                                      "\u2028d.example"]


JSON_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                           lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
                           max_leaves=20)


@FAST
@given(payload=JSON_VALUES | st.fixed_dictionaries({"urls": JSON_VALUES}))
def test_any_json_document_gets_a_result_or_a_4xx(small_client: TestClient, payload) -> None:
    response = post_json(small_client, payload)
    assert response.status_code < 500
    if response.status_code == 200:
        assert [r["url"] for r in response.json()["results"]] == payload["urls"]
    else:
        assert response.status_code in (400, 413, 422) and response.json()["detail"]


@FAST
@given(body=st.binary(max_size=3000), content_type=st.sampled_from(["application/json", "text/plain", "",
                                                                    "application/octet-stream"]))
def test_any_bytes_never_cause_a_server_error(small_client: TestClient, body: bytes, content_type: str) -> None:
    response = small_client.post("/v1/score", content=body, headers={"content-type": content_type})
    assert response.status_code < 500
    assert response.headers["content-type"].startswith("application/json")


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(size=st.integers(min_value=2049, max_value=5_000_000))
def test_huge_bodies_are_refused(small_client: TestClient, size: int) -> None:
    response = small_client.post("/v1/score", content=b"a" * size, headers={"content-type": "text/plain"})
    assert response.status_code == 413


def test_the_first_requests_pay_no_one_time_cost(model_dir: Path) -> None:  # noqa: F811
    # Everything a request can load lazily (the look-alike tables of confusable_homoglyphs, tens of ms and some
    # 12,000 objects) is loaded by the start-up warm-up, before gc.freeze(): no client waits for it, and no
    # collection walks it afterwards. A fresh interpreter, since this test process may have loaded it already.
    import subprocess
    import sys

    script = (
        "import gc, sys\n"
        "from pathlib import Path\n"
        "from cybersentinel.ops.service import Settings, create_app\n"
        f"create_app(Settings(model_dir=Path({str(model_dir)!r}), feeds_dir=None, prometheus=False))\n"
        "print('confusable_homoglyphs.confusables' in sys.modules, len(gc.get_objects()))\n")
    loaded, tracked = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                                     timeout=120).stdout.split()
    assert loaded == "True"
    assert int(tracked) < 1000  # what the start-up built is frozen: a collection walks only what requests add

"""Observing the detector at work: Prometheus metrics of the service and the monitor (checked with Debian's
`promtool check metrics`), the decision log (rotation, atomic files, retention, time windows) and the drift figures
on tiny fixtures."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from fixtures_model import model_dir  # noqa: F401
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from cybersentinel.model.drift import (
    Thresholds,
    bin_edges,
    compare_column,
    drift_figures,
    ks_distance,
    psi,
    reference_profile,
    shares,
)
from cybersentinel.ops.decisions import (
    DecisionLog,
    LogSettings,
    log_files,
    parse_window,
    read_window,
    remove_expired,
    to_table,
)
from cybersentinel.ops.metrics import HttpMetrics, ScoringMetrics, observe_many, route_of
from cybersentinel.ops.monitor import run_monitor
from cybersentinel.ops.service import Settings, create_app
from cybersentinel.scoring.detector import Detector


def promtool_check(text: bytes) -> None:
    """`promtool check metrics` (Debian package prometheus) must accept the exposition: it fails on a malformed
    one and reports naming problems (counters without _total, units...) as lint findings."""
    tool = shutil.which("promtool")
    if tool is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    result = subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, timeout=60, check=False)
    assert result.returncode == 0, (result.stdout + result.stderr).decode()


def sample_value(text: str, metric: str, /, **labels: str) -> float:
    """The value of one sample in an exposition (0 when absent)."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != metric:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(3))
    return 0.0


def local_client(app) -> TestClient:
    """The app as reached on 127.0.0.1 (the service refuses Host headers it does not serve)."""
    return TestClient(app, base_url="http://127.0.0.1")


# ------------------------------------------------------------------------------------------------ metrics


def test_observe_many_equals_one_observe_per_value() -> None:
    values = np.array([0.0, 0.05, 0.051, 0.5, 0.99, 1.0, 0.3, 0.3, 0.7])
    one, many = CollectorRegistry(), CollectorRegistry()
    buckets = (0.05, 0.3, 0.5, 0.99, 1.0)
    single = Histogram("s", "h", buckets=buckets, registry=one)
    for v in values:
        single.observe(v)
    observe_many(Histogram("s", "h", buckets=buckets, registry=many), values)
    strip = re.compile(rb"^s_created.*$", re.M)  # creation times differ
    assert strip.sub(b"", generate_latest(one)) == strip.sub(b"", generate_latest(many))


def test_route_labels_are_bounded() -> None:
    routes = frozenset({"/v1/score", "/healthz"})
    assert route_of("/v1/score", routes) == "/v1/score"
    assert route_of("/static/app.js", routes) == "/static"
    assert route_of("/wp-admin/../etc/passwd", routes) == "other"
    from cybersentinel.ops.service import ROUTES  # the service's own: every route it answers has its label

    revoke = "/v1/feedback/{feedback_id}/revoke"
    assert route_of("/v1/feedback", ROUTES) == "/v1/feedback"
    assert route_of("/v1/feedback/17/revoke", ROUTES) == route_of("/v1/feedback/9223372036854775808/revoke",
                                                                  ROUTES) == revoke
    for path in ("/v1/feedback//revoke", "/v1/feedback/17/revoke/x", "/v1/feedback/17", "/v1/x/17/revoke"):
        assert route_of(path, ROUTES) == "other", path


@pytest.fixture(scope="module")
def detector(model_dir: Path) -> Detector:  # noqa: F811
    return Detector.from_dir(model_dir)


def test_service_metrics_count_requests_errors_verdicts_and_pass_promtool(model_dir: Path,  # noqa: F811
                                                                           detector: Detector) -> None:
    client = local_client(create_app(Settings(model_dir=model_dir, feeds_dir=None), detector))
    urls = ["https://en.wikipedia.org/wiki/Phishing", "http://192.0.2.1/paypal/login.php", "", "example.com"]
    results = client.post("/v1/score", json={"urls": urls}).json()["results"]
    assert client.post("/v1/score", json={"urls": []}).status_code == 422
    assert client.get("/no/such/page").status_code == 404
    assert client.get("/healthz").status_code == 200
    # refused by the guard itself, before any route: counted all the same
    assert client.post("/v1/score", json={"urls": ["a.com"]}, headers={"origin": "http://evil.example"}
                       ).status_code == 403
    assert client.get("/v1/model", headers={"host": "evil.example"}).status_code == 400
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    promtool_check(response.content)
    assert sample_value(text, "cybersentinel_urls_scored_total") == 4  # the warm-up is not counted
    for verdict in {r["verdict"] for r in results if r["verdict"]}:
        expected = sum(r["verdict"] == verdict for r in results)
        assert sample_value(text, "cybersentinel_verdicts_total", verdict=verdict) == expected
    assert sample_value(text, "cybersentinel_unscorable_total") == 1  # the empty string
    assert sample_value(text, "cybersentinel_score_count") == 3
    assert sample_value(text, "cybersentinel_http_requests_total", route="/v1/score", method="POST",
                        status="200") == 1
    assert sample_value(text, "cybersentinel_http_errors_total", route="/v1/score", status="422") == 1
    assert sample_value(text, "cybersentinel_http_errors_total", route="other", status="404") == 1
    assert sample_value(text, "cybersentinel_http_errors_total", route="/v1/score", status="403") == 1
    assert sample_value(text, "cybersentinel_http_requests_total", route="/v1/model", method="GET", status="400") == 1
    assert sample_value(text, "cybersentinel_http_request_duration_seconds_count", route="/healthz") == 1
    assert sample_value(text, "cybersentinel_model_info", name=detector.manifest["name"],
                        version=detector.manifest["sha256"][:12]) == 1


def test_each_app_has_its_own_counters_and_metrics_can_be_off(model_dir: Path, detector: Detector) -> None:  # noqa: F811
    first = local_client(create_app(Settings(model_dir=model_dir, feeds_dir=None), detector))
    second = local_client(create_app(Settings(model_dir=model_dir, feeds_dir=None), detector))
    first.post("/v1/score", json={"urls": ["a.example", "b.example"]})
    assert sample_value(first.get("/metrics").text, "cybersentinel_urls_scored_total") == 2
    assert sample_value(second.get("/metrics").text, "cybersentinel_urls_scored_total") == 0
    off = local_client(create_app(Settings(model_dir=model_dir, feeds_dir=None, prometheus=False), detector))
    assert off.get("/metrics").status_code == 404


def test_monitor_metrics_pass_promtool(tmp_path: Path, detector: Detector) -> None:
    log = tmp_path / "access.log"
    log.write_text('203.0.113.9 - - [10/Oct/2026:13:55:36 +0000] "GET http://192.0.2.1/paypal/login.php HTTP/1.1" '
                   '200 512 "-" "curl"\n'
                   '203.0.113.9 - - [10/Oct/2026:13:55:37 +0000] "GET https://en.wikipedia.org/ HTTP/1.1" 200 5 '
                   '"-" "-"\n'
                   "not a log line\n")
    registry = CollectorRegistry()

    def score(urls: list[str]) -> list[dict]:
        return detector.score_values(urls).to_pylist()

    report = run_monitor(log, score, once=True, alerts=open(os.devnull, "w"), registry=registry,  # noqa: SIM115
                         model=("test-model", "abc"))
    text = generate_latest(registry)
    promtool_check(text)
    decoded = text.decode()
    assert sample_value(decoded, "cybersentinel_monitor_lines_total") == report["lines"] == 3
    assert sample_value(decoded, "cybersentinel_monitor_urls_scored_total") == report["urls_scored"] == 2
    for name in ("rotations", "truncations", "not_found_skipped", "hostless_skipped", "alerts", "ips_checked",
                 "not_blockable", "blocklist_writes"):  # every run counter of the report is exported
        assert f"\ncybersentinel_monitor_{name}_total " in decoded, name  # a sample, not the 0 of an absent one
        assert sample_value(decoded, f"cybersentinel_monitor_{name}_total") == report.get(name, 0), name
    assert sample_value(decoded, "cybersentinel_monitor_malformed_lines_total", reason="not a known log line") == 1
    assert sample_value(decoded, "cybersentinel_monitor_model_info", name="test-model", version="abc") == 1


# ------------------------------------------------------------------------------------------------ decision log


class Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def results(n: int, offset: int = 0) -> list[dict]:
    return [{"url": f"http://h{offset + i}.example/", "verdict": "benign", "score": 0.1, "model_score": 0.1,
             "reasons": "", "feeds": "", "error": "", "secret": "never logged"} for i in range(n)]


def test_decision_log_rotates_by_rows_and_hides_open_files(tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 11, 30, 12, tzinfo=UTC).timestamp())
    log = DecisionLog(LogSettings(tmp_path, rotate_rows=5, rotate_seconds=3600, flush_seconds=3600), "sha", clock)
    log.record(results(3))
    log.flush()
    assert log_files(tmp_path) == []  # open: only a hidden temporary file exists
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".decisions-")]
    log.record(results(3, 3))
    log.flush()  # 6 rows >= 5: rotated
    log.record([{"url": "\ud800 odd", "verdict": "", "score": float("nan"), "error": "no host"}])
    log.close()
    files = log_files(tmp_path)
    assert len(files) == 2 and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    table = read_window(tmp_path)
    assert table.num_rows == 7
    assert table.column_names == ["time", "url", "verdict", "score", "model_score", "reasons", "model_sha256"]
    assert pq.read_table(files[0]).num_rows == 6
    last = table.to_pylist()[-1]
    assert last["score"] is None and last["model_score"] is None and last["model_sha256"] == "sha"
    assert last["url"] == "\\ud800 odd"  # a lone surrogate (valid JSON, not UTF-8) is kept, escaped


def test_decision_log_rotates_by_time_and_reads_windows(tmp_path: Path) -> None:
    start = datetime(2026, 11, 30, 12, tzinfo=UTC)
    clock = Clock(start.timestamp())
    log = DecisionLog(LogSettings(tmp_path, rotate_rows=1000, rotate_seconds=60, flush_seconds=3600), "sha", clock)
    for minute in range(5):
        clock.now = (start + timedelta(minutes=minute)).timestamp()
        log.record(results(2, minute * 10))
        log.flush()
    log.close()
    assert len(log_files(tmp_path)) == 5
    window = read_window(tmp_path, start + timedelta(minutes=1), start + timedelta(minutes=3))
    assert window.num_rows == 4
    assert {u[:11] for u in window.column("url").to_pylist()} == {"http://h10.", "http://h11.", "http://h20.",
                                                                   "http://h21."}
    since, until = parse_window("2m", None, None, now=start + timedelta(minutes=5))
    assert read_window(tmp_path, since, until).num_rows == 2 * 2  # minutes 3 and 4
    with pytest.raises(ValueError, match="--last"):
        parse_window("two days", None, None)


def test_retention_deletes_only_expired_files(tmp_path: Path) -> None:
    clock = Clock(time.time())
    log = DecisionLog(LogSettings(tmp_path, rotate_rows=1, flush_seconds=3600), "sha", clock)
    log.record(results(1))
    log.flush()
    log.record(results(1, 1))
    log.flush()
    old, new = log_files(tmp_path)
    month_ago = time.time() - 31 * 86400
    os.utime(old, (month_ago, month_ago))
    # a killed writer's temporary file goes as old: a live writer's is written at every flush (not one here)
    dead, live = tmp_path / ".decisions-x-1-1.parquet.abc.tmp", tmp_path / ".decisions-x-2-1.parquet.def.tmp"
    dead.write_bytes(b"PAR1"), live.write_bytes(b"PAR1")
    os.utime(dead, (month_ago, month_ago))
    assert remove_expired(tmp_path, time.time(), 30) == [old, dead]
    assert log_files(tmp_path) == [new] and live.exists()
    log.close()
    # with a retention shorter than a rotation period, an idle writer's file is not taken for a dead one's
    os.utime(live, (time.time() - 1200, time.time() - 1200))
    assert remove_expired(tmp_path, time.time(), 0.01, 3600 + 1) == []
    assert live in remove_expired(tmp_path, time.time() + 3600, 0.01, 3600 + 1)


def test_a_decision_log_folder_it_makes_is_its_owners_alone(tmp_path: Path) -> None:
    folder = tmp_path / "decisions"
    DecisionLog(LogSettings(folder), "sha").close()
    assert folder.stat().st_mode & 0o777 == 0o700


def test_a_value_is_logged_no_longer_than_the_scorer_reads(tmp_path: Path) -> None:
    huge = "http://a.example/" + "x" * 3_000_000
    table = to_table([(0.0, [{"url": huge, "verdict": None, "score": None}])], "sha")
    assert table["url"][0].as_py() == huge[:65_536]


def test_service_writes_the_decision_log(tmp_path: Path, model_dir: Path, detector: Detector) -> None:  # noqa: F811
    folder = tmp_path / "decisions"
    settings = Settings(model_dir=model_dir, feeds_dir=None, decision_log=folder)
    with local_client(create_app(settings, detector)) as client:  # leaving runs the shutdown: the file is closed
        client.post("/v1/score", json={"urls": ["a.example", "http://192.0.2.1/paypal/login.php"]})
        client.post("/v1/score", content="b.example\n", headers={"content-type": "text/plain"})
    table = read_window(folder)
    assert table.column("url").to_pylist() == ["a.example", "http://192.0.2.1/paypal/login.php", "b.example"]
    assert set(table.column("model_sha256").to_pylist()) == {detector.manifest["sha256"]}


def test_decision_log_masks_passwords_and_keeps_user_names(tmp_path: Path) -> None:
    from cybersentinel.scoring.decider import userinfo_deception

    log = DecisionLog(LogSettings(tmp_path, flush_seconds=3600), "sha")
    hidden = userinfo_deception("http://www.paypal.com:hunter2@evil.top/")  # the policy's reason quotes no password
    log.record([{"url": "https://mallory:pw@secretcorp.example/", "verdict": "benign", "score": 0.4, "reasons": ""},
                {"url": "http://www.paypal.com:hunter2@evil.top/", "verdict": "malicious", "score": 0.9,
                 "reasons": hidden},
                {"url": "http://www.paypal.com@evil.top/", "verdict": "malicious", "score": 0.9,
                 "reasons": "`www.paypal.com` before '@' hides the real host `evil.top`"},
                {"url": "http://evil.example:8080/login?email=a@b.example", "verdict": "benign", "score": 0.1}])
    log.close()
    rows = read_window(tmp_path).to_pylist()
    assert [r["url"] for r in rows] == ["https://mallory:***@secretcorp.example/", "http://www.paypal.com:***@evil.top/",
                                        "http://www.paypal.com@evil.top/",  # a user name alone is evidence
                                        "http://evil.example:8080/login?email=a@b.example"]  # a port, no password
    assert [r["reasons"] for r in rows[1:3]] == ["`www.paypal.com:***` before '@' hides the real host `evil.top`",
                                                 "`www.paypal.com` before '@' hides the real host `evil.top`"]
    assert not any("hunter2" in str(value) for row in rows for value in row.values())


def test_decision_log_masks_credentials_in_query_and_fragment(tmp_path: Path) -> None:
    log = DecisionLog(LogSettings(tmp_path, flush_seconds=3600), "sha")
    log.record([{"url": "https://x.example/cb?access_token=abc123&code=xyz789&lang=en", "verdict": "benign",
                 "score": 0.1},
                {"url": "https://x.example/cb#id_token=abc123&state=s", "verdict": "benign", "score": 0.1},
                {"url": "alice:abc123@bank.example/login", "verdict": "benign", "score": 0.1},  # no scheme
                {"url": "https://maps.example/?key=k1&q=a=b", "verdict": "benign", "score": 0.1},
                # a gateway's link with the page escaped into its path: no "=" or "@" in the text as logged
                {"url": "https://secure-web.cisco.com/1vbk/https%3A%2F%2Fx.example%2Fcb%3Fcode%3Dxyz789",
                 "verdict": "benign", "score": 0.1}])
    log.close()
    assert read_window(tmp_path).column("url").to_pylist() == [
        "https://x.example/cb?access_token=***&code=***&lang=en", "https://x.example/cb#id_token=***&state=s",
        "alice:***@bank.example/login", "https://maps.example/?key=k1&q=a=b",
        "https://secure-web.cisco.com/1vbk/https%3A%2F%2Fx.example%2Fcb%3Fcode%3D***"]


def test_service_logs_no_password_but_answers_with_the_url_as_sent(tmp_path: Path, model_dir: Path,  # noqa: F811
                                                                   detector: Detector) -> None:
    folder = tmp_path / "decisions"
    sent = ["https://mallory:pw@secretcorp.example/", "http://www.paypal.com:hunter2@evil.top/",
            "http://login-verify.example.top/cb?access_token=hunter3xyz&code=hunter4"]
    settings = Settings(model_dir=model_dir, feeds_dir=None, decision_log=folder)
    with local_client(create_app(settings, detector)) as client:  # leaving closes the log file
        answer = client.post("/v1/score", json={"urls": sent}).json()
    with local_client(create_app(Settings(model_dir=model_dir, feeds_dir=None), detector)) as client:
        unlogged = client.post("/v1/score", json={"urls": sent}).json()
    assert [r["url"] for r in answer["results"]] == sent  # the client's own input, echoed
    assert answer["results"] == unlogged["results"]  # scored as sent: the log masks only what it writes
    table = read_window(folder)
    assert table.column("url").to_pylist() == ["https://mallory:***@secretcorp.example/",
                                               "http://www.paypal.com:***@evil.top/",
                                               "http://login-verify.example.top/cb?access_token=***&code=***"]
    assert table.column("score").to_pylist() == [r["score"] for r in answer["results"]]
    reasons = table.column("reasons").to_pylist()[1]
    assert "www.paypal.com:***" in reasons and "hunter2" not in reasons  # the policy quotes the user-info


# ------------------------------------------------------------------------------------------------ drift figures


def test_psi_and_ks_on_known_distributions() -> None:
    rng = np.random.default_rng(0)
    reference = rng.normal(0, 1, 20_000)
    same, shifted = rng.normal(0, 1, 20_000), rng.normal(1, 1, 20_000)
    edges = bin_edges(reference)
    assert len(edges) == 9
    assert psi(shares(reference, edges), shares(same, edges)) < 0.01
    assert psi(shares(reference, edges), shares(shifted, edges)) > 0.5
    assert ks_distance(reference, same) < 0.03
    assert abs(ks_distance(reference, shifted) - 0.383) < 0.03  # 2*Phi(0.5)-1 for a shift of one sd
    flag = np.array([0.0] * 90 + [1.0] * 10)
    assert len(bin_edges(flag)) == 1  # two bins: 0 and 1
    assert compare_column(flag, np.array([1.0] * 50 + [0.0] * 50))["psi"] > 0.25
    assert compare_column(flag, flag)["psi"] == 0


def test_drift_figures_alarm_on_each_threshold() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(0, 1, (4000, 3))
    scores = rng.uniform(0, 1, 4000)
    reference = reference_profile(X, ["a", "b", "c"], scores, rows=2000)
    assert len(reference) == 2000 and reference.dtypes.eq(np.float32).all()
    calm = drift_figures(reference, X[2000:], scores[2000:], ["a", "b", "c"], 0.9, Thresholds())
    assert not calm["drift"] and calm["alarms"] == []
    moved = X[2000:].copy()
    moved[:, :2] += 2
    shifted = drift_figures(reference, moved, np.where(np.arange(2000) < 300, np.nan, 0.95), ["a", "b", "c"], 0.9,
                            Thresholds())
    assert shifted["drift"] and sorted(shifted["drifted_features"]) == ["a", "b"]
    assert shifted["share_no_model_score"] == 0.15
    assert shifted["share_flagged"]["current"] == 1.0
    assert len(shifted["alarms"]) == 4  # features, score PSI, share flagged, no score
    with pytest.raises(ValueError, match="another model"):
        drift_figures(pd.DataFrame({"a": [0.0]}), X[:5, :1], scores[:5], ["z"], 0.9, Thresholds())


@pytest.mark.slow
def test_monitor_command_serves_metrics_on_localhost_and_keeps_the_decision_log(tmp_path: Path,
                                                                                 model_dir: Path) -> None:  # noqa: F811
    import sys
    import urllib.request

    from fixtures_model import REPO, free_port

    log = tmp_path / "access.log"
    log.write_text("".join(f'203.0.113.9 - - [10/Oct/2026:13:55:3{i} +0000] "GET http://h{i}.example/login HTTP/1.1" '
                           f'200 5 "-" "-"\n' for i in range(3)))
    port, folder = free_port(), tmp_path / "decisions"
    process = subprocess.Popen([sys.executable, "-m", "cybersentinel", "monitor", str(log), "--from-start",
                                "--duration", "20", "--model-dir", str(model_dir), "--metrics-port", str(port),
                                "--decision-log", str(folder), "--alerts", str(tmp_path / "alerts.jsonl")],
                               cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline, text = time.monotonic() + 60, ""
        while time.monotonic() < deadline and sample_value(text, "cybersentinel_monitor_urls_scored_total") < 3:
            time.sleep(0.3)
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:  # noqa: S310
                    text = response.read().decode()
            except OSError:
                continue
        assert sample_value(text, "cybersentinel_monitor_lines_total") == 3
        promtool_check(text.encode())
        output = process.communicate(timeout=60)[0].decode()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, output
    assert f"127.0.0.1:{port}" in output
    assert sorted(read_window(folder).column("url").to_pylist()) == [f"http://h{i}.example/login" for i in range(3)]


def test_scoring_and_http_metrics_count_each_result_and_request() -> None:
    # one pass over a batch's results and the labelled children kept between requests: the counts stay exact
    registry = CollectorRegistry()
    scoring, http = ScoringMetrics(registry, "t", "m", "1"), HttpMetrics(registry, "t")
    row = {"url": "u", "score": 0.9, "verdict": "malicious", "reasons": "", "model_score": 0.9, "feeds": "",
           "error": ""}
    results = [row, {**row, "feeds": "firehol_level1, spamhaus_drop"}, {**row, "feeds": "firehol_level1"},
               {**row, "verdict": "benign", "score": 0.1}, {**row, "score": None, "verdict": "", "error": "empty URL"}]
    for batch in (results, results[:1], results[1:2]):
        scoring.observe(batch)
    for status in (200, 200, 422):
        http.record("/v1/score", "POST", status, 0.0004)
    value = registry.get_sample_value
    assert value("t_urls_scored_total") == 7
    assert value("t_verdicts_total", {"verdict": "malicious"}) == 5
    assert value("t_verdicts_total", {"verdict": "benign"}) == 1 and value("t_verdicts_total", {"verdict": "none"}) == 1
    assert value("t_unscorable_total") == 1
    assert value("t_feed_matches_total", {"feed": "firehol_level1"}) == 3
    assert value("t_feed_matches_total", {"feed": "spamhaus_drop"}) == 2
    assert value("t_score_count") == 6 and value("t_score_bucket", {"le": "0.1"}) == 1
    assert value("t_http_requests_total", {"route": "/v1/score", "method": "POST", "status": "200"}) == 2
    assert value("t_http_errors_total", {"route": "/v1/score", "status": "422"}) == 1
    assert value("t_http_request_duration_seconds_count", {"route": "/v1/score"}) == 3


def test_direct_metric_updates_write_what_inc_and_observe_write() -> None:
    # the service's per-request updates skip the client's wrappers: the same counts, sums and buckets as theirs
    from prometheus_client import Counter, Histogram, generate_latest

    from cybersentinel.ops.metrics import LATENCY_BUCKETS, SCORE_BUCKETS, add, observe

    values = [0.0, 0.0005, 0.00051, 0.001, 0.3, 0.85, 1.0, 2.5, 9.99, 10.0, 10.5, 1e300, float("inf"), -1.0]
    texts = []
    for direct in (False, True):
        registry = CollectorRegistry()
        counter = Counter("c", "c", ["k"], registry=registry)
        plain = Counter("p", "p", registry=registry)
        latency = Histogram("l", "l", ["route"], buckets=LATENCY_BUCKETS, registry=registry)
        score = Histogram("s", "s", buckets=SCORE_BUCKETS, registry=registry)
        for i, v in enumerate(values):
            if direct:
                add(counter.labels(str(i % 3)), i)
                add(plain, 1)
                observe(latency.labels("/v1/score"), v)
                observe(score, v)
            else:
                counter.labels(str(i % 3)).inc(i)
                plain.inc(1)
                latency.labels("/v1/score").observe(v)
                score.observe(v)
        texts.append(b"\n".join(line for line in generate_latest(registry).splitlines() if b"_created" not in line))
    assert texts[0] == texts[1]
    assert b'l_bucket{le="0.0005",route="/v1/score"} 3.0' in texts[1]  # a value on a bound is in that bucket

"""`cybersentinel predict`: formats in and out, stdin/stdout, order and pass-through kept, rows in = rows out
whatever the input (hypothesis), chunked scoring in worker processes, threat-intel feeds."""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest
from fixtures_model import model_dir  # noqa: F401
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cybersentinel.cli.app import app
from cybersentinel.scoring.batch import BatchWriter, read_csv, read_text, score_batches
from cybersentinel.scoring.detector import Detector

REPO = Path(__file__).resolve().parents[1]
FEEDS = Path(os.environ.get("CYBERSENTINEL_FEEDS_MIRROR") or REPO.parent / "shared" / "data" / "feeds")
URLS = ["http://paypal.com.secure-login.example.tk/webscr?cmd=_login", "https://www.google.com/", "example.org",
        "http://1.10.16.5/x.exe", "https://en.wikipedia.org/wiki/Phishing", "", "bit.ly/3abc"]
RESULTS = ["score", "verdict", "reasons", "model_score", "feeds", "error"]


@pytest.fixture(scope="module")
def detector(model_dir) -> Detector:  # noqa: F811
    return Detector.from_dir(model_dir)


def run(args: list[str], stdin: bytes | None = None):
    result = CliRunner().invoke(app, ["predict", *args], input=stdin)
    assert result.exit_code == 0, result.output
    return result


def test_csv_file_to_csv_file_keeps_order_and_columns(model_dir, tmp_path):  # noqa: F811
    source = tmp_path / "in.csv"
    pd.DataFrame({"id": range(len(URLS)), "url": URLS, "note": list("abcdefg")}).to_csv(source, index=False)
    run(["-i", str(source), "-o", str(tmp_path / "out.csv"), "--model-dir", str(model_dir), "--no-feeds"])
    out = pd.read_csv(tmp_path / "out.csv", dtype=str, keep_default_na=False)
    assert list(out.columns) == ["id", "url", "note", *RESULTS]
    assert out["url"].tolist() == URLS and out["note"].tolist() == list("abcdefg")
    assert out.loc[5, "error"] == "empty URL" and out.loc[5, "score"] == ""
    assert out.loc[0, "verdict"] == "malicious" and out.loc[0, "reasons"]
    assert not list(tmp_path.glob(".out.csv*"))  # the temporary file was renamed


def test_text_on_stdin_to_jsonl_and_parquet(model_dir, tmp_path):  # noqa: F811
    lines = "\n".join(URLS).encode() + b"\r\n\xff\xfe not utf-8\n"
    result = run(["--model-dir", str(model_dir), "--no-feeds", "--output-format", "jsonl"], stdin=lines)
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["url"] for r in rows[: len(URLS)]] == URLS and len(rows) == len(URLS) + 1
    assert rows[-1]["error"] and rows[-1]["score"] is None
    text = tmp_path / "urls.txt"
    text.write_bytes(lines)
    run(["-i", str(text), "-o", str(tmp_path / "out.parquet"), "--model-dir", str(model_dir), "--no-feeds"])
    table = pd.read_parquet(tmp_path / "out.parquet")
    assert table["url"].tolist()[: len(URLS)] == URLS and list(table.columns) == ["url", *RESULTS]


def test_parquet_in_with_another_column_name_and_a_clashing_column(model_dir, tmp_path):  # noqa: F811
    source = tmp_path / "in.parquet"
    pd.DataFrame({"link": URLS, "score": range(len(URLS))}).to_parquet(source)
    run(["-i", str(source), "-o", str(tmp_path / "out.csv"), "-c", "link", "--model-dir", str(model_dir),
         "--no-feeds"])
    out = pd.read_csv(tmp_path / "out.csv")
    assert list(out.columns) == ["link", "input_score", *RESULTS] and out["input_score"].tolist() == list(range(7))


def test_feeds_show_and_combine(model_dir, tmp_path):  # noqa: F811
    if not (FEEDS / "firehol_level1.txt").is_file():
        pytest.skip("no feeds mirror")
    result = run(["--model-dir", str(model_dir), "--feeds-dir", str(FEEDS)], stdin="\n".join(URLS).encode())
    out = pd.read_csv(io.StringIO(result.stdout), dtype=str, keep_default_na=False)
    assert list(out.columns) == ["url", "score", "verdict", "reasons", "model_score", "feeds", "error"]
    listed = out[out["feeds"] != ""]
    assert "http://1.10.16.5/x.exe" in listed["url"].tolist()  # 1.10.16.0/20 is in Spamhaus DROP
    assert (listed["score"].astype(float) >= 0.9).all() and listed["verdict"].eq("malicious").all()


def test_bad_invocations_fail_clearly(model_dir, tmp_path):  # noqa: F811
    source = tmp_path / "in.csv"
    source.write_text("link\nexample.com\n")
    result = CliRunner().invoke(app, ["predict", "-i", str(source), "--model-dir", str(model_dir), "--no-feeds"])
    assert result.exit_code == 2 and "no column 'url'" in result.output
    result = CliRunner().invoke(app, ["predict", "-i", str(source), "--model-dir", str(tmp_path)])
    assert result.exit_code == 2 and "cannot load the model" in result.output


@pytest.mark.slow
def test_chunks_scored_in_worker_processes_stay_in_order(detector, tmp_path):
    urls = [f"http://host{i}.example{i % 13}.com/p/{i}" for i in range(2_000)]
    stream = io.BytesIO("\n".join(urls).encode())
    out = list(score_batches(read_text(stream, 300), detector, workers=2))
    table = pd.concat([t.to_pandas() for t in out])
    assert table["url"].tolist() == urls
    inline = detector.score_urls(urls)
    assert table["score"].tolist() == inline["score"].tolist()


def test_a_worker_collects_its_young_objects_once_per_batch_instead_of_automatically(detector):
    """`predict`'s workers turn automatic collection off (a batch's new cache entries set off hundreds) and
    collect the young generation after each batch, so a reference cycle made while scoring is still freed."""
    import gc
    import weakref

    from cybersentinel.scoring.batch import _score_in_worker, _start_worker, _worker_state

    class Node:
        pass

    was_enabled = gc.isenabled()
    _worker_state.update(detector=detector, reasons=True, decider=detector.decider())
    try:
        _start_worker()
        assert not gc.isenabled()
        cycle = Node()
        cycle.self = cycle
        alive = weakref.ref(cycle)
        del cycle
        table = _score_in_worker(pa.array(URLS))
        assert table.num_rows == len(URLS) and alive() is None
    finally:
        _worker_state.clear()
        if was_enabled:
            gc.enable()


LINE = st.one_of(st.binary(max_size=60), st.text(max_size=60).map(str.encode),
                 st.sampled_from([b"", b"\r", b" ", b"\x00\x01", b"http://[::1", b"a" * 70_000, b"\xff" * 10,
                                  b"\xef\xbb\xbf", b"\r\r\n"]))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                                 HealthCheck.function_scoped_fixture])
@given(lines=st.lists(LINE.map(lambda b: b.replace(b"\n", b"")), max_size=30), chunk=st.integers(1, 7),
       trailing_newline=st.booleans(), block=st.sampled_from([1, 2, 7, 1 << 20]))
def test_text_rows_in_equal_rows_out(detector, lines, chunk, trailing_newline, block):
    data = b"\n".join(lines) + (b"\n" if trailing_newline and lines else b"")
    # a line ends in \n, \r\n or a bare \r, as in CSV input (a \r\n cut between two blocks too); a leading
    # byte-order mark is not part of the first line
    expected = re.split(rb"\r\n|\r|\n", data.removeprefix(b"\xef\xbb\xbf"))
    if data.endswith((b"\r", b"\n")) or not data.removeprefix(b"\xef\xbb\xbf"):
        expected = expected[:-1]
    tables = list(score_batches(read_text(io.BytesIO(data), chunk, block), detector))
    urls = [u for t in tables for u in t["url"].to_pylist()]
    assert len(urls) == len(expected)
    assert urls == [line[:65_537].decode("utf-8", "replace") for line in expected]
    errors = [e for t in tables for e in t["error"].to_pylist()]
    scores = [s for t in tables for s in t["score"].to_pylist()]
    assert all((e == "") == (s is not None) for e, s in zip(errors, scores, strict=True))


FIELD = st.text(max_size=20) | st.sampled_from(["", '"', "\r\n", "a,b", "\x00", "\ufeff"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(FIELD, min_size=1, max_size=4), max_size=25), garbage=st.binary(max_size=40),
       block=st.sampled_from([1, 7, 64, 1 << 20]))
def test_csv_records_in_equal_rows_out_even_when_malformed(detector, rows, garbage, block):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["url", "other"])
    writer.writerows(rows)  # records of 1 to 4 fields under a 2-column header
    data = buffer.getvalue().encode() + garbage
    records = list(csv.reader(io.StringIO(data.decode("utf-8", "replace"), newline="")))[1:]
    tables = list(score_batches(read_csv(io.BytesIO(data), "url", 4, block), detector))
    out = [row for t in tables for row in t.to_pylist()]
    assert len(out) == len(records)
    for record, row in zip(records, out, strict=True):
        if len(record) in (0, 2):
            assert row["url"] == (record[0] if record else "")
        else:
            assert row["error"].startswith("malformed CSV record") and row["score"] is None


def test_csv_quote_that_never_closes_falls_back_to_python_csv(detector, monkeypatch):
    import cybersentinel.scoring.batch as batch

    monkeypatch.setattr(batch, "MAX_CSV_FIELD", 200)
    data = b"url,n\nhttp://a.example.com/,1\n" + b'"never closed,2\n' + b"http://b.example.com/,3\n" * 20
    limit = csv.field_size_limit()
    out = [row for t in score_batches(read_csv(io.BytesIO(data), "url", 5, 16), detector) for row in t.to_pylist()]
    assert csv.field_size_limit() == limit  # the process's limit is put back (the next reader's, another test's)
    assert out[0]["url"] == "http://a.example.com/" and out[0]["error"] == ""
    assert out[1]["error"] == "malformed CSV record: field larger than field limit (200)"
    # reading goes on after the cut-off field: later records are read, none silently dropped
    assert all(row["error"] or row["url"] == "http://b.example.com/" for row in out[2:])
    assert sum(row["n"] == "3" for row in out) >= 10


class _PipeWhoseReaderLeft(io.BytesIO):
    """A buffered writer on a pipe whose reader left mid-write: it takes part of a large write without an error."""

    def write(self, data) -> int:
        return super().write(bytes(data)[:100])


def test_json_lines_are_written_whole_even_when_the_sink_takes_part_of_a_write():
    sink = _PipeWhoseReaderLeft()
    writer = BatchWriter(sink, "jsonl")
    writer.write(pa.table({"url": [f"http://h{i}.example/" for i in range(50)]}))
    writer.close()
    assert [json.loads(line)["url"] for line in sink.getvalue().decode().splitlines()] == \
        [f"http://h{i}.example/" for i in range(50)]


def _start_long_predict(model_dir: Path, tmp_path: Path):  # noqa: F811
    """`predict --workers 2` on an input that takes a while, once it has begun writing: the process, its
    children (the scoring workers) and the output folder."""
    import subprocess
    import sys
    import time

    import psutil

    source = tmp_path / "in.txt"
    with open(source, "w") as handle:
        for start in range(0, 600_000, 50_000):
            handle.write("".join(f"http://h{i}.example{i % 97}.com/p/{i}\n" for i in range(start, start + 50_000)))
    folder = tmp_path / "out"
    folder.mkdir()
    command = [sys.executable, "-m", "cybersentinel", "predict", "--model-dir", str(model_dir), "--no-feeds",
               "--no-feedback", "--no-progress", "--workers", "2", "--chunk-size", "2000", "-i", str(source),
               "-o", str(folder / "out.csv")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not any(p.stat().st_size for p in folder.glob(".out.csv.*.tmp")):
        assert process.poll() is None and time.monotonic() < deadline, "predict ended before writing"
        time.sleep(0.05)
    return process, psutil.Process(process.pid).children(recursive=True), folder


def _still_running(processes: list, timeout: float) -> list:
    """Those of ``processes`` still running after up to ``timeout`` seconds; a zombie is not (an orphan's new
    parent, in a container, may never reap it)."""
    import time

    import psutil

    def running(process: psutil.Process) -> bool:
        try:
            return process.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    deadline = time.monotonic() + timeout
    while (left := [p for p in processes if running(p)]) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _kill_all(processes: list) -> None:
    import contextlib

    import psutil

    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()


@pytest.mark.slow
def test_sigterm_ends_predict_as_ctrl_c_does(model_dir, tmp_path):  # noqa: F811
    """SIGTERM (kill, timeout, docker stop) left the full-size temporary output behind and the forked workers
    asleep forever, holding the standard output pipe. Now: status 143, no temporary file, no worker left."""
    import signal

    process, children, folder = _start_long_predict(model_dir, tmp_path)
    try:
        assert len(children) >= 2
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
        assert process.returncode == 143, stderr
        assert list(folder.iterdir()) == [] and b"Traceback" not in stderr
        assert _still_running(children, 5) == []
    finally:
        _kill_all(children)
        process.kill()


@pytest.mark.slow
def test_the_workers_end_when_predict_is_killed(model_dir, tmp_path):  # noqa: F811
    """SIGKILL leaves no chance to clean up (the temporary file stays), but the workers die with their parent
    instead of waiting on their queue forever."""
    process, children, _ = _start_long_predict(model_dir, tmp_path)
    try:
        process.kill()
        process.communicate(timeout=60)
        assert _still_running(children, 10) == []
    finally:
        _kill_all(children)

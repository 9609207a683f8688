"""`monitor` on what a path can point at: a FIFO and /dev/zero (no crash, --duration honoured), a log truncated and
refilled past the read position (no line lost), and a symlink to a secret file (the report names line numbers and
counts, never the file's text unless asked, and then a short escaped excerpt)."""

from __future__ import annotations

import io
import json
import os
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cybersentinel.cli.app import app
from cybersentinel.ops.monitor import follow, run_monitor


def no_scores(urls: list[str]) -> list[dict]:
    return [{"verdict": "benign", "score": 0.0, "reasons": "", "feeds": ""} for _ in urls]


def line(i: int) -> str:
    return f'10.0.0.1 - - [30/Nov/2026:10:00:{i % 60:02d} +0000] "GET http://site{i}.example/ HTTP/1.1" 200 5 "-" "c"'


@pytest.mark.timeout(60)
def test_a_fifo_without_a_writer_honours_the_duration(tmp_path: Path) -> None:
    fifo = tmp_path / "log.fifo"
    os.mkfifo(fifo)
    started = time.monotonic()
    report = run_monitor(fifo, no_scores, alerts=io.StringIO(), duration=1.0, poll=0.05)
    assert time.monotonic() - started < 10 and report.get("lines", 0) == 0


@pytest.mark.timeout(60)
def test_a_fifo_with_a_writer_is_read_line_by_line(tmp_path: Path) -> None:
    fifo = tmp_path / "log.fifo"
    os.mkfifo(fifo)

    def write() -> None:
        with open(fifo, "w") as handle:
            for i in range(3):
                handle.write(line(i) + "\n")
                handle.flush()
                time.sleep(0.1)
            time.sleep(0.5)

    writer = threading.Thread(target=write)
    writer.start()
    report = run_monitor(fifo, no_scores, alerts=io.StringIO(), duration=2.0, poll=0.05)
    writer.join()
    assert report["lines"] == 3 and report["parsed"] == 3


@pytest.mark.timeout(60)
def test_dev_zero_honours_the_duration() -> None:
    started = time.monotonic()
    report = run_monitor(Path("/dev/zero"), no_scores, alerts=io.StringIO(), duration=1.0, poll=0.05)
    assert time.monotonic() - started < 10
    assert report.get("parsed", 0) == 0


def test_truncate_and_refill_past_the_read_position_loses_no_line(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text("".join(f"old {i}\n" for i in range(5)))
    lines = follow(log, stats := Counter(), from_start=True, poll=0.01)
    got = [next(lines) for _ in range(6)]
    assert got[-1] is None and got[:5] == [f"old {i}" for i in range(5)]
    with open(log, "w") as handle:  # truncated and refilled beyond the old size before the next poll
        handle.write("".join(f"new line number {i}\n" for i in range(20)))
    new = [x for x in (next(lines) for _ in range(25)) if x is not None]
    lines.close()
    assert new == [f"new line number {i}" for i in range(20)] and stats["truncations"] == 1


def test_the_malformed_report_gives_counts_and_line_numbers_not_text(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\npassword: hunter2\n")
    link = tmp_path / "access.log"
    link.symlink_to(secret)
    report = run_monitor(link, no_scores, alerts=io.StringIO(), once=True)
    text = json.dumps(report)
    assert "wJalrXUtnFEMI" not in text and "hunter2" not in text
    assert report["malformed"] == 2 and [s["line"] for s in report["malformed_samples"]] == [1, 2]
    shown = run_monitor(link, no_scores, alerts=io.StringIO(), once=True, show_malformed=True)
    excerpts = [s["excerpt"] for s in shown["malformed_samples"]]
    assert all(len(e) <= 40 for e in excerpts) and "EXAMPLEKEY" not in json.dumps(shown)
    result = CliRunner().invoke(app, ["monitor", str(link), "--once", "--model-dir", "/nonexistent"])
    assert "hunter2" not in result.output


def test_excerpts_are_escaped(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_bytes(b"\x1b[31mred\x07 \xff\n")
    report = run_monitor(log, no_scores, alerts=io.StringIO(), once=True, show_malformed=True)
    excerpt = report["malformed_samples"][0]["excerpt"]
    assert excerpt.isprintable() and "\x1b" not in excerpt and "\\x1b" in excerpt


@pytest.mark.parametrize("text", ["", "\n \n", "url\n", "url,verdict,score,reasons,first_seen\r\n"])
def test_an_empty_or_header_only_block_list_is_a_first_start(tmp_path: Path, text: str) -> None:
    log, blocked = tmp_path / "access.log", tmp_path / "blocked.csv"
    log.write_text(line(1) + "\n")
    blocked.write_text(text)
    report = run_monitor(log, no_scores, alerts=io.StringIO(), once=True, blocklist=blocked)
    assert report["parsed"] == 1 and report["blocked"] == 0


@pytest.mark.parametrize("data", [b"garbage\n", b"kind,value,verdict\n", b"a,b\n1,2\n", b"\xff\xfeu\x00r\x00l\x00\n"])
def test_a_malformed_block_list_is_a_clear_error_before_anything_starts(tmp_path: Path, data: bytes) -> None:
    log, blocked = tmp_path / "access.log", tmp_path / "blocked.csv"
    log.write_text(line(1) + "\n")
    blocked.write_bytes(data)
    result = CliRunner().invoke(app, ["monitor", str(log), "--once", "--blocklist", str(blocked),
                                      "--model-dir", str(tmp_path / "no-model")], env={"COLUMNS": "400"})
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    output = " ".join(result.output.split())
    assert "Invalid value for --blocklist" in output and "blocked.csv" in output and "Traceback" not in output
    assert blocked.read_bytes() == data  # left as it was


def test_the_block_list_and_its_rendered_rules_are_written_together_or_not_at_all(tmp_path: Path) -> None:
    from cybersentinel.ops.monitor import BLOCKLIST_COLUMNS, save_blocklist

    blocked = {"http://phish.example.net/login": {"url": "http://phish.example.net/login", "verdict": "malicious",
                                                  "score": 0.99, "reasons": "x", "first_seen": "2026-12-04"}}
    (tmp_path / "rules").mkdir()  # a folder where the hosts file should go
    with pytest.raises(IsADirectoryError):
        save_blocklist(tmp_path / "blocked.csv", blocked, {"unbound": tmp_path / "unbound.conf",
                                                           "hosts": tmp_path / "rules"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rules"]  # neither the list nor the other rule file
    save_blocklist(tmp_path / "blocked.csv", blocked, {"unbound": tmp_path / "unbound.conf"})
    assert (tmp_path / "blocked.csv").read_text().startswith(",".join(f"\"{c}\"" for c in BLOCKLIST_COLUMNS))
    assert "phish.example.net" in (tmp_path / "unbound.conf").read_text()


@pytest.mark.parametrize("feeds", ["missing", "malformed"])
def test_feeds_that_cannot_be_read_are_a_clear_error_before_anything_starts(tmp_path: Path, feeds: str) -> None:
    """A missing folder or a malformed feed file: the option named, status 2, no traceback (as for `predict`)."""
    log, folder = tmp_path / "access.log", tmp_path / "feeds"
    log.write_text(line(1) + "\n")
    if feeds == "malformed":
        folder.mkdir()
        (folder / "firehol_level1.txt").write_text("garbage line\n")
    result = CliRunner().invoke(app, ["monitor", str(log), "--once", "--feeds-dir", str(folder),
                                      "--model-dir", str(tmp_path / "no-model")], env={"COLUMNS": "400"})
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    output = " ".join(result.output.split())
    assert "Invalid value for --feeds-dir: cannot read the feeds" in output and "Traceback" not in output
    assert ("malformed network entry" if feeds == "malformed" else "no feed files found") in output

"""`predict` on awkward input: rows in = rows out for every case, or a clear error before any output is written."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fixtures_model import model_dir  # noqa: F401
from typer.testing import CliRunner

from cybersentinel.cli.app import app

RESULTS = ["score", "verdict", "reasons", "model_score", "feeds", "error"]


def predict(model_dir: Path, *args: str, stdin: bytes | None = None):  # noqa: F811
    return CliRunner().invoke(app, ["predict", "--model-dir", str(model_dir), "--no-feeds", "--no-progress", *args],
                              input=stdin)


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_bare_cr_line_endings_keep_every_row(model_dir, tmp_path):  # noqa: F811
    source = tmp_path / "mac.csv"
    source.write_bytes(b"id,url\r1,a.example\r2,\"b.example/x\ry\"\r3,http://c.example/\r")
    result = predict(model_dir, "-i", str(source), "-o", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(r["id"], r["url"]) for r in rows] == [("1", "a.example"), ("2", "b.example/x\ry"),
                                                   ("3", "http://c.example/")]


def test_a_quoted_newline_in_the_header_is_one_header(model_dir, tmp_path):  # noqa: F811
    source = tmp_path / "in.csv"
    source.write_bytes(b'url,"two\nlines"\na.example,1\nb.example,2\n')
    result = predict(model_dir, "-i", str(source), "-o", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert [(r["url"], r["two\nlines"]) for r in rows] == [("a.example", "1"), ("b.example", "2")]


@pytest.mark.parametrize("out", ["out.csv", "out.parquet", "out.jsonl"])
def test_a_header_only_csv_gives_a_header_only_output(model_dir, tmp_path, out):  # noqa: F811
    source = tmp_path / "in.csv"
    source.write_text("id,url\n")
    result = predict(model_dir, "-i", str(source), "-o", str(tmp_path / out))
    assert result.exit_code == 0, result.output
    target = tmp_path / out
    if out.endswith(".csv"):
        assert target.read_text().splitlines()[0].replace('"', "").split(",") == ["id", "url", *RESULTS]
        assert len(target.read_text().splitlines()) == 1
    elif out.endswith(".parquet"):
        table = pq.read_table(target)
        assert table.num_rows == 0 and table.column_names == ["id", "url", *RESULTS]
    else:
        assert target.read_text() == ""  # JSON lines: no rows, no lines


def test_empty_text_on_stdin_gives_a_header(model_dir):  # noqa: F811
    result = predict(model_dir, "--input-format", "text", stdin=b"")
    assert result.exit_code == 0, result.output
    assert result.stdout.replace('"', "").splitlines() == [",".join(["url", *RESULTS])]


def test_a_parquet_url_column_of_lists_or_structs_is_a_clear_error(model_dir, tmp_path):  # noqa: F811
    for name, column in (("lists", pa.array([["a.example"], ["b.example", "c"]])),
                         ("structs", pa.array([{"u": "a.example"}, {"u": "b.example"}]))):
        source = tmp_path / f"{name}.parquet"
        pq.write_table(pa.table({"url": column}), source)
        target = tmp_path / f"{name}.csv"
        result = predict(model_dir, "-i", str(source), "-o", str(target))
        assert result.exit_code == 2, result.output
        assert "not text" in result.output and "--column" in result.output
        assert not target.exists() and not list(tmp_path.glob(f".{name}.csv*"))
        result = predict(model_dir, "-i", str(source))  # standard output: nothing written either
        assert result.exit_code == 2 and result.stdout == ""


@pytest.mark.parametrize("out", ["out.csv", "out.parquet", "out.jsonl"])
def test_one_non_utf8_value_in_a_parquet_binary_column_is_one_error_row(model_dir, tmp_path, out):  # noqa: F811
    source = tmp_path / "in.parquet"
    urls = pa.array([b"a.example", b"\xff\xfe.example", b"http://c.example/"], type=pa.binary())
    notes = pa.array([b"ok", b"\xc3(", b"fine"], type=pa.binary())
    pq.write_table(pa.table({"url": urls, "note": notes}), source)
    result = predict(model_dir, "-i", str(source), "-o", str(tmp_path / out))
    assert result.exit_code == 0, result.output
    frame = (pd.read_csv(tmp_path / out, dtype=str, keep_default_na=False) if out.endswith(".csv") else
             pd.read_parquet(tmp_path / out) if out.endswith(".parquet") else
             pd.read_json(tmp_path / out, lines=True, dtype=False))
    assert len(frame) == 3 and frame["url"].tolist() == ["a.example", "\ufffd\ufffd.example", "http://c.example/"]
    assert frame["note"].tolist() == ["ok", "\ufffd(", "fine"]  # shown with U+FFFD, as CSV input is
    assert frame["score"].notna().all()  # scored from its bytes


def test_stdin_text_whose_first_line_has_a_comma_stays_text(model_dir):  # noqa: F811
    lines = b"http://evil.example/a,url\nb.example\nhttp://c.example/?q=1,2\n"
    result = predict(model_dir, stdin=lines)
    assert result.exit_code == 0, result.output
    assert [r["url"] for r in csv_rows(result.stdout)] == ["http://evil.example/a,url", "b.example",
                                                             "http://c.example/?q=1,2"]
    header = predict(model_dir, stdin=b"id,url\n1,a.example\n")  # a real header is still recognised
    assert [(r["id"], r["url"]) for r in csv_rows(header.stdout)] == [("1", "a.example")]


def test_an_unknown_output_extension_is_refused_before_writing(model_dir, tmp_path):  # noqa: F811
    source = tmp_path / "in.txt"
    source.write_text("a.example\n")
    result = predict(model_dir, "-i", str(source), "-o", str(tmp_path / "x.xlsx"))
    assert result.exit_code == 2 and ".xlsx" in result.output and "--output-format" in result.output
    assert list(tmp_path.iterdir()) == [source]


def test_a_missing_url_column_suggests_column(model_dir, tmp_path):  # noqa: F811
    source = tmp_path / "in.csv"
    source.write_text("id,link\n1,a.example\n")
    result = predict(model_dir, "-i", str(source), "-o", str(tmp_path / "out.csv"))
    assert result.exit_code == 2 and "--column link" in result.output
    assert not (tmp_path / "out.csv").exists()
    parquet = tmp_path / "in.parquet"
    pd.DataFrame({"id": [1], "site_url": ["a.example"]}).to_parquet(parquet)
    result = predict(model_dir, "-i", str(parquet), "-o", str(tmp_path / "out.csv"))
    assert result.exit_code == 2 and "--column site_url" in result.output

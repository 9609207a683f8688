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
from hypothesis import given, settings
from hypothesis import strategies as st
from test_files import unwritable_folder
from typer.testing import CliRunner

from cybersentinel.cli.app import app

RESULTS = ["score", "verdict", "reasons", "model_score", "feeds", "error"]


def predict(model_dir: Path, *args: str, stdin: bytes | None = None):  # noqa: F811
    return CliRunner().invoke(app, ["predict", "--model-dir", str(model_dir), "--no-feeds", "--no-progress", *args],
                              input=stdin)


def read_output(path: Path) -> pd.DataFrame:
    """`predict`'s output file in any of its formats, every value as written."""
    return (pd.read_csv(path, dtype=str, keep_default_na=False) if path.suffix == ".csv" else
            pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_json(path, lines=True, dtype=False))


def csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


@pytest.mark.parametrize("band", ["1", "1.0"])
def test_a_band_that_leaves_nothing_benign_is_refused_before_any_output(model_dir, tmp_path, band):  # noqa: F811
    source = tmp_path / "in.txt"
    source.write_text("https://example.com/\n")
    result = predict(model_dir, "-i", str(source), "-o", str(tmp_path / "out.csv"), "--band", band)
    assert result.exit_code == 2 and "--band" in result.output and "below 1" in result.output
    assert not (tmp_path / "out.csv").exists()


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
    frame = read_output(tmp_path / out)
    assert len(frame) == 3 and frame["url"].tolist() == ["a.example", "\ufffd\ufffd.example", "http://c.example/"]
    assert frame["note"].tolist() == ["ok", "\ufffd(", "fine"]  # shown with U+FFFD, as CSV input is
    assert frame["error"].tolist() == ["", "host name has spaces, control or forbidden characters", ""]  # as CSV's
    assert [score in ("", None) or score != score for score in frame["score"]] == [False, True, False]


@pytest.mark.parametrize("out", ["out.csv", "out.parquet", "out.jsonl"])
def test_a_parquet_text_column_holding_bytes_that_are_not_utf8_is_read_with_replacements(model_dir, tmp_path,  # noqa: F811
                                                                                          out):
    """Arrow does not check what a Parquet file declares as text: such a value crashed the JSON writer (a
    segmentation fault) and broke the CSV one."""
    source = tmp_path / "in.parquet"
    urls = pa.array([b"http://a.example/", b"http://b\xff.example/"], pa.binary()).view(pa.string())
    notes = pa.array([b"ok", b"n\xfeote"], pa.binary()).view(pa.string()).dictionary_encode()
    pq.write_table(pa.table({"url": urls, "note": notes}), source)
    result = predict(model_dir, "-i", str(source), "-o", str(tmp_path / out))
    assert result.exit_code == 0, result.output
    frame = read_output(tmp_path / out)
    assert frame["url"].tolist() == ["http://a.example/", "http://b\ufffd.example/"]
    assert frame["note"].astype(str).tolist() == ["ok", "n\ufffdote"]


@given(st.binary(max_size=40).map(lambda b: bytes(b"ab\",\n"[c % 5] for c in b)))
@settings(max_examples=300, deadline=None)
def test_a_csv_blocks_last_record_end_is_found_as_by_counting_every_quote_before_each_newline(data: bytes) -> None:
    from cybersentinel.scoring.batch import _record_end

    ends = [i + 1 for i, byte in enumerate(data) if byte == ord("\n") and data[:i].count(b'"') % 2 == 0]
    assert _record_end(data) == (ends[-1] if ends else -1)


def test_stdin_text_whose_first_line_has_a_comma_stays_text(model_dir):  # noqa: F811
    lines = b"http://evil.example/a,url\nb.example\nhttp://c.example/?q=1,2\n"
    result = predict(model_dir, stdin=lines)
    assert result.exit_code == 0, result.output
    assert [r["url"] for r in csv_rows(result.stdout)] == ["http://evil.example/a,url", "b.example",
                                                             "http://c.example/?q=1,2"]
    header = predict(model_dir, stdin=b"id,url\n1,a.example\n")  # a real header is still recognised
    assert [(r["id"], r["url"]) for r in csv_rows(header.stdout)] == [("1", "a.example")]
    # a log export's dotted column names (`src.ip`) are column names too: the header had been scored as a URL
    dotted = predict(model_dir, stdin=b"url,src.ip,http.status\nhttp://a.example/,10.0.0.1,200\n")
    assert [(r["url"], r["src.ip"]) for r in csv_rows(dotted.stdout)] == [("http://a.example/", "10.0.0.1")]


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


def jsonl_rows(path: Path) -> list[dict]:  # split at "\n" only: U+2028 and the like are inside values
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]


def said(output: str) -> str:
    """An error message as one line: the words of Rich's box, without its borders and wrapping."""
    return " ".join(output.replace("\u2502", " ").split())


def test_text_lines_end_in_a_bare_cr_too_and_other_breaks_stay_in_the_value(model_dir, tmp_path):  # noqa: F811
    source = tmp_path / "cr.txt"
    source.write_bytes(b"http://a.example/\rhttp://b.example/\r\nc.example\n" + "d.example/\u2028e\x85f\x1cg".encode()
                       + b"\r")
    result = predict(model_dir, "-i", str(source), "-o", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 0, result.output
    assert [r["url"] for r in jsonl_rows(tmp_path / "out.jsonl")] == [
        "http://a.example/", "http://b.example/", "c.example", "d.example/\u2028e\x85f\x1cg"]


UTF16 = {"text": "http://a.example/\nhttp://b.example/\n", "csv": "url,id\nhttp://a.example/,1\n"}


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("kind", ["text", "csv"])
@pytest.mark.parametrize("stdin", [False, True])
def test_utf16_input_is_one_clear_error_before_any_output(model_dir, tmp_path, encoding, kind, stdin):  # noqa: F811
    data = UTF16[kind].encode(encoding)  # "utf-16" writes a byte-order mark, the others none
    source = tmp_path / f"in.{'txt' if kind == 'text' else 'csv'}"
    source.write_bytes(data)
    target = tmp_path / "out.csv"
    result = (predict(model_dir, "-o", str(target), stdin=data) if stdin else
              predict(model_dir, "-i", str(source), "-o", str(target)))
    assert result.exit_code == 2 and "looks like UTF-16" in said(result.output) and "UTF-8" in result.output
    assert "\x00" not in result.output and "--column" not in result.output
    assert list(tmp_path.iterdir()) == [source]


@pytest.mark.parametrize("kind", ["csv", "text"])
def test_a_utf8_byte_order_mark_is_skipped_on_stdin_as_by_path(model_dir, tmp_path, kind):  # noqa: F811
    data = b"\xef\xbb\xbf" + (b"url,id\nhttp://a.example/,1\nb.example,2\n" if kind == "csv" else
                              b"http://a.example/\nb.example\n")
    source = tmp_path / f"in.{'csv' if kind == 'csv' else 'txt'}"
    source.write_bytes(data)
    by_path = predict(model_dir, "-i", str(source))
    on_stdin = predict(model_dir, stdin=data)
    assert by_path.exit_code == on_stdin.exit_code == 0, by_path.output + on_stdin.output
    rows = csv_rows(on_stdin.stdout)
    assert rows == csv_rows(by_path.stdout) and [r["url"] for r in rows] == ["http://a.example/", "b.example"]
    plain = predict(model_dir, stdin=data[3:])  # the mark changes nothing, the score included
    assert csv_rows(plain.stdout) == rows


def test_parquet_on_stdin_is_recognised_by_its_magic_bytes(model_dir, tmp_path):  # noqa: F811
    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"url": ["http://a.example/", "b.example"], "id": [1, 2]}), source)
    result = predict(model_dir, stdin=source.read_bytes())
    assert result.exit_code == 0, result.output
    assert [(r["url"], r["id"]) for r in csv_rows(result.stdout)] == [("http://a.example/", "1"), ("b.example", "2")]


@pytest.mark.parametrize("out", ["out.csv", "out.parquet", "out.jsonl"])
def test_duplicate_column_names_are_made_unique_as_a_csv_headers_are(model_dir, tmp_path, out):  # noqa: F811
    parquet = tmp_path / "in.parquet"
    columns = [pa.array(["a.example"]), pa.array(["b.example"]), pa.array(["x"]), pa.array(["y"]), pa.array(["z"])]
    pq.write_table(pa.Table.from_arrays(columns, names=["url", "url", "n", "n", "n.1"]), parquet)
    text = tmp_path / "in.csv"
    text.write_text("url,url,n,n,n.1,score,input_score\na.example,b.example,x,y,z,1,2\n")
    expected = {"parquet": ["url", "url.1", "n", "n.2", "n.1"],
                "csv": ["url", "url.1", "n", "n.2", "n.1", "input_score", "input_score.1"]}
    for kind, source in (("parquet", parquet), ("csv", text)):
        target = tmp_path / f"{kind}-{out}"
        result = predict(model_dir, "-i", str(source), "-o", str(target))
        assert result.exit_code == 0, result.output
        table = (pq.read_table(target).to_pandas() if out.endswith(".parquet") else
                 pd.DataFrame(jsonl_rows(target)) if out.endswith(".jsonl") else pd.read_csv(target, dtype=str))
        assert list(table.columns) == [*expected[kind], *RESULTS]
        assert table.loc[0, "url"] == "a.example" and table.loc[0, "url.1"] == "b.example"  # the first is scored
        assert table.loc[0, "n.2"] == "y" and table.loc[0, "n.1"] == "z"


def test_a_pipe_or_fifo_path_is_an_input_and_a_folder_is_not(model_dir, tmp_path):  # noqa: F811
    import os

    read_end, write_end = os.pipe()  # what `-i <(cat in.csv)` names: /dev/fd/63, a pipe, not a regular file
    try:
        os.write(write_end, b"url,id\nhttp://a.example/,1\nb.example,2\n")
        os.close(write_end)
        result = predict(model_dir, "-i", f"/dev/fd/{read_end}")
    finally:
        os.close(read_end)
    assert result.exit_code == 0, result.output
    assert [(r["url"], r["id"]) for r in csv_rows(result.stdout)] == [("http://a.example/", "1"), ("b.example", "2")]
    result = predict(model_dir, "-i", str(tmp_path))
    assert result.exit_code == 2 and "a folder, not a file" in said(result.output)


@pytest.mark.parametrize("out_format", ["jsonl", "csv", "parquet"])
def test_an_output_that_cannot_be_written_is_blamed_never_the_input(model_dir, tmp_path, out_format):  # noqa: F811
    import os
    import subprocess
    import sys

    source = tmp_path / "in.csv"
    source.write_text("url\n" + "".join(f"http://h{i}.example/p\n" for i in range(300)))
    command = [sys.executable, "-m", "cybersentinel", "predict", "--model-dir", str(model_dir), "--no-feeds",
               "--no-feedback", "--no-progress", "--workers", "1", "-i", str(source), "--output-format", out_format]
    read_end, write_end = os.pipe()
    os.close(read_end)  # a reader that left at once (`| head -0`): every write to the pipe fails
    try:
        closed = subprocess.run(command, stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=300)
    finally:
        os.close(write_end)
    assert closed.returncode != 0 and "scored" not in closed.stderr and "--input" not in closed.stderr
    assert "Traceback" not in closed.stderr
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full to fill")
    with open("/dev/full", "wb") as full:
        filled = subprocess.run(command, stdout=full, stderr=subprocess.PIPE, text=True, timeout=300)
    assert filled.returncode == 2 and "scored" not in filled.stderr and "Traceback" not in filled.stderr
    assert "cannot write the output: [Errno 28] No space left on device" in said(filled.stderr)
    assert "--output" in filled.stderr and "--input" not in filled.stderr


def test_bytes_that_are_not_utf8_get_the_same_error_in_every_input_format(model_dir, tmp_path):  # noqa: F811
    url = b"http://\xff\xfe.example/"
    (tmp_path / "in.csv").write_bytes(b"url\n" + url + b"\na.example\n")
    (tmp_path / "in.txt").write_bytes(url + b"\na.example\n")
    pq.write_table(pa.table({"url": pa.array([url, b"a.example"], type=pa.binary())}), tmp_path / "in.parquet")
    found = {}
    for name in ("in.csv", "in.txt", "in.parquet"):
        result = predict(model_dir, "-i", str(tmp_path / name), "-o", str(tmp_path / f"{name}.jsonl"))
        assert result.exit_code == 0, result.output
        found[name] = jsonl_rows(tmp_path / f"{name}.jsonl")
    assert found["in.txt"] == found["in.csv"] == found["in.parquet"]
    assert found["in.csv"][0]["error"] == "host name has spaces, control or forbidden characters"
    assert found["in.csv"][0]["score"] is None and found["in.csv"][1]["score"] is not None


def _zipped(data: bytes) -> bytes:
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("a.csv", data)
    return buffer.getvalue()


COMPRESSED = {"gzip": lambda data: __import__("gzip").compress(data),
              "bzip2": lambda data: __import__("bz2").compress(data),
              "xz": lambda data: __import__("lzma").compress(data),
              "zstd": lambda data: b"\x28\xb5\x2f\xfd" + data,  # the frame's magic is what is looked at
              "zip": _zipped}


@pytest.mark.parametrize("kind", COMPRESSED)
@pytest.mark.parametrize("name", ["a.csv.gz", "a.parquet", "-"])
def test_compressed_input_is_one_clear_error_before_any_output(model_dir, tmp_path, kind, name):  # noqa: F811
    """Read as text, a gzip file was one row of garbage and status 0; whatever its name, or on standard input,
    compressed input is refused by its magic bytes, the format named, before an output file is made."""
    data = COMPRESSED[kind](b"url\nhttp://a.example/\nb.example\n")
    source = tmp_path / ("in" if name == "-" else name)
    source.write_bytes(data)
    target = tmp_path / "out.csv"
    result = (predict(model_dir, "-o", str(target), stdin=data) if name == "-" else
              predict(model_dir, "-i", str(source), "-o", str(target)))
    assert result.exit_code == 2, result.output
    message = said(result.output)
    assert f"{kind}-compressed" in message and "decompress it first" in message and "scored" not in message
    assert list(tmp_path.iterdir()) == [source]


def test_json_lines_input_keeps_every_row_and_its_fields(model_dir, tmp_path):  # noqa: F811
    """`.jsonl` input was read as text: every row got an error, and the run succeeded. It is read as JSON Lines:
    the URL field is scored, the first object's fields pass through, and a line that cannot be read keeps its row
    with an error saying why."""
    lines = [json.dumps({"url": "http://a.example/login", "id": 1, "tags": ["x"]}),
             json.dumps({"id": 2, "url": "b.example"}),  # the same fields in another order
             json.dumps({"url": None, "id": 3}),
             json.dumps({"url": 7, "id": 4}),
             json.dumps({"url": "c.example", "id": 5, "extra": True}),
             "not json at all", "[1, 2]", "",
             json.dumps({"url": "d.example/\u2028é"}, ensure_ascii=False)]
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = predict(model_dir, "-i", str(source), "-o", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 0, result.output
    rows = jsonl_rows(tmp_path / "out.jsonl")
    assert len(rows) == len(lines) and list(rows[0]) == ["url", "id", "tags", *RESULTS]
    assert [(r["url"], r["id"]) for r in rows[:3]] == [("http://a.example/login", "1"), ("b.example", "2"),
                                                       (None, "3")]
    assert rows[0]["tags"] == '["x"]' and rows[0]["score"] is not None and rows[1]["score"] is not None
    assert rows[2]["error"] == "empty URL"
    errors = [r["error"] for r in rows[3:8]]
    assert "'url' holds a number, not text" in errors[0] and "'extra'" in errors[1]
    assert "not JSON" in errors[2] and "not a JSON object" in errors[3] and "not JSON" in errors[4]
    assert all(r["score"] is None for r in rows[3:8])
    assert rows[8]["url"] == "d.example/\u2028é" and rows[8]["id"] is None and rows[8]["error"] == ""
    assert "scored 9 rows, 6 of them with an error" in said(result.output)


def test_json_lines_ended_in_bare_cr_keep_every_row(model_dir, tmp_path):  # noqa: F811
    """Old Mac line ends, as text and CSV input read them: the whole file had been one line, refused as not an
    object ("the first line is not a JSON object")."""
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"url": "a.example", "id": 1}\r{"url": "b.example/x", "id": 2}\r\n{"url": "c.example"}\r')
    result = predict(model_dir, "-i", str(source), "-o", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 0, result.output
    rows = jsonl_rows(tmp_path / "out.jsonl")
    assert [(r["url"], r["id"], r["error"]) for r in rows] == [("a.example", "1", ""), ("b.example/x", "2", ""),
                                                                ("c.example", None, "")]
    # a file ended in \n with a stray \r inside a line (no JSON has one raw): that line is one error row, not two
    source.write_bytes(b'{"url": "a.example"}\n{"url": "b.exa\rmple"}\n{"url": "c.example"}\n')
    result = predict(model_dir, "-i", str(source), "-o", str(tmp_path / "out2.jsonl"))
    assert result.exit_code == 0, result.output
    rows = jsonl_rows(tmp_path / "out2.jsonl")
    assert [r["url"] for r in rows] == ["a.example", None, "c.example"] and rows[1]["error"]


def test_predicts_own_json_lines_output_can_be_scored_again(model_dir, tmp_path):  # noqa: F811
    urls = ["http://a.example/login", "b.example", "", "http://[x/"]
    first = predict(model_dir, "-o", str(tmp_path / "first.jsonl"), stdin="\n".join(urls).encode())
    assert first.exit_code == 0, first.output
    source = tmp_path / "first.jsonl"
    for args, stdin in ((["-i", str(source)], None), ([], source.read_bytes())):  # on standard input: sniffed
        again = predict(model_dir, *args, "--output-format", "jsonl", stdin=stdin)
        assert again.exit_code == 0, again.output
        rows = [json.loads(line) for line in again.stdout.splitlines()]
        before = jsonl_rows(source)
        assert [r["url"] for r in rows] == urls and [r["score"] for r in rows] == [r["score"] for r in before]
        assert [r["input_score"] for r in rows] == [None if r["score"] is None else json.dumps(r["score"])
                                                    for r in before]


def test_json_lines_without_the_url_field_or_an_object_first_is_refused(model_dir, tmp_path):  # noqa: F811
    source = tmp_path / "in.ndjson"
    source.write_text('{"link": "a.example"}\n')
    result = predict(model_dir, "-i", str(source), "-o", str(tmp_path / "out.csv"))
    assert result.exit_code == 2 and "--column link" in said(result.output)
    result = predict(model_dir, "-i", str(source), "-c", "link", "-o", str(tmp_path / "out.csv"))
    assert result.exit_code == 0 and csv_rows((tmp_path / "out.csv").read_text())[0]["link"] == "a.example"
    (tmp_path / "out.csv").unlink()
    source.write_text('["a.example"]\n')
    result = predict(model_dir, "-i", str(source), "-o", str(tmp_path / "out.csv"))
    assert result.exit_code == 2 and "not a JSON object" in said(result.output)
    assert list(tmp_path.iterdir()) == [source]


@pytest.mark.parametrize(("values", "kind"), [([1, 2], "int64"), ([1.5, float("nan")], "double"),
                                              ([True, False], "bool"), ([None, None], "null")])
def test_a_parquet_url_column_that_is_not_text_is_refused(model_dir, tmp_path, values, kind):  # noqa: F811
    """A number was scored as its text (1 as the IP 0.0.0.1, NaN as the host "nan"); pointing --column at an id
    column gave an all-benign output and status 0."""
    source = tmp_path / "in.parquet"
    pq.write_table(pa.table({"id": pa.array(values), "site": ["a.example", "b.example"]}), source)
    target = tmp_path / "out.csv"
    result = predict(model_dir, "-i", str(source), "-c", "id", "-o", str(target))
    assert result.exit_code == 2, result.output
    assert f"the Parquet column 'id' holds {kind} values, not text" in said(result.output)
    assert list(tmp_path.iterdir()) == [source]


def test_the_summary_counts_the_rows_that_got_an_error(model_dir):  # noqa: F811
    result = predict(model_dir, stdin=b"http://a.example/\n\nb.example\n\xff\xfe.example\n")
    assert result.exit_code == 0, result.output
    assert "scored 4 rows, 2 of them with an error -> standard output" in said(result.output)
    result = predict(model_dir, stdin=b"http://a.example/\n")
    assert "scored 1 rows -> standard output" in said(result.output)




def test_an_output_that_cannot_be_made_is_named_never_its_temporary_file(model_dir, tmp_path):  # noqa: F811
    folder = unwritable_folder(tmp_path)
    target = folder / "out.csv"
    try:
        result = predict(model_dir, "-o", str(target), stdin=b"a.example\n")
    finally:
        (tmp_path / "locked").chmod(0o700)
    message = said(result.output)
    assert result.exit_code == 2 and message.startswith(f"Error: {target}: "), message
    assert ".tmp" not in message and "scored" not in message and result.output.count("\n") == 1


def test_a_full_output_device_is_named(model_dir):  # noqa: F811
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full to fill")
    for out_format in ("csv", "parquet", "jsonl"):
        result = predict(model_dir, "-o", "/dev/full", "--output-format", out_format, stdin=b"a.example\n" * 3000)
        assert result.exit_code == 2, result.output
        assert said(result.output) == "Error: /dev/full: no space left on device", result.output


def test_a_policy_edited_after_evaluate_is_refused_by_every_door(model_dir, tmp_path, monkeypatch):  # noqa: F811
    # the threshold in model.json raised after `evaluate` measured the model was served by predict and serve
    import hashlib
    import shutil

    from cybersentinel.ops.service import Settings, create_app

    folder = shutil.copytree(model_dir, tmp_path / "models")
    measured = (folder / "model.json").read_bytes()
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "metrics.json").write_text(json.dumps(
        {"model_sha256": json.loads(measured)["sha256"], "manifest_sha256": hashlib.sha256(measured).hexdigest()}))
    monkeypatch.chdir(tmp_path)  # the doors read reports/metrics.json from the working directory
    (tmp_path / "in.txt").write_text("http://kit.example/login.php\n")
    assert predict(folder, "-i", "in.txt", "-o", "ok.csv").exit_code == 0
    tampered = json.loads(measured)
    tampered["policy"]["threshold"] = 0.9999999
    (folder / "model.json").write_text(json.dumps(tampered))
    refused = predict(folder, "-i", "in.txt", "-o", "out.csv")
    assert refused.exit_code == 2 and "changed after `evaluate` measured this model" in refused.output
    assert not (tmp_path / "out.csv").exists()
    monitor = CliRunner().invoke(app, ["monitor", "--model-dir", str(folder), "--once", "--no-feedback", "--no-feeds",
                                       "in.txt"], env={"COLUMNS": "300"})
    assert monitor.exit_code == 2 and "changed after `evaluate` measured this model" in monitor.output
    with pytest.raises(Exception, match="changed after `evaluate` measured this model"):
        create_app(Settings(model_dir=folder, feeds_dir=None))
    pinned = predict(folder, "-i", "in.txt", "-o", "out.csv", "--model-sha256", "0" * 64)
    assert pinned.exit_code == 2 and "is not the pinned" in pinned.output


@pytest.mark.parametrize("command", ["predict", "serve"])
def test_a_model_of_other_feature_definitions_is_a_one_line_error(model_dir, tmp_path, monkeypatch,  # noqa: F811
                                                                   command):
    # what a checkout of newer code meets with an older model: the compiled scorer's recorded version differs
    monkeypatch.setattr("cybersentinel.model.compiled.FEATURIZER_VERSION", "bytes-fnv1a-0-000000000000")
    source = tmp_path / "in.txt"
    source.write_text("a.example\n")
    args = ["-i", str(source), "-o", str(tmp_path / "out.csv"), "--no-feeds", "--no-progress"] \
        if command == "predict" else ["--host", "127.0.0.1", "--port", "59999"]
    result = CliRunner().invoke(app, [command, "--model-dir", str(model_dir), *args])
    assert result.exit_code == 2, result.output
    assert "feature definitions" in result.output and "retrain the model" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert not (tmp_path / "out.csv").exists()


def test_a_uri_or_the_input_itself_as_a_local_path_is_refused_without_echoing_a_password(model_dir, tmp_path,  # noqa: F811
                                                                                          monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "in.csv"
    source.write_text("url\nhttp://a.example/\n")
    for args, hint in ((["-i", "https://admin:hunter2@files.example/urls.csv"], "--input"),
                       (["-i", "s3://AKIA:hunter2 topsecret@bucket/x.csv"], "--input"),  # a password with blanks
                       (["-i", str(source), "-o", "s3://AKIAXXX:topsecret@bucket/out.csv"], "--output")):
        result = predict(model_dir, *args)
        message = said(result.output)
        assert result.exit_code == 2 and hint in message and "a URI" in message and "***@" in message
        assert "hunter2" not in result.output and "topsecret" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]  # no folder named `s3:`
    result = predict(model_dir, "-i", str(source), "-o", str(source))
    assert result.exit_code == 2 and "is the input" in said(result.output)
    assert source.read_text() == "url\nhttp://a.example/\n"


def test_json_lines_output_is_strict_json_whatever_the_floats(model_dir, tmp_path):  # noqa: F811
    source = tmp_path / "odd.parquet"
    pq.write_table(pa.table({"url": ["https://example.com/"], "f": [float("inf")], "nested": [[1.0, float("nan")]],
                             "st": [{"a": float("-inf")}], "big": [9007199254740993]}), source)
    result = predict(model_dir, "-i", str(source), "-o", str(tmp_path / "out.jsonl"))
    assert result.exit_code == 0, result.output
    line = (tmp_path / "out.jsonl").read_text().splitlines()[0]
    row = json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    assert (row["f"], row["nested"], row["st"], row["big"]) == (None, [1.0, None], {"a": None}, 9007199254740993)

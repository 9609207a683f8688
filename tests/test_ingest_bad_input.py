"""Ingest on values Parquet cannot store in one column (a JSON API's `id` that is 1 in one record and "abc" in
another, a JSON attribute of mixed types, a PostgreSQL range, MongoDB ObjectIds, an integer `url`): a one-line
error naming the source and the column, never a pyarrow traceback, and the previous output left as it was."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import bson
import pandas as pd
import psycopg2
import pytest
import yaml

from cybersentinel.ingest.base import SourceError
from cybersentinel.ingest.mongodb import read_mongodb
from cybersentinel.ingest.postgres import read_postgres
from cybersentinel.mlops.params import compose_params

pytest_plugins = ["fixtures_db"]

REPO = Path(__file__).resolve().parents[1]


def ingest_stage():
    spec = importlib.util.spec_from_file_location("ingest_stage", REPO / "stages" / "ingest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """An ingest output folder holding a previous run's table."""
    folder = tmp_path / "raw"
    folder.mkdir()
    pd.DataFrame({"url": ["http://old.example/"], "label": [1]}).to_parquet(folder / "old.parquet")
    return folder


def assert_refused(table: pd.DataFrame, out: Path, source: str, column: str, types: str) -> None:
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    good = pd.DataFrame({"url": ["http://fine.example/"], "label": [0]})
    with pytest.raises(SourceError) as caught:
        ingest_stage().write_tables(out, {"fine": good, source: table})
    message = str(caught.value)
    assert "\n" not in message and f"source {source}: column {column!r}" in message and types in message, message
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing written, not even the good table
    assert [p.name for p in out.parent.iterdir()] == ["raw"]  # no temporary folder left behind


def pg_run(dsn: str, sql: str) -> None:
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        cur.execute(sql)
    conn.close()


def pg_spec(**overrides) -> dict:
    spec = yaml.safe_load((REPO / "conf/source/postgres.yaml").read_text())
    spec.update(table="t", source_column="src", key=["k"], version_column=None, retries=0)
    spec.update(overrides)
    return spec


def test_a_json_api_field_of_mixed_types_is_named(out):
    table = pd.DataFrame({"url": ["http://a.example/", "http://b.example/"], "id": [1, "abc"], "label": [1, 0]})
    assert_refused(table, out, "api", "id", "int, str")


def test_a_postgres_json_attribute_of_mixed_types_is_named(pg_dsn, out):
    pg_run(pg_dsn, """CREATE TABLE t (k integer PRIMARY KEY, src text, url text, label smallint, attributes json);
                      INSERT INTO t VALUES (1, 's', 'http://a.example/', 1, '{"x": 1}'),
                                           (2, 's', 'http://b.example/', 0, '{"x": "abc"}')""")
    assert_refused(read_postgres("s", pg_spec()).table, out, "s", "x", "int, str")


def test_a_postgres_range_column_is_named(pg_dsn, out):
    pg_run(pg_dsn, """CREATE TABLE t (k integer PRIMARY KEY, src text, url text, label smallint, span int4range);
                      INSERT INTO t VALUES (1, 's', 'http://a.example/', 1, '[1,5)'), (2, 's', 'http://b.example/', 0,
                                            '[2,3)')""")
    table = read_postgres("s", pg_spec(columns=["url", "label", "span"], expand_json=None)).table
    assert_refused(table, out, "s", "span", "NumericRange")


def mongo_docs(mongo, *docs: dict) -> None:
    mongo["cybersentinel"]["labelled_urls"].insert_many(
        [{"source": "m", "source_row": i, "url": f"http://m{i}.example/", "label": 1, "attributes": {}, **doc}
         for i, doc in enumerate(docs)])


def mongo_spec() -> dict:
    spec = yaml.safe_load((REPO / "conf/source/mongodb.yaml").read_text())
    spec.update(retries=0, version_column=None)
    return spec


def test_mongodb_object_id_attributes_are_named(mongo, out):
    mongo_docs(mongo, {"attributes": {"ref": bson.ObjectId()}}, {"attributes": {"ref": bson.ObjectId()}})
    assert_refused(read_mongodb("m", mongo_spec()).table, out, "m", "ref", "ObjectId")


def test_an_integer_url_in_mongodb_is_named(mongo, out):
    mongo_docs(mongo, {"url": 5}, {})
    assert_refused(read_mongodb("m", mongo_spec()).table, out, "m", "url", "int, str")


def test_the_ingest_stage_fails_on_one_line_and_writes_nothing(pg_dsn, tmp_path):
    pg_run(pg_dsn, """CREATE TABLE t (k integer PRIMARY KEY, src text, url text, label smallint, attributes json);
                      INSERT INTO t VALUES (1, 'alpha', 'http://a.example/', 1, '{"x": 1}'),
                                           (2, 'alpha', 'http://b.example/', 0, '{"x": "abc"}')""")
    params = yaml.safe_load(compose_params(["source=postgres"], REPO / "conf"))
    params["source"].update(table="t", source_column="src", key=["k"], version_column=None, retries=0)
    params["dataset"] = {"name": "tiny", "kind": "url", "sources": [{"name": "alpha"}]}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    env = {**os.environ, "MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}  # no tracking store: the stage carries on
    result = subprocess.run([sys.executable, str(REPO / "stages/ingest.py"), "--out", "data/raw"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if "ingest failed" in line]
    assert errors == [errors[0]] and "source alpha: column 'x'" in errors[0], result.stderr
    assert not (tmp_path / "data" / "raw").exists()
    assert not (tmp_path / "data").exists() or not [p for p in (tmp_path / "data").iterdir() if ".raw" in p.name]


@pytest.mark.parametrize(("content", "message"), [
    (b"", "not a readable CSV file"),
    (b"url,date,label,label\nhttp://a.example/,2020,1,0\n", "the column(s) label appear more than once"),
    (b"url,date\nhttp://a.example/,2020\n", "no label column(s) 'label'"),
    (b"url ,date,label\nhttp://a.example/,2020,1\n", "no configured column(s) 'url'"),
])
def test_a_csv_file_a_source_cannot_read_is_one_line_naming_it(tmp_path, content, message):
    # each was a KeyError or a pandas traceback from the ingest stage, which reports only SourceErrors in one line
    import hashlib

    from cybersentinel.ingest.files import read_source

    (tmp_path / "urls.csv").write_bytes(content)
    spec = {"name": "urls.csv", "url": "https://example.org/urls.csv", "sha256": hashlib.sha256(content).hexdigest()}
    source = {"name": "s", "reader": "csv", "files": [spec], "label_column": "label", "labels": {"1": 1, "0": 0},
              "columns": ["url"]}
    with pytest.raises(SourceError, match=re.escape(message)):
        read_source(source, mirror=str(tmp_path))

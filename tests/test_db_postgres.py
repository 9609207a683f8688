"""The `postgres` source against a real PostgreSQL server: streaming, fingerprints, and every fault
(server down, connection dropped, statement timeout, refused credentials, rows that break the schema)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pandas as pd
import psycopg2
import pytest
import yaml

from cybersentinel.ingest.base import SourceError
from cybersentinel.ingest.postgres import postgres_snapshot, read_postgres
from cybersentinel.ingest.sources import ingest, snapshot

CONF = Path(__file__).resolve().parents[1] / "conf" / "source" / "postgres.yaml"
VERDICTS = {"phishing": 1, "benign": 0}

pytest_plugins = ["fixtures_db"]


def team_spec(**overrides) -> dict:
    """The shipped postgres config pointed at a team's own table, with quick retries for the tests."""
    spec = yaml.safe_load(CONF.read_text())
    spec.update(table="team_urls", source_column="feed", key=["id"], version_column="updated_at",
                columns=["url", "verdict"], expand_json=None, label_column="verdict", labels=VERDICTS,
                chunk_size=40, retries=2, backoff_s=0.05, connect_timeout_s=3)
    spec.update(overrides)
    return spec


def run(dsn: str, sql: str, params: tuple = ()) -> None:
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        cur.execute(sql, params or None)
    conn.close()


@pytest.fixture
def team_table(pg_dsn: str) -> str:
    run(pg_dsn, """
        CREATE TABLE team_urls (id integer PRIMARY KEY, feed text NOT NULL, url text NOT NULL, verdict text,
                                updated_at timestamptz NOT NULL DEFAULT '2024-01-01T00:00:00Z');
        INSERT INTO team_urls (id, feed, url, verdict)
        SELECT i, CASE WHEN i % 5 = 0 THEN 'other' ELSE 'alpha' END, 'http://host' || i || '.example/p?q=' || i,
               CASE WHEN i % 3 = 0 THEN 'phishing' ELSE 'benign' END
        FROM generate_series(1, 250) AS i;
    """)
    return pg_dsn


def expected_alpha() -> pd.DataFrame:
    ids = [i for i in range(1, 251) if i % 5]
    return pd.DataFrame({"url": [f"http://host{i}.example/p?q={i}" for i in ids],
                         "label": [1 if i % 3 == 0 else 0 for i in ids]})


def test_table_rows_stream_in_key_order_into_the_tidy_table(team_table):
    chunks = []
    got = read_postgres("alpha", team_spec(), on_chunk=chunks.append)
    table = got.table
    assert list(table.columns) == ["url", "label", "source", "snapshot"]
    pd.testing.assert_frame_equal(table[["url", "label"]], expected_alpha(), check_dtype=False)
    assert table["label"].dtype == "int8" and set(table["source"]) == {"alpha"}
    assert table["snapshot"].nunique() == 1 and table["snapshot"].iloc[0] == got.snapshot["snapshot"]
    assert chunks == [40, 80, 120, 160, 200]  # a server-side cursor, chunk_size rows per round trip
    assert got.snapshot == postgres_snapshot("alpha", team_spec())  # the snapshot stage sees the same data
    assert got.fetches[0]["rows"] == 200 and got.fetches[0]["started_at"] <= got.fetches[0]["finished_at"]


def test_column_types_do_not_depend_on_the_chunk_size_and_large_integers_stay_exact(team_table):
    """A chunk's frame had taken its own types: a nullable bigint was object in chunks of 2 and float64 in one
    chunk, 9007199254740993 read as ...992."""
    run(team_table, "ALTER TABLE team_urls ADD COLUMN asn bigint; UPDATE team_urls SET asn = 9007199254740993 + id "
                    "WHERE id > 200")
    tables = [read_postgres("alpha", team_spec(columns=["url", "verdict", "asn"], chunk_size=size)).table
              for size in (2, 40, 1000)]
    for table in tables[1:]:
        pd.testing.assert_frame_equal(table.drop(columns="snapshot"), tables[0].drop(columns="snapshot"))
    assert tables[0]["asn"].dtype == "Int64" and tables[0]["asn"].isna().sum() == 160
    assert tables[0]["asn"].dropna().tolist()[0] == 9007199254740993 + 201


def test_query_gets_the_source_name_as_a_bound_parameter(team_table):
    run(team_table, "INSERT INTO team_urls (id, feed, url, verdict) VALUES (900, %s, 'http://quote.example', 'benign')",
        ("o'brien; DROP TABLE team_urls; --",))
    spec = team_spec(table=None, query="SELECT id, url, verdict, updated_at FROM team_urls "
                                       "WHERE feed = %(source)s AND url LIKE 'http://%%'")
    got = ingest({"name": "o'brien; DROP TABLE team_urls; --"}, spec)
    assert got.table["url"].tolist() == ["http://quote.example"]
    assert len(read_postgres("alpha", team_spec()).table) == 200  # the table is still there


def test_fingerprint_changes_exactly_when_the_data_change(team_table):
    spec = team_spec()
    first = snapshot({"name": "alpha"}, spec)
    assert snapshot({"name": "alpha"}, spec) == first
    run(team_table, "UPDATE team_urls SET verdict = 'phishing', updated_at = now() WHERE id = 7")
    updated = snapshot({"name": "alpha"}, spec)
    assert updated["rows"] == first["rows"] and updated["fingerprint"] != first["fingerprint"]
    run(team_table, "DELETE FROM team_urls WHERE id = 8")
    assert snapshot({"name": "alpha"}, spec)["rows"] == first["rows"] - 1
    run(team_table, "UPDATE team_urls SET verdict = 'benign' WHERE id = 10")  # another source's row
    assert snapshot({"name": "alpha"}, spec)["rows"] == first["rows"] - 1


def test_server_down_at_start_is_a_clear_error_after_bounded_retries(postgres_server, monkeypatch):
    from fixtures_db import free_port

    monkeypatch.setenv("CYBERSENTINEL_PG_DSN", f"postgresql://postgres:secret-pw@127.0.0.1:{free_port()}/x")
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"(?s)refused.*gave up after 3 attempts") as caught:
        read_postgres("alpha", team_spec())
    assert time.monotonic() - started < 10
    assert "secret-pw" not in str(caught.value)


def test_refused_credentials_fail_at_once_without_echoing_the_password(postgres_server, team_table, monkeypatch):
    dsn = team_table.replace(postgres_server.password, "not-the-password")
    monkeypatch.setenv("CYBERSENTINEL_PG_DSN", dsn)
    with pytest.raises(SourceError, match="password authentication failed") as caught:
        read_postgres("alpha", team_spec(retries=5, backoff_s=5))  # no retries: it would take 155 s
    assert "not-the-password" not in str(caught.value) and "gave up" not in str(caught.value)


def test_statement_timeout_is_reported_not_waited_out(team_table):
    spec = team_spec(table=None, statement_timeout_ms=200,
                     query="SELECT id, url, verdict, updated_at FROM team_urls, pg_sleep(3) WHERE feed = %(source)s")
    started = time.monotonic()
    with pytest.raises(SourceError, match="statement_timeout_ms=200"):
        read_postgres("alpha", spec)
    assert time.monotonic() - started < 2.5


def kill_reader(server, dbname: str) -> None:
    server.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                   "WHERE application_name = 'cybersentinel' AND datname = current_database()", dbname)


def test_connection_dropped_mid_stream_is_read_again_from_the_start(postgres_server, team_table):
    dbname = team_table.rsplit("/", 1)[1]
    calls = []

    def drop_once(rows: int) -> None:
        calls.append(rows)
        if len(calls) == 1:
            kill_reader(postgres_server, dbname)

    got = read_postgres("alpha", team_spec(), on_chunk=drop_once)
    pd.testing.assert_frame_equal(got.table[["url", "label"]], expected_alpha(), check_dtype=False)
    assert calls[:2] == [40, 40]  # the second attempt started over, nothing was stitched together
    assert got.snapshot == postgres_snapshot("alpha", team_spec())


def test_connection_dropped_every_time_gives_up_after_the_retries(postgres_server, team_table):
    dbname = team_table.rsplit("/", 1)[1]
    with pytest.raises(SourceError, match=r"(?s)terminat.*gave up after 3 attempts"):
        read_postgres("alpha", team_spec(), on_chunk=lambda rows: kill_reader(postgres_server, dbname))


@pytest.mark.slow
def test_server_stopped_mid_run_fails_cleanly_and_the_next_run_succeeds(postgres_server, team_table):
    try:
        with pytest.raises(SourceError, match="gave up after 3 attempts"):
            read_postgres("alpha", team_spec(), on_chunk=lambda rows: postgres_server.stop("immediate"))
    finally:
        postgres_server.start()
    assert len(read_postgres("alpha", team_spec()).table) == 200


def test_a_row_that_breaks_the_schema_is_named(team_table):
    run(team_table, "UPDATE team_urls SET verdict = 'maybe' WHERE id = 12")
    with pytest.raises(SourceError, match="'maybe'"):
        read_postgres("alpha", team_spec())
    with pytest.raises(SourceError, match=r"not 0 or 1.*'benign'"):
        read_postgres("alpha", team_spec(labels=None))


def test_a_key_that_is_not_unique_is_an_error(team_table):
    spec = team_spec(key=["verdict"], version_column=None)
    with pytest.raises(SourceError, match="occurs twice"):
        postgres_snapshot("alpha", spec)


def test_no_rows_is_an_error_not_an_empty_dataset(team_table):
    with pytest.raises(SourceError, match="no rows"):
        read_postgres("nonexistent", team_spec())


def test_dsn_comes_from_a_dotenv_file_when_not_in_the_environment(team_table, tmp_path, monkeypatch):
    monkeypatch.delenv("CYBERSENTINEL_PG_DSN")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SourceError, match="set CYBERSENTINEL_PG_DSN"):
        read_postgres("alpha", team_spec())
    (tmp_path / ".env").write_text(f"CYBERSENTINEL_PG_DSN={team_table}\n")
    assert len(read_postgres("alpha", team_spec()).table) == 200


def test_json_objects_expand_into_columns_in_their_stored_order(pg_dsn):
    run(pg_dsn, """
        CREATE TABLE t (k integer PRIMARY KEY, src text, url text, label smallint, extra json);
        INSERT INTO t VALUES (1, 's', 'a.example', 1, '{"zeta": 1, "alpha": 2.5}'),
                             (2, 's', 'b.example', 0, '{"zeta": 3, "alpha": null}');
    """)
    spec = team_spec(table="t", source_column="src", key=["k"], version_column=None, columns=["url", "label", "extra"],
                     expand_json="extra", label_column="label", labels=None)
    table = read_postgres("s", spec).table
    assert list(table.columns) == ["url", "zeta", "alpha", "label", "source", "snapshot"]
    assert table["zeta"].tolist() == [1, 3] and table["alpha"].iloc[0] == 2.5 and pd.isna(table["alpha"].iloc[1])


@pytest.mark.parametrize(("query", "expected"), [
    ("SELECT id, url, verdict, updated_at FROM team_urls WHERE url LIKE 'http%' AND feed = %(source)s",
     "write %% for a literal %"),
    ("SELECT id, url, verdict, updated_at FROM team_urls WHERE feed = %(src)s", "unknown parameter %(src)s"),
    ("SELECT id, url, verdict, updated_at FROM team_urls WHERE feed = %s", "write %% for a literal %"),
])
def test_a_query_with_a_bare_percent_or_an_unknown_parameter_is_a_clear_error(team_table, query, expected):
    for read in (read_postgres, postgres_snapshot):  # the snapshot stage runs the same query
        with pytest.raises(SourceError, match=re.escape(expected)) as caught:
            read("alpha", team_spec(table=None, query=query))
        assert "\n" not in str(caught.value) and "postgres source alpha" in str(caught.value)

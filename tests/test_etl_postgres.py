"""`cybersentinel etl` into a real PostgreSQL server: migrations, idempotent upserts with counts, the
quarantine, feed entries, one transaction per load (a killed connection commits nothing), and the CLI."""

from __future__ import annotations

import json
import math
import threading
import time
from pathlib import Path

import pandas as pd
import psycopg2
import pytest
import yaml
from typer.testing import CliRunner

from cybersentinel.cli.app import app
from cybersentinel.ingest.postgres import read_postgres
from cybersentinel.ops.etl import (
    LoadError,
    load_postgres,
    migrate_postgres,
    prepare_feed_entries,
    prepare_labelled_urls,
)

CONF = Path(__file__).resolve().parents[1] / "conf" / "source" / "postgres.yaml"
NAN = math.nan

pytest_plugins = ["fixtures_db"]


def validated_frame() -> pd.DataFrame:
    """The validated table's shape: URL-only rows (attributes missing) and rows with page features."""
    return pd.DataFrame({
        "url": ["http://a.example/login", "b.example", "https://c.example/x?y=1", "http://d.example/é"],
        "label": [1, 0, 1, 0],
        "source": ["ebbu2017", "ebbu2017", "web_page_phishing", "web_page_phishing"],
        "snapshot": ["5e8fbcc88d6ba25f", "c513d1f11b0ce159", "21093e2902e5441c", "21093e2902e5441c"],
        "length_url": [NAN, NAN, 23.0, 17.0],
        "nb_dots": [NAN, NAN, 2.0, 1.0],
    })


def with_bad_rows(frame: pd.DataFrame) -> pd.DataFrame:
    bad = pd.DataFrame({
        "url": ["http://nul\x00.example", "   ", "http://e.example", "http://f.example"],
        "label": [1, 0, 7, 1],
        "source": ["ebbu2017"] * 4,
        "snapshot": ["5e8fbcc88d6ba25f", "5e8fbcc88d6ba25f", "5e8fbcc88d6ba25f", "not-hex"],
        "length_url": [NAN] * 4, "nb_dots": [NAN] * 4,
    })
    return pd.concat([frame, bad], ignore_index=True)


def query(dsn: str, sql: str) -> list[tuple]:
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def as_dict(counts) -> dict:
    return {name: vars(c) for name, c in counts.items()}


@pytest.fixture
def migrated(pg_dsn: str) -> str:
    assert migrate_postgres(pg_dsn) == [1]
    return pg_dsn


def test_migrations_create_the_schema_once(migrated):
    assert migrate_postgres(migrated) == []
    tables = {name for (name,) in query(migrated, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert tables == {"schema_migrations", "labelled_urls", "feed_entries", "quarantine"}
    indexes = {name for (name,) in query(migrated, "SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")}
    assert {"labelled_urls_pkey", "labelled_urls_url", "feed_entries_network", "quarantine_pkey"} <= indexes


def test_load_before_migrate_says_what_to_run(pg_dsn):
    with pytest.raises(LoadError, match="etl migrate --to postgres"):
        load_postgres(pg_dsn, [prepare_labelled_urls(validated_frame())])


def test_loading_twice_adds_nothing_and_bad_rows_are_quarantined_with_reasons(migrated):
    prepared = prepare_labelled_urls(with_bad_rows(validated_frame()))
    first = load_postgres(migrated, [prepared])
    assert as_dict(first) == {"labelled_urls": {"inserted": 4, "updated": 0, "unchanged": 0, "rejected": 4,
                                                 "deleted": 0}}
    again = load_postgres(migrated, [prepare_labelled_urls(with_bad_rows(validated_frame()))])
    assert as_dict(again) == {"labelled_urls": {"inserted": 0, "updated": 0, "unchanged": 4, "rejected": 4,
                                                 "deleted": 0}}
    assert query(migrated, "SELECT count(*) FROM labelled_urls") == [(4,)]
    quarantined = query(migrated, "SELECT reason, record::text FROM quarantine ORDER BY reason")
    reasons = [(reason, json.loads(record)["url"]) for reason, record in quarantined]  # json keeps \u0000
    assert reasons == [("label is not 0 or 1", "http://e.example"), ("snapshot is not 16 hex characters",
                       "http://f.example"), ("url contains a NUL character", "http://nul\x00.example"),
                       ("url is blank", "   ")]
    rows = query(migrated, "SELECT source, source_row, url, label, attributes::text FROM labelled_urls "
                           "ORDER BY source, source_row")
    assert rows == [("ebbu2017", 0, "http://a.example/login", 1, "{}"), ("ebbu2017", 1, "b.example", 0, "{}"),
                    ("web_page_phishing", 0, "https://c.example/x?y=1", 1, '{"length_url": 23.0, "nb_dots": 2.0}'),
                    ("web_page_phishing", 1, "http://d.example/é", 0, '{"length_url": 17.0, "nb_dots": 1.0}')]


def test_a_row_with_an_infinite_attribute_is_quarantined_and_the_rest_load(migrated):
    frame = validated_frame()
    frame.loc[3, "length_url"] = math.inf  # JSON has no infinity: the row cannot be stored, the others can
    counts = load_postgres(migrated, [prepare_labelled_urls(frame)])
    assert as_dict(counts)["labelled_urls"] == {"inserted": 3, "updated": 0, "unchanged": 0, "rejected": 1,
                                                     "deleted": 0}
    [(reason, record)] = query(migrated, "SELECT reason, record::text FROM quarantine")
    assert reason.startswith("attributes are not storable as JSON") and json.loads(record)["length_url"] == "inf"
    nested = validated_frame().assign(scores=[[1.0], [2.0], [3.0], [math.inf]])  # however deep it sits
    assert json.loads(prepare_labelled_urls(nested).rejected["record"][0])["scores"] == ["inf"]


def test_a_changed_row_is_updated_not_duplicated(migrated):
    load_postgres(migrated, [prepare_labelled_urls(validated_frame())])
    changed = validated_frame()
    changed.loc[1, "label"] = 1
    counts = load_postgres(migrated, [prepare_labelled_urls(changed)])
    assert as_dict(counts)["labelled_urls"] == {"inserted": 0, "updated": 1, "unchanged": 3, "rejected": 0,
                                                     "deleted": 0}
    assert query(migrated, "SELECT label, updated_at > loaded_at FROM labelled_urls WHERE url = 'b.example'") == [
        (1, True)]


def test_loaded_rows_read_back_through_the_postgres_source(migrated):
    load_postgres(migrated, [prepare_labelled_urls(validated_frame())])
    spec = yaml.safe_load(CONF.read_text())
    web = read_postgres("web_page_phishing", spec).table
    assert list(web.columns) == ["url", "length_url", "nb_dots", "label", "source", "snapshot"]
    expected = validated_frame().iloc[2:].reset_index(drop=True)
    pd.testing.assert_frame_equal(web.drop(columns="snapshot"), expected.drop(columns="snapshot")[web.columns[:-1]],
                                  check_dtype=False)
    ebbu = read_postgres("ebbu2017", spec).table
    assert list(ebbu.columns) == ["url", "label", "source", "snapshot"] and ebbu["url"].tolist() == [
        "http://a.example/login", "b.example"]


def write_feeds(folder: Path) -> None:
    folder.mkdir()
    (folder / "spamhaus_drop.txt").write_text("; Spamhaus DROP\n1.2.3.0/24 ; SBL1\n5.6.0.0/16 ; SBL2\n"
                                              "not-a-network ; SBL3\n1.2.3.4/24 ; SBL4 (same network)\n")
    (folder / "et_compromised_ips.txt").write_text("9.9.9.9\n")
    (folder / "tranco_top100k.csv").write_text("google.com\nexample.org\nbad_domain_\n")


def test_feed_entries_are_upserted_with_networks_and_ranks(migrated, tmp_path):
    write_feeds(tmp_path / "feeds")
    first = load_postgres(migrated, [prepare_feed_entries(tmp_path / "feeds")])
    assert as_dict(first)["feed_entries"] == {"inserted": 5, "updated": 0, "unchanged": 0, "rejected": 3,
                                                  "deleted": 0}
    again = load_postgres(migrated, [prepare_feed_entries(tmp_path / "feeds")])
    assert as_dict(again)["feed_entries"] == {"inserted": 0, "updated": 0, "unchanged": 5, "rejected": 3,
                                                  "deleted": 0}
    assert query(migrated, "SELECT feed, entry FROM feed_entries WHERE network >>= '1.2.3.99' ORDER BY 1") == [
        ("spamhaus_drop", "1.2.3.0/24")]
    assert query(migrated, "SELECT entry, rank FROM feed_entries WHERE kind = 'domain-popularity' ORDER BY rank") == [
        ("google.com", 1), ("example.org", 2)]
    assert query(migrated, "SELECT entry FROM feed_entries WHERE feed = 'et_compromised'") == [("9.9.9.9",)]
    reasons = [r for (r,) in query(migrated, "SELECT reason FROM quarantine ORDER BY reason")]
    assert len(reasons) == 3 and reasons[0].startswith("duplicate of 1.2.3.0/24 on line 2")


def waiting_loader(dsn: str) -> int | None:
    rows = query(dsn, "SELECT pid FROM pg_stat_activity WHERE application_name = 'cybersentinel-etl' "
                      "AND wait_event_type = 'Lock'")
    return rows[0][0] if rows else None


def load_while_locked(dsn: str, retries: int) -> tuple[object, int]:
    """Hold a lock the load needs, kill the loader's connection while it waits, then let go."""
    blocker = psycopg2.connect(dsn)
    blocker.cursor().execute("LOCK TABLE labelled_urls IN ACCESS EXCLUSIVE MODE")
    outcome: dict[str, object] = {}

    def load() -> None:
        try:
            outcome["counts"] = load_postgres(dsn, [prepare_labelled_urls(validated_frame())],
                                              {"retries": retries, "backoff_s": 0.05})
        except LoadError as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=load)
    thread.start()
    deadline = time.monotonic() + 20
    while (pid := waiting_loader(dsn)) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pid, "the load never waited for the lock"
    query(dsn, f"SELECT pg_terminate_backend({pid})")
    blocker.rollback()
    blocker.close()
    thread.join(30)
    return outcome.get("counts") or outcome.get("error"), query(dsn, "SELECT count(*) FROM labelled_urls")[0][0]


def test_a_connection_killed_mid_load_commits_nothing_and_the_rerun_completes(migrated):
    error, rows = load_while_locked(migrated, retries=0)
    assert isinstance(error, LoadError) and "nothing was committed" in str(error) and rows == 0
    counts, rows = load_while_locked(migrated, retries=2)  # the retry starts over and succeeds
    assert as_dict(counts)["labelled_urls"]["inserted"] == 4 and rows == 4


def test_cli_migrates_loads_and_reports_counts(migrated, tmp_path):
    validated = tmp_path / "validated.parquet"
    with_bad_rows(validated_frame()).to_parquet(validated)
    write_feeds(tmp_path / "feeds")
    runner = CliRunner()
    result = runner.invoke(app, ["etl", "migrate", "--to", "postgres"])
    assert result.exit_code == 0 and "already at version 1" in result.output
    args = ["etl", "load", "--to", "postgres", "--validated", str(validated), "--feeds-dir", str(tmp_path / "feeds")]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "labelled_urls │ 4 │ 0 │ 0 │ 4 │ 0" in " ".join(first.output.split())
    second = " ".join(runner.invoke(app, args).output.split())
    assert "labelled_urls │ 0 │ 0 │ 4 │ 4 │ 0" in second and "feed_entries │ 0 │ 0 │ 5 │ 3 │ 0" in second
    assert "rejected ┃ deleted" in second


def test_cli_reports_an_unreachable_server_clearly(tmp_path, monkeypatch):
    from fixtures_db import free_port

    monkeypatch.setenv("CYBERSENTINEL_PG_DSN", f"postgresql://u:pw@127.0.0.1:{free_port()}/db")
    validated = tmp_path / "validated.parquet"
    validated_frame().to_parquet(validated)
    result = CliRunner().invoke(app, ["etl", "load", "--to", "postgres", "--validated", str(validated),
                                      "--feeds-dir", str(tmp_path / "none"), "--retries", "0"])
    assert result.exit_code == 2
    output = " ".join(result.output.split())
    assert "Connection refused" in output and "nothing was committed" in output


@pytest.mark.parametrize("kind", ["columns", "not_parquet"])
def test_cli_reports_an_unusable_url_table_before_connecting(tmp_path, monkeypatch, kind):
    monkeypatch.delenv("CYBERSENTINEL_PG_DSN", raising=False)  # never reached: the table is read first
    validated = tmp_path / "validated.parquet"
    if kind == "columns":
        validated_frame().drop(columns=["label", "snapshot"]).to_parquet(validated)
    else:
        validated.write_text("url,label\nhttp://a.example/,1\n")
    result = CliRunner().invoke(app, ["etl", "load", "--to", "postgres", "--validated", str(validated),
                                      "--feeds-dir", str(tmp_path / "none")], env={"COLUMNS": "400"})
    output = " ".join(result.output.split())
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), output
    expected = {"columns": "lacks the columns ['label', 'snapshot']", "not_parquet": "not a Parquet file"}[kind]
    assert f"{validated}: " in output and expected in output, output


def numbered(n: int, source: str = "alpha") -> pd.DataFrame:
    return pd.DataFrame({"url": [f"http://{source}{i}.example/" for i in range(n)], "label": [i % 2 for i in range(n)],
                         "source": source, "snapshot": "0123456789abcdef", "nb_dots": [float(i) for i in range(n)]})


def test_reloading_a_smaller_source_deletes_the_rows_it_no_longer_holds(migrated):
    load_postgres(migrated, [prepare_labelled_urls(pd.concat([numbered(10), numbered(3, "beta")]))])
    smaller = numbered(5)
    smaller.loc[2, "label"] = 7  # now rejected: the row stored at its position is stale too
    counts = load_postgres(migrated, [prepare_labelled_urls(smaller)])
    assert as_dict(counts)["labelled_urls"] == {"inserted": 0, "updated": 0, "unchanged": 4, "rejected": 1,
                                                "deleted": 6}
    assert query(migrated, "SELECT source, array_agg(source_row ORDER BY source_row) FROM labelled_urls "
                           "GROUP BY source ORDER BY source") == [("alpha", [0, 1, 3, 4]), ("beta", [0, 1, 2])]
    spec = yaml.safe_load(CONF.read_text())  # a later ingest reads what was loaded last, not 10 rows
    assert read_postgres("alpha", spec).table["url"].tolist() == [f"http://alpha{i}.example/" for i in (0, 1, 3, 4)]
    assert as_dict(load_postgres(migrated, [prepare_labelled_urls(smaller)]))["labelled_urls"]["deleted"] == 0


def test_the_deletes_roll_back_with_the_rest_of_the_load(migrated, tmp_path):
    load_postgres(migrated, [prepare_labelled_urls(numbered(10))])
    feeds = tmp_path / "feeds"
    write_feeds(feeds)
    broken = prepare_feed_entries(feeds)  # a feed entry the CHECK refuses: the load fails after the deletes ran
    broken.accepted.loc[0, "feed_sha256"] = "not-hex"
    with pytest.raises(LoadError, match="nothing committed"):
        load_postgres(migrated, [prepare_labelled_urls(numbered(5)), broken])
    assert query(migrated, "SELECT count(*) FROM labelled_urls") == [(10,)]


def test_cli_a_validated_path_that_does_not_exist_is_an_error_before_connecting(migrated, tmp_path, monkeypatch):
    write_feeds(tmp_path / "feeds")
    missing = tmp_path / "validted.parquet"  # mistyped
    result = CliRunner().invoke(app, ["etl", "load", "--to", "postgres", "--validated", str(missing),
                                      "--feeds-dir", str(tmp_path / "feeds")], env={"COLUMNS": "400"})
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert f"--validated {missing} does not exist" in result.output and len(result.output.splitlines()) == 1
    assert query(migrated, "SELECT count(*) FROM feed_entries") == [(0,)]  # the feeds were not loaded alone
    monkeypatch.chdir(tmp_path)  # the default path absent: a documented skip, the feeds still load
    result = CliRunner().invoke(app, ["etl", "load", "--to", "postgres", "--feeds-dir", "feeds"])
    assert result.exit_code == 0 and "no URL table at data/validated.parquet" in result.output, result.output
    assert query(migrated, "SELECT count(*) FROM feed_entries") == [(5,)]

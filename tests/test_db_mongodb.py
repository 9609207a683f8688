"""The `mongodb` source and `etl load --to mongodb`: unit tests on mongomock, a server-down test with the
real driver, and integration tests against a real MongoDB when CYBERSENTINEL_TEST_MONGODB_URI is set."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from cybersentinel.cli.app import app
from cybersentinel.ingest.base import SourceError
from cybersentinel.ingest.mongodb import mongodb_snapshot, read_mongodb
from cybersentinel.ops.etl import (
    LoadError,
    load_mongodb,
    migrate_mongodb,
    prepare_feed_entries,
    prepare_labelled_urls,
)

pytest_plugins = ["fixtures_db"]

CONF = Path(__file__).resolve().parents[1] / "conf" / "source" / "mongodb.yaml"
NAN = math.nan


def validated_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "url": ["http://a.example/login", "b.example", "https://c.example/x?y=1", "http://d.example/", "\x00bad"],
        "label": [1, 0, 1, 0, 1],
        "source": ["ebbu2017", "ebbu2017", "web_page_phishing", "web_page_phishing", "ebbu2017"],
        "snapshot": ["5e8fbcc88d6ba25f", "c513d1f11b0ce159", "21093e2902e5441c", "21093e2902e5441c",
                     "5e8fbcc88d6ba25f"],
        "nb_dots": [NAN, NAN, 2.0, 1.0, NAN],
        "length_url": [NAN, NAN, 23.0, 17.0, NAN],
    })


def spec(**overrides) -> dict:
    loaded = yaml.safe_load(CONF.read_text())
    loaded.update(retries=1, backoff_s=0.01, connect_timeout_s=0.3)
    loaded.update(overrides)
    return loaded


def counts_of(counts) -> dict:
    return {name: vars(c) for name, c in counts.items()}


def test_load_is_idempotent_and_reads_back_through_the_source(mongo):
    db = mongo["cybersentinel"]
    assert migrate_mongodb(db) == [1] and migrate_mongodb(db) == []
    first = load_mongodb(db, [prepare_labelled_urls(validated_frame())], batch_size=2)
    assert counts_of(first) == {"labelled_urls": {"inserted": 4, "updated": 0, "unchanged": 0, "rejected": 1,
                                                    "deleted": 0}}
    again = load_mongodb(db, [prepare_labelled_urls(validated_frame())], batch_size=2)
    assert counts_of(again) == {"labelled_urls": {"inserted": 0, "updated": 0, "unchanged": 4, "rejected": 1,
                                                    "deleted": 0}}
    assert db.labelled_urls.count_documents({}) == 4 and db.quarantine.count_documents({}) == 1
    assert db.quarantine.find_one()["reason"] == "url contains a NUL character"

    web = read_mongodb("web_page_phishing", spec())
    assert list(web.table.columns) == ["url", "nb_dots", "length_url", "label", "source", "snapshot"]
    assert web.table["url"].tolist() == ["https://c.example/x?y=1", "http://d.example/"]
    assert web.table["nb_dots"].tolist() == [2.0, 1.0] and web.table["label"].dtype == "int8"
    assert web.snapshot == mongodb_snapshot("web_page_phishing", spec())
    ebbu = read_mongodb("ebbu2017", spec(batch_size=1), on_chunk=lambda rows: None)
    assert list(ebbu.table.columns) == ["url", "label", "source", "snapshot"] and len(ebbu.table) == 2


def test_a_changed_row_is_updated_and_changes_the_fingerprint(mongo):
    db = mongo["cybersentinel"]
    migrate_mongodb(db)
    load_mongodb(db, [prepare_labelled_urls(validated_frame())])
    before = mongodb_snapshot("ebbu2017", spec())
    changed = validated_frame()
    changed.loc[1, "label"] = 1
    counts = load_mongodb(db, [prepare_labelled_urls(changed)])
    assert counts_of(counts)["labelled_urls"] == {"inserted": 0, "updated": 1, "unchanged": 3, "rejected": 1,
                                                     "deleted": 0}
    after = mongodb_snapshot("ebbu2017", spec())
    assert after["rows"] == before["rows"] and after["fingerprint"] != before["fingerprint"]
    assert mongodb_snapshot("web_page_phishing", spec()) == mongodb_snapshot("web_page_phishing", spec())


def test_a_teams_collection_with_filter_projection_and_label_mapping(mongo):
    docs = [{"_id": i, "url": f"http://h{i}.example", "verdict": "malicious" if i % 2 else "clean",
             "team": "soc", "status": "confirmed" if i % 3 else "pending", "notes": "x" * 10} for i in range(20)]
    mongo["intel"]["verdicts"].insert_many(docs)
    team = spec(database="intel", collection="verdicts", source_field="team", key=["_id"], version_column=None,
                filter={"status": "confirmed"}, columns=["url", "verdict"], expand_json=None,
                label_column="verdict", labels={"malicious": 1, "clean": 0}, batch_size=4)
    got = read_mongodb("soc", team)
    confirmed = [d for d in docs if d["status"] == "confirmed"]
    assert got.table["url"].tolist() == [d["url"] for d in confirmed]
    assert got.table["label"].tolist() == [1 if d["verdict"] == "malicious" else 0 for d in confirmed]
    assert list(got.table.columns) == ["url", "label", "source", "snapshot"]
    mongo["intel"]["verdicts"].update_one({"_id": 1}, {"$set": {"verdict": "unsure"}})
    with pytest.raises(SourceError, match="'unsure'"):
        read_mongodb("soc", team)


def test_a_document_without_the_expanded_field_reads_as_one_without_its_keys(mongo):
    """PostgreSQL's NULL in the JSON column reads as no keys; a document without the field had failed the read."""
    docs = [{"_id": 1, "url": "http://a.example/", "label": 1, "attributes": {"asn": 15169}, "team": "soc"},
            {"_id": 2, "url": "http://b.example/", "label": 0, "team": "soc"}]
    mongo["intel"]["tagged"].insert_many(docs)
    tagged = spec(database="intel", collection="tagged", source_field="team", key=["_id"], version_column=None,
                  filter={}, columns=["url", "label", "attributes"], expand_json="attributes", labels=None)
    table = read_mongodb("soc", tagged).table
    assert table["url"].tolist() == ["http://a.example/", "http://b.example/"]
    assert table["asn"].iloc[0] == 15169 and pd.isna(table["asn"].iloc[1])


def test_load_before_migrate_says_what_to_run(mongo):
    with pytest.raises(LoadError, match="etl migrate --to mongodb"):
        load_mongodb(mongo["cybersentinel"], [prepare_labelled_urls(validated_frame())])


def test_an_unreachable_server_is_a_clear_error_after_bounded_retries(monkeypatch):
    from fixtures_db import free_port

    monkeypatch.setenv("CYBERSENTINEL_MONGODB_URI", f"mongodb://user:pw-secret@127.0.0.1:{free_port()}/")
    with pytest.raises(SourceError, match="gave up after 2 attempts") as caught:
        read_mongodb("ebbu2017", spec())
    assert "pw-secret" not in str(caught.value)


def test_cli_loads_urls_and_feeds_into_mongodb(mongo, tmp_path):
    validated = tmp_path / "validated.parquet"
    validated_frame().to_parquet(validated)
    feeds = tmp_path / "feeds"
    feeds.mkdir()
    (feeds / "firehol_level1.txt").write_text("10.0.0.0/8\n192.168.0.0/16\n10.1.2.3/8\n")
    runner = CliRunner()
    assert runner.invoke(app, ["etl", "migrate", "--to", "mongodb"]).exit_code == 0
    args = ["etl", "load", "--to", "mongodb", "--validated", str(validated), "--feeds-dir", str(feeds)]
    first = " ".join(runner.invoke(app, args).output.split())
    assert "labelled_urls │ 4 │ 0 │ 0 │ 1" in first and "feed_entries │ 2 │ 0 │ 0 │ 1" in first
    second = " ".join(runner.invoke(app, args).output.split())
    assert "labelled_urls │ 0 │ 0 │ 4 │ 1" in second and "feed_entries │ 0 │ 0 │ 2 │ 1" in second
    assert mongo["cybersentinel"].feed_entries.find_one({"entry": "10.0.0.0/8"})["kind"] == "cidr"


def test_attribute_names_mongodb_cannot_store_are_an_error_before_writing(mongo):
    db = mongo["cybersentinel"]
    migrate_mongodb(db)
    frame = validated_frame().rename(columns={"nb_dots": "nb.dots"})
    with pytest.raises(LoadError, match="nb.dots"):
        load_mongodb(db, [prepare_labelled_urls(frame)])
    assert db.labelled_urls.count_documents({}) == 0


def test_reloading_a_smaller_source_deletes_the_documents_it_no_longer_holds(mongo):
    db = mongo["cybersentinel"]
    migrate_mongodb(db)

    def numbered(n: int, source: str) -> pd.DataFrame:
        return pd.DataFrame({"url": [f"http://{source}{i}.example/" for i in range(n)], "label": 1, "source": source,
                             "snapshot": "0123456789abcdef"})

    load_mongodb(db, [prepare_labelled_urls(pd.concat([numbered(10, "alpha"), numbered(3, "beta")]))])
    smaller = numbered(5, "alpha")
    smaller.loc[2, "url"] = " "  # now rejected: the document stored at its position is stale too
    counts = load_mongodb(db, [prepare_labelled_urls(smaller)], batch_size=2)
    assert counts_of(counts)["labelled_urls"] == {"inserted": 0, "updated": 0, "unchanged": 4, "rejected": 1,
                                                  "deleted": 6}
    assert sorted(d["source_row"] for d in db.labelled_urls.find({"source": "alpha"})) == [0, 1, 3, 4]
    assert db.labelled_urls.count_documents({"source": "beta"}) == 3  # not in this load: left alone
    assert len(read_mongodb("alpha", spec()).table) == 4


# ---------------------------------------------------------------------------------------------------- real server


@pytest.mark.slow
def test_real_mongodb_round_trip(real_mongodb, tmp_path):
    from cybersentinel.ops.etl import with_mongo

    def load(db):
        migrate_mongodb(db)
        return load_mongodb(db, [prepare_labelled_urls(validated_frame())])

    first = with_mongo(load, "CYBERSENTINEL_MONGODB_URI", real_mongodb)
    assert counts_of(first)["labelled_urls"] == {"inserted": 4, "updated": 0, "unchanged": 0, "rejected": 1,
                                                                "deleted": 0}
    again = with_mongo(load, "CYBERSENTINEL_MONGODB_URI", real_mongodb)
    assert counts_of(again)["labelled_urls"] == {"inserted": 0, "updated": 0, "unchanged": 4, "rejected": 1,
                                                                "deleted": 0}
    got = read_mongodb("web_page_phishing", spec(database=real_mongodb, connect_timeout_s=5))
    assert got.table["url"].tolist() == ["https://c.example/x?y=1", "http://d.example/"]
    assert got.snapshot == mongodb_snapshot("web_page_phishing", spec(database=real_mongodb, connect_timeout_s=5))


@pytest.mark.slow
def test_real_mongodb_feed_entries(real_mongodb, tmp_path):
    from cybersentinel.ops.etl import with_mongo

    feeds = tmp_path / "feeds"
    feeds.mkdir()
    (feeds / "spamhaus_drop.txt").write_text("1.2.3.0/24 ; SBL1\nbad ; SBL2\n")

    def load(db):
        migrate_mongodb(db)
        return load_mongodb(db, [prepare_feed_entries(feeds)])

    assert counts_of(with_mongo(load, "CYBERSENTINEL_MONGODB_URI", real_mongodb))["feed_entries"] == {
        "inserted": 1, "updated": 0, "unchanged": 0, "rejected": 1, "deleted": 0}
    assert counts_of(with_mongo(load, "CYBERSENTINEL_MONGODB_URI", real_mongodb))["feed_entries"]["inserted"] == 0

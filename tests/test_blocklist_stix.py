"""`blocklist export --format stix`: a STIX 2.1 bundle that the official parser (OASIS's `stix2`, with its pattern
validator) accepts, whose indicators keep their ids and times from one export to the next, and which reads back
nothing but its own fields from the file it replaces."""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime

import stix2
from test_blocklist import DOMAINS, ROWS, blocklist_from_rows
from test_monitor import Scorer
from typer.testing import CliRunner

from cybersentinel.cli.app import app
from cybersentinel.ops.blocklist import STIX_IDENTITY, render_stix
from cybersentinel.ops.monitor import run_monitor

NOON, ONE = datetime(2026, 12, 5, 12, 0, tzinfo=UTC), datetime(2026, 12, 5, 13, 0, tzinfo=UTC)


def indicators(text: str) -> dict[str, dict]:
    return {item["name"]: item for item in json.loads(text)["objects"] if item["type"] == "indicator"}


def test_the_bundle_is_valid_stix_with_one_indicator_per_entry():
    bl = blocklist_from_rows()[0]
    text = render_stix(bl, now=NOON)
    bundle = stix2.parse(text, allow_custom=False)  # the specification's required fields, types, pattern grammar
    assert isinstance(bundle, stix2.Bundle) and bundle.objects[0].id == STIX_IDENTITY["id"]
    found = indicators(text)
    assert list(found) == [*DOMAINS, "1.2.3.4/32", "1.2.3.5/32", "2a00:1::5/128"]
    assert found["evil.example.com"]["pattern"] == "[domain-name:value = 'evil.example.com']"
    assert found["1.2.3.4/32"]["pattern"] == "[ipv4-addr:value = '1.2.3.4/32']"
    assert found["2a00:1::5/128"]["pattern"] == "[ipv6-addr:value = '2a00:1::5/128']"
    evil = found["evil.example.com"]
    assert (evil["confidence"], evil["description"]) == (99, "malicious (scored): second sighting")
    assert evil["created"] == evil["modified"] == evil["valid_from"] == "2026-12-05T12:00:00.000Z"
    assert all(item["created_by_ref"] == STIX_IDENTITY["id"] for item in found.values())
    assert stix2.parse(render_stix(blocklist_from_rows([])[0], now=NOON), allow_custom=False).objects[0].type == \
        "identity"  # an empty list is a bundle of the identity alone


def valid(text: str) -> dict[str, dict]:
    """`indicators` of a bundle the official parser accepts and that keeps the rules it does not check."""
    stix2.parse(text, allow_custom=False)
    found = indicators(text)
    for item in found.values():
        assert item["created"] <= item["modified"] and item["valid_from"] <= item.get("valid_until", "9")
        assert 0 <= item.get("confidence", 0) <= 100
    return found


def test_indicators_are_versioned_across_exports_and_a_removed_one_expires():
    first = render_stix(blocklist_from_rows()[0], now=NOON)
    assert render_stix(blocklist_from_rows()[0], first, now=ONE) == first  # nothing changed: the same file
    rows = [row for row in ROWS if "bücher" not in row[0]]
    rows[0] = ("http://evil.example.com/login", "malicious", "0.999", "second sighting")  # a new top score
    second = render_stix(blocklist_from_rows(rows)[0], first, now=ONE)
    before, after = valid(first), valid(second)
    assert after["evil.example.com"]["id"] == before["evil.example.com"]["id"]  # a new version of the same object
    assert (after["evil.example.com"]["created"], after["evil.example.com"]["modified"]) == \
        ("2026-12-05T12:00:00.000Z", "2026-12-05T13:00:00.000Z")
    assert after["1.2.3.4/32"] == before["1.2.3.4/32"]  # untouched
    gone = after["xn--bcher-phish-thb.de"]
    assert gone["valid_until"] == gone["modified"] == "2026-12-05T13:00:00.000Z" and "revoked" not in gone
    back = valid(render_stix(blocklist_from_rows()[0], second, now=datetime(2026, 12, 6, tzinfo=UTC)))
    again = back["xn--bcher-phish-thb.de"]  # listed again within the retention: a new version, valid again
    assert (again["id"], again["created"], "valid_until" in again) == (gone["id"], gone["created"], False)
    later = datetime(2027, 2, 1, tzinfo=UTC)
    dropped = valid(render_stix(blocklist_from_rows(rows)[0], second, now=later))
    assert "xn--bcher-phish-thb.de" not in dropped  # expired more than STIX_EXPIRED_DAYS ago: left out
    fresh = valid(render_stix(blocklist_from_rows()[0], render_stix(blocklist_from_rows(rows)[0], second, now=later),
                              now=later))["xn--bcher-phish-thb.de"]
    assert fresh["id"] != gone["id"] and fresh["created"] == "2027-02-01T00:00:00.000Z"  # never an id used again
    assert json.loads(second)["id"] != json.loads(first)["id"]


def test_a_change_after_the_clock_went_back_is_still_a_later_version():
    first = render_stix(blocklist_from_rows()[0], now=ONE)
    rows = [("http://evil.example.com/login", "malicious", "0.5", "another reason"), *ROWS[2:]]
    changed = valid(render_stix(blocklist_from_rows(rows)[0], first, now=NOON))["evil.example.com"]
    assert changed["modified"] == "2026-12-05T13:00:00.001Z" and changed["created"] == "2026-12-05T13:00:00.000Z"


def test_confidence_is_bounded_and_an_odd_score_leaves_it_out():
    rows = [("http://a.example.com/", "malicious", "1.5", ""), ("http://b.example.com/", "malicious", "-1", ""),
            ("http://c.example.com/", "malicious", "inf", ""), ("http://d.example.com/", "malicious", "1e308", "")]
    found = valid(render_stix(blocklist_from_rows(rows)[0], now=NOON))
    assert {name: item.get("confidence") for name, item in found.items()} == \
        {"a.example.com": 100, "b.example.com": 0, "c.example.com": None, "d.example.com": 100}


def test_a_hand_edited_previous_bundle_gives_back_only_what_it_wrote():
    first = json.loads(render_stix(blocklist_from_rows()[0], now=NOON))
    evil = next(item for item in first["objects"] if item.get("name") == "evil.example.com")
    edited = [{**evil, "x_note": "<script>"}, {**evil, "name": "<script>"}, {**evil, "confidence": 1000},
              {**evil, "description": {"a": 1}}, {**evil, "created": "2099-01-01T00:00:00.000Z"},
              {**evil, "id": "indicator--not-a-uuid"}, {**evil, "spec_version": "2.0"},
              {**evil, "pattern": "[url:value = 'http://x/' OR file:name = 'a']"},
              {**evil, "confidence": float("nan")}, "junk", {"type": "indicator"}]
    unlisted = blocklist_from_rows([row for row in ROWS if "evil" not in row[0].lower()])[0]
    assert valid(render_stix(unlisted, json.dumps(first), now=ONE))["evil.example.com"]["valid_until"]  # as written
    for item in edited:  # not as written: left out, never carried into the next bundle as an expired indicator
        text = render_stix(unlisted, json.dumps({**first, "objects": [item, *first["objects"][2:]]}), now=ONE)
        assert "evil.example.com" not in valid(text) and "<script>" not in text and "2099" not in text
    for previous in ("{not json", '{"objects": 3}', "[" * 10_000, ""):
        assert valid(render_stix(blocklist_from_rows()[0], previous, now=ONE)) == valid(render_stix(
            blocklist_from_rows()[0], now=ONE))


def test_the_command_writes_the_bundle_and_the_monitor_renders_it_and_the_zone(tmp_path):
    scored = tmp_path / "scored.csv"
    scored.write_text("url,verdict,score,reasons\nhttp://kit.example.top/a,malicious,0.97,deceptive\n")
    result = CliRunner().invoke(app, ["blocklist", "export", str(scored), "-o", str(tmp_path / "out"), "-f", "stix",
                                      "--model-dir", str(tmp_path)], terminal_width=400)
    assert result.exit_code == 0, result.output
    bundle = tmp_path / "out" / "cybersentinel-stix.json"
    umask = os.umask(0)
    os.umask(umask)
    assert list(indicators(bundle.read_text())) == ["kit.example.top"]
    assert bundle.stat().st_mode & 0o777 == 0o666 & ~umask  # as the umask allows, as the other formats
    # the monitor keeps both current as it blocks: the zone's serial goes up with each change, as export's does
    log, blocked, zone, stix = (tmp_path / name for name in ("access.log", "blocked.csv", "mon.rpz", "mon.json"))
    serials, names = [], []
    for url in ("http://kit.phish-one.top/a", "http://kit.phish-two.top/b"):
        with log.open("a") as handle:
            handle.write(f"1700000000.123    150 10.0.0.5 TCP_MISS/200 1234 GET {url} - HIER_DIRECT/- text/html\n")
        run_monitor(log, Scorer(), once=True, blocklist=blocked, render={"rpz": zone, "stix": stix},
                    alerts=open(tmp_path / "alerts.jsonl", "a"))  # noqa: SIM115 (closed with the process)
        serials.append(int(re.search(r"SOA\s+\S+\s+\S+\s+\((\d+)", zone.read_text()).group(1)))
        names.append(sorted(indicators(stix.read_text())))
    assert serials == [1, 2]
    assert names == [["kit.phish-one.top"], ["kit.phish-one.top", "kit.phish-two.top"]]


def test_a_render_target_that_cannot_be_read_is_written_afresh(tmp_path):
    from cybersentinel.ops.blocklist import rendered

    target = tmp_path / "stix.json"
    target.write_text("{}")
    target.chmod(0o200)  # write-only (root reads anything: then the file is simply read)
    text = rendered("stix", blocklist_from_rows()[0], target)
    assert list(valid(text)) == [*DOMAINS, "1.2.3.4/32", "1.2.3.5/32", "2a00:1::5/128"]
    directory = tmp_path / "a-directory.rpz"
    directory.mkdir()  # is_file() is false: no previous zone
    assert "(1 3600" in rendered("rpz", blocklist_from_rows()[0], directory)
